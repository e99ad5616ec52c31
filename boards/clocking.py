"""MMCM settings for the board top's core clock (``boards/top.py``, docs/boards.md,
"Clocking").

The board's oscillator (the KCU105's 125 MHz differential user clock on the placeholder
pins) is not the core clock: an ``MMCME3_ADV`` multiplies it by ``M / (D * O)``::

    f_pfd = f_in / D        (phase detector)
    f_vco = f_in * M / D    (oscillator)
    f_out = f_vco / O       (CLKOUT0, the core clock)

:func:`mmcm_settings` searches every legal ``(D, M, O)`` for the exact or the closest
achievable ``f_out``. The XCKU060 is a Kintex **UltraScale** part, whose MMCM is the
``MMCME3_ADV`` primitive (``MMCME4_ADV`` is UltraScale+ only); its limits are those of
UG572 (attributes) and DS892 (-2 speed grade), below. Vivado derives the generated clock
from the MMCM's attributes, so the constraints only name the oscillator's period.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

__all__ = ["MMCM_LIMITS", "MMCMSettings", "mmcm_settings", "ClockError"]

#: Limits of the UltraScale MMCM (MHz and divider ranges). Attribute ranges: UG572
#: (CLKFBOUT_MULT_F 2-64 for UltraScale, 2-128 only on UltraScale+; CLKOUT0_DIVIDE_F 1,
#: or 2-128 in steps of 1/8; DIVCLK_DIVIDE 1-106). Frequencies: DS892, -2 speed grade
#: (VCO 600-1200 MHz, PFD 10-500 MHz, input 10-800 MHz, output 4.69-725 MHz).
MMCM_LIMITS = {
    "primitive": "MMCME3_ADV",
    "mult": (2, 64),            # CLKFBOUT_MULT_F, steps of 1/8
    "divide_out": (2, 128),     # CLKOUT0_DIVIDE_F, steps of 1/8 (or exactly 1)
    "divclk": (1, 106),         # DIVCLK_DIVIDE, integer
    "f_in": (10e6, 800e6),
    "f_pfd": (10e6, 500e6),
    "f_vco": (600e6, 1200e6),
    "f_out": (600e6 / 128, 725e6),
}

_STEP = 8       # fractional M and O are multiples of 1/8


class ClockError(ValueError):
    """No legal MMCM setting makes the requested clock from the oscillator."""


@dataclass(frozen=True)
class MMCMSettings:
    """One MMCM setting: ``f_out = f_in * mult / (divclk * divide)``.

    Members
    -------
    f_in : oscillator frequency (Hz).
    divclk : DIVCLK_DIVIDE (D, integer).
    mult : CLKFBOUT_MULT_F (M, a multiple of 1/8).
    divide : CLKOUT0_DIVIDE_F (O, a multiple of 1/8, or 1).
    requested : the frequency asked for (Hz).
    """

    f_in: float
    divclk: int
    mult: Fraction
    divide: Fraction
    requested: float

    @property
    def f_pfd(self) -> float:
        return self.f_in / self.divclk

    @property
    def f_vco(self) -> float:
        return float(Fraction(self.f_in) * self.mult / self.divclk)

    @property
    def f_out(self) -> float:
        """The core clock this setting makes (Hz)."""
        return float(Fraction(self.f_in) * self.mult / (self.divclk * self.divide))

    @property
    def exact(self) -> bool:
        return abs(self.f_out - self.requested) <= 1e-6 * self.requested

    @property
    def clkin_period_ns(self) -> float:
        return 1e9 / self.f_in

    def to_dict(self) -> dict:
        """The record written to ``project.json`` (``mmcm``)."""
        return {"primitive": MMCM_LIMITS["primitive"], "f_in_hz": self.f_in,
                "divclk_divide": self.divclk, "clkfbout_mult_f": float(self.mult),
                "clkout0_divide_f": float(self.divide), "f_pfd_hz": self.f_pfd,
                "f_vco_hz": self.f_vco, "requested_hz": self.requested,
                "achieved_hz": self.f_out}


def _out_divides():
    low, high = MMCM_LIMITS["divide_out"]
    yield Fraction(1)
    for k in range(low * _STEP, high * _STEP + 1):
        yield Fraction(k, _STEP)


def mmcm_settings(f_in: float, f_out: float) -> MMCMSettings:
    """The MMCM setting whose CLKOUT0 is closest to ``f_out`` from an oscillator ``f_in``.

    Ties go to integer O, then integer M (fractional dividers add jitter), then the
    smallest D (the highest phase-detector frequency), then the highest VCO frequency.

    Raises
    ------
    ClockError
        ``f_out`` or ``f_in`` is outside the MMCM's range (``MMCM_LIMITS``).
    """
    f_in, f_out = float(f_in), float(f_out)
    lo, hi = MMCM_LIMITS["f_in"]
    if not lo <= f_in <= hi:
        raise ClockError(f"the oscillator ({f_in / 1e6:g} MHz) is outside the MMCM's input "
                         f"range {lo / 1e6:g}-{hi / 1e6:g} MHz")
    lo, hi = MMCM_LIMITS["f_out"]
    if not lo <= f_out <= hi:
        raise ClockError(f"--clock-hz {f_out:g} ({f_out / 1e6:g} MHz) is outside what the "
                         f"KU060's MMCM makes ({lo / 1e6:g}-{hi / 1e6:g} MHz)")
    best, best_key = None, None
    m_lo, m_hi = MMCM_LIMITS["mult"]
    d_lo, d_hi = MMCM_LIMITS["divclk"]
    pfd_lo, pfd_hi = MMCM_LIMITS["f_pfd"]
    vco_lo, vco_hi = MMCM_LIMITS["f_vco"]
    divides = sorted(_out_divides())
    fin = Fraction(f_in)
    for d in range(d_lo, d_hi + 1):
        if not pfd_lo <= f_in / d <= pfd_hi:
            continue
        for k in range(m_lo * _STEP, m_hi * _STEP + 1):
            m = Fraction(k, _STEP)
            vco = fin * m / d
            if not vco_lo <= vco <= vco_hi:
                continue
            # The best O for this VCO is one of the two legal divides around vco / f_out.
            ideal = vco / Fraction(f_out)
            for o in _nearest(divides, ideal):
                err = abs(vco / o - Fraction(f_out))
                key = (err, o.denominator != 1, m.denominator != 1, d, -vco, m)
                if best_key is None or key < best_key:
                    best, best_key = (d, m, o), key
    if best is None:
        raise ClockError(f"no MMCM setting makes {f_out / 1e6:g} MHz from "
                         f"{f_in / 1e6:g} MHz")
    d, m, o = best
    return MMCMSettings(f_in=f_in, divclk=d, mult=m, divide=o, requested=f_out)


def _nearest(values, x):
    """The values of the sorted list ``values`` just below and just above ``x``."""
    import bisect

    i = bisect.bisect_left(values, x)
    return values[max(i - 1, 0):i + 1]

"""Amaranth platform for the Xilinx Kintex UltraScale XCKU060 (ESE's FPGA).

ESE (Han et al., FPGA'17) ran on an Alpha Data ADM-PCIE-KU3 carrying an
``xcku060-ffva1156-2-e`` at 200 MHz. This module re-targets the amaranth-boards KCU105
mechanism (``XilinxPlatform`` with ``device``/``package``/``speed``) to that part.

Pins
----
The board's real pin file is not public in this repository, so the default resources are
**placeholders**: they are package pins of the FFVA1156 footprint as used on the KCU105
(``xcku040-ffva1156``, footprint-compatible with the KU060 in the same package). They let
Vivado place and route a stand-alone design; they are *not* the ADM-PCIE-KU3 pinout.
Swap in the real pins without touching the RTL::

    KU060Platform(pin_file="my_board.json")   # or my_board.py defining `resources`

JSON pin file (every key optional; missing keys keep the placeholder)::

    {"clock": {"p": "G10", "n": "F10", "iostandard": "LVDS", "hz": 125000000},
     "reset": {"pin": "AN8", "iostandard": "LVCMOS18", "active_low": false},
     "leds":  {"pins": ["AP8", "H23", "P20", "P21"], "iostandard": "LVCMOS18"}}

A Python pin file defines ``resources`` (a list of ``amaranth.build.Resource``) and
optionally ``default_clk``/``default_rst``; it replaces the resource list entirely.
"""

from __future__ import annotations

import json
import runpy
from pathlib import Path

from amaranth.build import Attrs, Clock, DiffPairs, Pins, Resource
from amaranth.vendor import XilinxPlatform
from amaranth_boards.resources import LEDResources

from .clocking import mmcm_settings

__all__ = ["KU060Platform", "PART", "DEFAULT_CLOCK_HZ", "OSCILLATOR_HZ", "DEFAULT_PINS",
           "load_pin_file", "pin_resources"]

PART = "xcku060-ffva1156-2-e"
#: Default core clock, made by the board top's MMCM from the oscillator (boards/clocking.py).
DEFAULT_CLOCK_HZ = 200e6
#: The placeholder oscillator: the KCU105's 125 MHz differential user clock (G10/F10).
OSCILLATOR_HZ = 125e6

# Placeholder pins (KCU105 FFVA1156 footprint): 125 MHz LVDS reference pair, CPU_RESET
# push button, the first four GPIO LEDs. ``hz`` is the oscillator's true frequency (the
# pin's clock constraint); the core clock is derived from it by an MMCM.
DEFAULT_PINS = {
    "clock": {"p": "G10", "n": "F10", "iostandard": "LVDS", "hz": OSCILLATOR_HZ},
    "reset": {"pin": "AN8", "iostandard": "LVCMOS18", "active_low": False},
    "leds": {"pins": ["AP8", "H23", "P20", "P21"], "iostandard": "LVCMOS18"},
}


def pin_resources(pins: dict) -> list[Resource]:
    """Build the platform resources (``clk``, ``rst``, ``led``) from a pin dictionary.

    Parameters
    ----------
    pins : dict with the keys of ``DEFAULT_PINS``; missing keys use the placeholders.

    Raises
    ------
    ValueError
        If a key is unknown or a clock frequency is not positive.
    """
    unknown = sorted(set(pins) - set(DEFAULT_PINS))
    if unknown:
        raise ValueError(f"Unknown pin file key(s): {', '.join(unknown)}")
    clock = {**DEFAULT_PINS["clock"], **pins.get("clock", {})}
    reset = {**DEFAULT_PINS["reset"], **pins.get("reset", {})}
    leds = {**DEFAULT_PINS["leds"], **pins.get("leds", {})}
    hz = float(clock["hz"])
    if not hz > 0:
        raise ValueError(f"Clock frequency must be positive, not {clock['hz']!r}")
    if "n" in clock and clock["n"]:
        clock_io = DiffPairs(clock["p"], clock["n"], dir="i")
    else:
        clock_io = Pins(clock["p"], dir="i")
    resources = [
        Resource("clk", 0, clock_io, Clock(hz), Attrs(IOSTANDARD=clock["iostandard"])),
        Resource("rst", 0, Pins(reset["pin"], dir="i", invert=bool(reset["active_low"])),
                 Attrs(IOSTANDARD=reset["iostandard"])),
        *LEDResources(pins=list(leds["pins"]), attrs=Attrs(IOSTANDARD=leds["iostandard"])),
    ]
    return resources


def load_pin_file(path) -> dict:
    """Read a pin file: ``.json`` -> pin dictionary, ``.py`` -> its module globals.

    Returns a dict with ``resources`` (list of Resource) and optionally ``default_clk``,
    ``default_rst``.
    """
    path = Path(path)
    if path.suffix == ".json":
        with open(path) as f:
            pins = json.load(f)
        if not isinstance(pins, dict):
            raise ValueError(f"{path}: a pin file must hold a JSON object")
        return {"resources": pin_resources(pins)}
    if path.suffix == ".py":
        scope = runpy.run_path(str(path))
        if "resources" not in scope:
            raise ValueError(f"{path}: a Python pin file must define `resources`")
        return {k: scope[k] for k in ("resources", "default_clk", "default_rst") if k in scope}
    raise ValueError(f"{path}: pin files are .json or .py, not {path.suffix!r}")


class KU060Platform(XilinxPlatform):
    """XCKU060-FFVA1156-2-E platform: oscillator ``clk`` (125 MHz placeholder), reset
    ``rst``, and the core clock the board top's MMCM makes from the oscillator.

    Parameters
    ----------
    pin_file : optional ``.json``/``.py`` pin file replacing the placeholder pins; its
        clock frequency (``hz``, or the ``Clock`` of a Python file's ``clk``) is the
        oscillator's, which the pin's constraint carries.
    clock_hz : the core clock (default 200 MHz), derived by an MMCM (:attr:`mmcm`).
    toolchain : passed to ``XilinxPlatform`` (only ``"Vivado"`` supports UltraScale).

    Raises
    ------
    ValueError
        ``clock_hz`` is not positive.
    boards.clocking.ClockError
        The MMCM cannot make ``clock_hz`` from the oscillator (its message names the
        range).
    """

    device = "xcku060"
    package = "ffva1156"
    speed = "2-e"
    default_clk = "clk"
    default_rst = "rst"
    resources = pin_resources({})
    connectors = []

    def __init__(self, *, pin_file=None, clock_hz: float | None = None, toolchain="Vivado"):
        if clock_hz is not None and not float(clock_hz) > 0:
            raise ValueError(f"Clock frequency must be positive, not {clock_hz!r}")
        if pin_file is None:
            loaded = {"resources": pin_resources({})}
        else:
            loaded = load_pin_file(pin_file)
        self.resources = loaded["resources"]
        if "default_clk" in loaded:
            self.default_clk = loaded["default_clk"]
        if "default_rst" in loaded:
            self.default_rst = loaded["default_rst"]
        super().__init__(toolchain=toolchain)
        self.pin_file = None if pin_file is None else Path(pin_file)
        self._clock_hz = DEFAULT_CLOCK_HZ if clock_hz is None else float(clock_hz)
        self.mmcm = mmcm_settings(self.osc_hz, self._clock_hz)

    @property
    def clock_hz(self) -> float:
        """The core clock asked for (Hz); :attr:`mmcm` ``.f_out`` is the one achieved."""
        return self._clock_hz

    @property
    def osc_hz(self) -> float:
        """The oscillator on the clock pin (Hz): the period its constraint carries."""
        return self.default_clk_frequency

    @property
    def part(self) -> str:
        """Vivado part name, e.g. ``xcku060-ffva1156-2-e``."""
        return self._part

"""Layouts and enums shared by the PE (``rtl/pe.py``) and the array top (``rtl/eie.py``).

Everything here is derived from one :class:`~contract.config.EIEConfig`; nothing is hard-coded.
"""

from __future__ import annotations

from contextlib import contextmanager

from amaranth.hdl import signed, unsigned
from amaranth.lib import data, enum

from contract.config import EIEConfig, clog2

__all__ = ["MemSel", "act_layout", "tile_layout", "pe_init", "PE_INIT_KEYS", "check_config",
           "check_init", "validating"]


class MemSel(enum.Enum, shape=3):
    """Memory a host write targets (``host_sel`` of the PE, decoded by the top).

    Addresses are word addresses inside the selected memory; the data is LSB-aligned and
    truncated to the memory width.  ``CODEBOOK`` is addressed ``slot * 2**weight_bits + v``.
    """

    SPMAT = 0
    PTR_EVEN = 1
    PTR_ODD = 2
    BIAS = 3
    CODEBOOK = 4
    ACT0 = 5
    ACT1 = 6


def check_config(config) -> EIEConfig:
    """Raise ``TypeError`` unless ``config`` is an :class:`EIEConfig`; return it."""
    if not isinstance(config, EIEConfig):
        raise TypeError(f"Config must be an EIEConfig, not {config!r}")
    return config


def act_layout(config: EIEConfig) -> data.StructLayout:
    """Payload of one activation broadcast: ``value`` (signed ``act_bits``) and ``index``
    (global column ``j`` of the tile, ``clog2(n_pes * act_depth)`` bits)."""
    check_config(config)
    return data.StructLayout({
        "value": signed(config.act_bits),
        "index": unsigned(clog2(config.n_pes * config.act_depth)),
    })


def tile_layout(config: EIEConfig) -> data.StructLayout:
    """Tile parameters the top holds stable on the PE's ``tile`` port for a whole tile.

    Field names and widths are those of the tile descriptor
    (:meth:`EIEConfig.descriptor_layout`).
    """
    check_config(config)
    widths = config.descriptor_layout()
    names = ("ptr_base", "spmat_base", "bias_base", "out_base", "slot", "shift", "relu",
             "bias_en")
    return data.StructLayout({name: unsigned(widths[name]) for name in names})


#: Memories a PE ``init`` mapping may fill (``act0``/``act1`` are optional extras).
PE_INIT_KEYS = ("spmat", "ptr_even", "ptr_odd", "bias", "codebook", "act0", "act1")


def pe_init(image, pe: int) -> dict[str, list[int]]:
    """Initial memory contents of PE ``pe`` from a :class:`~contract.image.PackedImage`.

    Returns a mapping ``{"spmat", "ptr_even", "ptr_odd", "bias", "codebook"}`` of integer
    lists (signed values stay signed) suitable for ``PE(config=..., init=...)``.
    """
    n = image.config.n_pes
    if not isinstance(pe, int) or isinstance(pe, bool) or not 0 <= pe < n:
        raise ValueError(f"PE index must be an integer in [0, {n}), not {pe!r}")
    return {
        "spmat": [int(w) for w in image.spmat[pe]],
        "ptr_even": [int(w) for w in image.ptr_even[pe]],
        "ptr_odd": [int(w) for w in image.ptr_odd[pe]],
        "bias": [int(w) for w in image.bias[pe]],
        "codebook": [int(w) for w in image.codebook],
    }


def check_init(name: str, init, depth: int) -> list[int]:
    """Validate optional initial contents of a memory of ``depth`` rows; return a list.

    ``None`` means all zeros.  Raises ``TypeError`` for a non-sequence or non-integer
    value and ``ValueError`` when there are more values than rows.
    """
    if init is None:
        return []
    if isinstance(init, (str, bytes)) or not hasattr(init, "__len__"):
        raise TypeError(f"Initial contents of {name} must be a sequence of integers, "
                        f"not {init!r}")
    values = []
    for value in init:
        if hasattr(value, "dtype") and value.dtype.kind in "iu":
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"Initial contents of {name} must be integers, not {value!r}")
        values.append(value)
    if len(values) > depth:
        raise ValueError(f"Initial contents of {name} have {len(values)} rows, more than "
                         f"its depth {depth}")
    return values


@contextmanager
def validating(component):
    """Run a component's parameter checks; if one raises, mark the half-built component as
    deliberately unused so that the error is not followed by an ``UnusedElaboratable``
    warning when it is garbage-collected."""
    try:
        yield
    except Exception:
        component._MustUse__silence = True
        raise

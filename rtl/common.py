"""Layouts and signatures shared by the units of ``rtl/`` (PE, PE array, tile sequencer,
array top).

Everything here is derived from one :class:`~contract.config.EIEConfig`; nothing is hard-coded.
The host address map (``MemSel`` and the rest) is :mod:`contract.host_map`.
"""

from __future__ import annotations

from contextlib import contextmanager

from amaranth.hdl import signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import Out

from contract.config import ConfigError, EIEConfig, clog2

__all__ = ["HostWrite", "act_layout", "tile_layout", "descriptor_layout", "pe_init",
           "PE_INIT_KEYS", "check_config", "check_image", "check_init", "validating"]


def _check_width(what: str, value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise TypeError(f"{what} must be a positive integer, not {value!r}")
    return value


class HostWrite:
    """A host write into a memory block: one word per cycle, no back-pressure.

    Only a namespace for :class:`HostWrite.Signature` (as ``amaranth.lib.memory.WritePort``
    holds ``WritePort.Signature``).
    """

    class Signature(wiring.Signature):
        """Host write port, from the writer's side (a memory block has
        ``In(HostWrite.Signature(addr_width, data_width))``).

        A write with ``en`` high in cycle ``t`` takes effect at the end of ``t``.

        Parameters
        ----------
        addr_width : int
            Word address bits.
        data_width : int
            Data bits; the writer's data is LSB-aligned and truncated to this width.

        Members
        -------
        en : Out(1)
            Write strobe.
        addr : Out(addr_width)
            Word address.
        data : Out(data_width)
            Word to write.

        Raises
        ------
        TypeError
            A width is not a positive integer.
        """

        def __init__(self, addr_width: int, data_width: int):
            self._addr_width = _check_width("Host write address width", addr_width)
            self._data_width = _check_width("Host write data width", data_width)
            super().__init__({"en": Out(1), "addr": Out(addr_width), "data": Out(data_width)})

        @property
        def addr_width(self) -> int:
            return self._addr_width

        @property
        def data_width(self) -> int:
            return self._data_width

        def __eq__(self, other):
            return (type(other) is type(self) and other.addr_width == self.addr_width
                    and other.data_width == self.data_width)

        def __hash__(self):
            return hash((type(self), self._addr_width, self._data_width))

        def __repr__(self):
            return f"HostWrite.Signature({self._addr_width}, {self._data_width})"


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


def descriptor_layout(config: EIEConfig) -> data.StructLayout:
    """One tile descriptor as the program memory holds it: the fields of
    :meth:`EIEConfig.descriptor_layout`, LSB first, ``descriptor_bits`` wide."""
    check_config(config)
    return data.StructLayout({name: unsigned(width)
                              for name, width in config.descriptor_layout().items()})


def tile_layout(config: EIEConfig) -> data.StructLayout:
    """Tile parameters the top holds stable on the PE's ``tile`` port for a whole tile.

    Field names and widths are those of the tile descriptor (:func:`descriptor_layout`).
    """
    fields = descriptor_layout(config)
    names = ("ptr_base", "spmat_base", "bias_base", "out_base", "slot", "shift", "relu",
             "bias_en")
    return data.StructLayout({name: fields[name].shape for name in names})


def check_image(image, config: EIEConfig):
    """Raise ``ConfigError`` unless ``image`` is ``None`` or was packed for ``config``;
    return it."""
    if image is not None and image.config != config:
        raise ConfigError("image was packed for a different config "
                          f"(config_id {image.config.config_id:#010x}, "
                          f"design {config.config_id:#010x})")
    return image


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

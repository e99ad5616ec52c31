"""The Amaranth side of the host address map (docs/rtl.md, "Host port").

The map itself (field positions, :class:`~contract.host_map.Region`,
:class:`~contract.host_map.Reg`, :class:`~contract.host_map.MemSel`) is
:mod:`contract.host_map`. This module gives the array's host port its signature and read
latency, and the one layout through which the RTL takes a host word address apart
(:class:`HostAddress`, the array top's decoder) and puts one together
(:func:`host_address_value`, used by the AXI wrapper), so no unit slices address bits by
hand.
"""

# No ``from __future__ import annotations``: data.Struct reads its fields from the class
# annotations, which must be shapes, not strings.
from amaranth.hdl import Cat, Const, Value, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from contract.host_map import (
    HOST_DATA_BITS,
    OFFSET_BITS,
    PE_SHIFT,
    REGION_SHIFT,
    SEL_SHIFT,
    Reg,
    Region,
)

__all__ = ["ADDRESS_BITS", "READ_LATENCY", "HostAddress", "HostSignature",
           "host_address_value"]

#: Width of a host word address (``host.addr``).
ADDRESS_BITS = 32
#: Cycles from a ``host.read`` strobe to ``host.rvalid`` (and ``host.rdata``).
READ_LATENCY = 3


class HostAddress(data.Struct):
    """A host word address, field by field (LSB first, positions from
    :mod:`contract.host_map`).

    ``HostAddress(value)`` decodes a 32-bit value; the view's :meth:`in_region` and
    :meth:`is_register` give the region and register hits.

    Members
    -------
    offset : unsigned(OFFSET_BITS)
        Word address inside the memory, or the :class:`~contract.host_map.Reg` number.
    sel : unsigned(PE_SHIFT - SEL_SHIFT)
        :class:`~contract.host_map.MemSel` (:attr:`Region.PE` only).
    pe : unsigned(REGION_SHIFT - PE_SHIFT)
        PE number (:attr:`Region.PE` only).
    region : unsigned(ADDRESS_BITS - REGION_SHIFT)
        :class:`~contract.host_map.Region`.
    """

    offset: unsigned(OFFSET_BITS)
    sel: unsigned(PE_SHIFT - SEL_SHIFT)
    pe: unsigned(REGION_SHIFT - PE_SHIFT)
    region: unsigned(ADDRESS_BITS - REGION_SHIFT)

    def in_region(self, region: Region):
        """The address lies in ``region``."""
        return self.region == region

    def is_register(self, register: Reg):
        """The address is ``register`` of :attr:`Region.REGS`."""
        return self.in_region(Region.REGS) & (self.offset == register)


# The layout is LSB first; the contract's shifts must be where it puts each field.
_FIELDS = data.Layout.cast(HostAddress)
if ((_FIELDS["sel"].offset, _FIELDS["pe"].offset, _FIELDS["region"].offset, _FIELDS.size)
        != (SEL_SHIFT, PE_SHIFT, REGION_SHIFT, ADDRESS_BITS)):
    raise RuntimeError("HostAddress does not match contract.host_map's field positions")


def host_address_value(region, offset=0, *, pe=0, sel=0) -> Value:
    """Host word address (``ADDRESS_BITS`` wide) of the given fields, each an integer, an
    enum member or an Amaranth value (zero-extended or truncated to its field): the
    Amaranth twin of :func:`contract.host_map.host_address`."""
    fields = {"offset": offset, "sel": sel, "pe": pe, "region": region}
    parts = []
    for name, field in _FIELDS:
        value = Value.cast(fields[name])
        width = field.width
        parts.append(Cat(value[:width], Const(0, max(0, width - len(value)))))
    return Cat(*parts)


class HostSignature(wiring.Signature):
    """Host port: a strobe bus with fixed read latency, from the host's side (the array has
    ``In(HostSignature())``).

    Members
    -------
    addr : Out(32)
        Word address (:func:`contract.host_map.host_address`, :class:`HostAddress`).
    wdata : Out(64)
        Write data, LSB-aligned, truncated to the target's width.
    write : Out(1)
        Write strobe: one write per cycle, always accepted.
    read : Out(1)
        Read strobe: one read per cycle, always accepted.
    rdata : In(64)
        Read data, valid with ``rvalid``.
    rvalid : In(1)
        High exactly ``READ_LATENCY`` cycles after a ``read`` strobe.
    """

    def __init__(self):
        super().__init__({
            "addr": Out(ADDRESS_BITS),
            "wdata": Out(HOST_DATA_BITS),
            "write": Out(1),
            "read": Out(1),
            "rdata": In(HOST_DATA_BITS),
            "rvalid": In(1),
        })

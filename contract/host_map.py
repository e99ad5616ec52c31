"""The host address map of the array and of its AXI4-Lite wrapper (docs/rtl.md, "Host port";
docs/register-map.md), as plain Python.

This is the one definition of the map: the RTL decoder (``rtl.host_map``), the AXI
wrapper (``rtl.axi_host``), the testbenches and host software all import it. It imports
neither Amaranth nor torch; the plain ``IntEnum`` members are valid Amaranth constants and
shapes.

A host word address is ``region << 28 | pe << 20 | sel << 17 | offset``:

====== ========= ===========================================================
bits   field     meaning
====== ========= ===========================================================
31..28 region    :class:`Region`
27..20 pe        PE number (:attr:`Region.PE` only)
19..17 sel       :class:`MemSel` (:attr:`Region.PE` only)
16..0  offset    word address inside the memory, or the :class:`Reg` number
====== ========= ===========================================================
"""

from __future__ import annotations

import enum

__all__ = ["REGION_SHIFT", "PE_SHIFT", "SEL_SHIFT", "OFFSET_BITS", "MAX_HOST_PES",
           "MAX_HOST_DEPTH", "HOST_DATA_BITS", "Region", "Reg", "MemSel", "host_address",
           "split_address", "AxiReg", "AXI_ID", "REGS_WINDOW"]

REGION_SHIFT = 28
PE_SHIFT = 20
SEL_SHIFT = 17
OFFSET_BITS = 17
#: Most PEs the 8-bit ``pe`` field addresses.
MAX_HOST_PES = 1 << (REGION_SHIFT - PE_SHIFT)
#: Deepest memory the 17-bit ``offset`` field addresses.
MAX_HOST_DEPTH = 1 << OFFSET_BITS
#: Width of the host port's write and read data (wider descriptors use ``WDATA_HIGH``).
HOST_DATA_BITS = 64


class Region(enum.IntEnum):
    """``addr[31:28]``: what a host access targets."""

    REGS = 0        # control/status registers
    PE = 1          # one memory of one PE: addr[27:20] = PE, addr[19:17] = MemSel
    CODEBOOK = 2    # the codebook of every PE at once (broadcast write)
    PROGRAM = 3     # the tile-descriptor program memory


class Reg(enum.IntEnum):
    """Register word addresses inside :attr:`Region.REGS`."""

    CTRL_STATUS = 0x0   # W: bit0 start. R: bit0 busy, bit1 done
    CONFIG_ID = 0x1     # R: EIEConfig.config_id
    TOTAL_CYCLES = 0x2  # R: cycles of the last (or current) run
    N_PES = 0x3         # R: number of PEs
    WDATA_HIGH = 0x4    # W: bits [64:] of the next program writes (descriptors > 64 bits)
    LAYER_CYCLES = 0x100  # R: + k, cycles of layer k of the last run


class MemSel(enum.IntEnum):
    """``addr[19:17]``: the memory of a PE a host access targets.

    Addresses are word addresses inside the selected memory; the data is LSB-aligned and
    truncated to the memory width. ``CODEBOOK`` is addressed ``slot * 2**weight_bits + v``.
    """

    SPMAT = 0
    PTR_EVEN = 1
    PTR_ODD = 2
    BIAS = 3
    CODEBOOK = 4
    ACT0 = 5
    ACT1 = 6


def host_address(region: Region | int, addr: int = 0, *, pe: int = 0,
                 sel: MemSel | int = 0) -> int:
    """Host word address of ``addr`` in ``region`` (``pe``/``sel`` for :attr:`Region.PE`).

    Raises
    ------
    ValueError
        ``addr``, ``pe`` or ``sel`` does not fit its field.
    """
    if not 0 <= addr < MAX_HOST_DEPTH:
        raise ValueError(f"Host address offset must be in [0, 2**{OFFSET_BITS}), not {addr!r}")
    if not 0 <= pe < MAX_HOST_PES:
        raise ValueError(f"Host PE number must be in [0, {MAX_HOST_PES}), not {pe!r}")
    return ((int(Region(region)) << REGION_SHIFT) | (int(pe) << PE_SHIFT)
            | (int(MemSel(sel)) << SEL_SHIFT) | int(addr))


def split_address(address: int) -> tuple[int, int, int, int]:
    """``(region, pe, sel, offset)`` fields of a host word address (the inverse of
    :func:`host_address`; the fields are returned as integers, unchecked)."""
    return (address >> REGION_SHIFT & 0xF, address >> PE_SHIFT & (MAX_HOST_PES - 1),
            address >> SEL_SHIFT & 0x7, address & (MAX_HOST_DEPTH - 1))


# ---- AXI4-Lite wrapper (rtl.axi_host.AxiHost) ------------------------------------------------
#: Value of the wrapper's ``ID`` register: ASCII "EIE1".
AXI_ID = 0x45494531
#: Byte offset of the window onto the array's register region (word ``w`` at ``+4*w``).
REGS_WINDOW = 0x1000


class AxiReg(enum.IntEnum):
    """Byte offsets of the AXI4-Lite registers (docs/register-map.md)."""

    ID = 0x00
    CONFIG_ID = 0x04
    CTRL_STATUS = 0x08
    N_PES = 0x0C
    HOST_ADDR = 0x10
    DATA_LO = 0x14
    WDATA_HI = 0x18
    RDATA_HI = 0x1C
    STREAM_CTRL = 0x20  # streams=True only: bit0 accept s_axis, bit1 start after tlast
    OUT_COUNT = 0x24    # activations m_axis sends after each run (0: none)
    OUT_BANK = 0x28     # activation buffer (0/1) m_axis reads (PackedImage.output_bank)

"""AXI4-Lite slave around the EIE array: control/status, cycle counters, image and
activation loading and read-back (register map: docs/register-map.md).

The array's host port (:class:`rtl.eie.HostSignature`) is a strobe bus with 32-bit word
addresses and 64-bit data. AXI4-Lite has 32-bit data and a small address window, so the
array's address space is reached through an address/data register pair:

* ``HOST_ADDR`` holds an array word address (:func:`rtl.eie.host_address`);
* a write to ``DATA_LO`` writes ``{WDATA_HI, DATA_LO}`` (64 bits) to ``HOST_ADDR`` and
  increments ``HOST_ADDR``; ``WDATA_HI`` is sticky (0 after reset), so memories up to 32
  bits wide take one AXI write per word and 64-bit words (spmat, descriptors) two;
* a read of ``DATA_LO`` reads ``HOST_ADDR`` (waiting the array's read latency), returns
  bits 31..0, latches bits 63..32 into ``RDATA_HI`` and increments ``HOST_ADDR``.

The array's own registers (start, status, config id, total and per-layer cycles) are also
mapped directly at ``0x1000 + 4*word``.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from eie.config import EIEConfig

from .common import check_config
from .eie import EIE, Reg, Region, host_address

__all__ = ["AxiHost", "AXI4LiteSignature", "AxiReg", "AXI_ID", "REGS_WINDOW"]

#: Value of the ``ID`` register: ASCII "EIE1".
AXI_ID = 0x45494531
#: Byte offset of the window onto the array's register region (word ``w`` at ``+4*w``).
REGS_WINDOW = 0x1000


class AxiReg:
    """Byte offsets of the AXI4-Lite registers (docs/register-map.md)."""

    ID = 0x00
    CONFIG_ID = 0x04
    CTRL_STATUS = 0x08
    N_PES = 0x0C
    HOST_ADDR = 0x10
    DATA_LO = 0x14
    WDATA_HI = 0x18
    RDATA_HI = 0x1C


class AXI4LiteSignature(wiring.Signature):
    """AXI4-Lite, from the manager's side (a subordinate has ``In(AXI4LiteSignature(...))``).

    Members follow the AMBA names in lower case (``awaddr``, ``awvalid``, ... ``rready``);
    data is 32 bits, ``awprot``/``arprot`` are present (ignored by :class:`AxiHost`).
    """

    def __init__(self, addr_width: int = 16):
        if not isinstance(addr_width, int) or not 13 <= addr_width <= 32:
            raise TypeError(f"AXI address width must be an integer in [13, 32], "
                            f"not {addr_width!r}")
        self._addr_width = addr_width
        super().__init__({
            "awaddr": Out(addr_width), "awprot": Out(3), "awvalid": Out(1), "awready": In(1),
            "wdata": Out(32), "wstrb": Out(4), "wvalid": Out(1), "wready": In(1),
            "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            "araddr": Out(addr_width), "arprot": Out(3), "arvalid": Out(1), "arready": In(1),
            "rdata": In(32), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
        })

    @property
    def addr_width(self) -> int:
        return self._addr_width


class AxiHost(wiring.Component):
    """The EIE array behind an AXI4-Lite subordinate port.

    One transaction at a time: a write is accepted when both ``awvalid`` and ``wvalid`` are
    high (``awready``/``wready`` rise together for one cycle), a read when ``arvalid`` is
    high and no write is pending (writes win a tie). Responses are always OKAY; unmapped
    reads return 0 and unmapped writes are ignored; ``wstrb`` is ignored (every write is a
    full 32-bit word). Latency: write response 1 cycle after acceptance; register reads
    1 cycle; array reads (``DATA_LO``, the register window) ``READ_LATENCY + 1`` cycles.

    Parameters
    ----------
    config : EIEConfig
        Architecture of the wrapped array.
    image : PackedImage, optional
        Image baked into the array's memories (see :class:`rtl.eie.EIE`).
    addr_width : int
        AXI address width (default 16; the map needs 13).
    pe_class : type, optional
        Passed to :class:`rtl.eie.EIE` (test stand-ins).

    Members
    -------
    s_axil : In(AXI4LiteSignature(addr_width))
        AXI4-Lite subordinate port (flattened Verilog names ``s_axil__awaddr`` ...).
    busy : Out(1)
        The array is running.
    done : Out(1)
        The last run has completed.
    """

    def __init__(self, config: EIEConfig, *, image=None, addr_width: int = 16, pe_class=None):
        self._config = check_config(config)
        self._image = image
        self._pe_class = pe_class
        super().__init__({
            "s_axil": In(AXI4LiteSignature(addr_width)),
            "busy": Out(1),
            "done": Out(1),
        })

    @property
    def config(self) -> EIEConfig:
        return self._config

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        m.submodules.eie = eie = EIE(cfg, image=self._image, pe_class=self._pe_class)
        bus = self.s_axil
        host = eie.host
        m.d.comb += [self.busy.eq(eie.busy), self.done.eq(eie.done)]

        host_addr = Signal(32, name="host_addr_q")
        wdata_hi = Signal(32, name="wdata_hi_q")
        rdata_hi = Signal(32, name="rdata_hi_q")
        rdata = Signal(32, name="rdata_q")
        bvalid = Signal(name="bvalid_q")
        rvalid = Signal(name="rvalid_q")
        wait_read = Signal(name="wait_read_q")
        m.d.comb += [bus.bvalid.eq(bvalid), bus.bresp.eq(0), bus.rvalid.eq(rvalid),
                     bus.rresp.eq(0), bus.rdata.eq(rdata)]

        idle = ~bvalid & ~rvalid & ~wait_read
        do_write = idle & bus.awvalid & bus.wvalid
        do_read = idle & ~do_write & bus.arvalid
        m.d.comb += [bus.awready.eq(do_write), bus.wready.eq(do_write),
                     bus.arready.eq(do_read)]

        regs_base = host_address(Region.REGS, 0)

        # ---- writes --------------------------------------------------------------------
        waddr = bus.awaddr
        with m.If(do_write):
            m.d.sync += bvalid.eq(1)
            with m.If(waddr[12:] == REGS_WINDOW >> 12):
                m.d.comb += [host.write.eq(1),
                             host.addr.eq(regs_base | waddr[2:12]),
                             host.wdata.eq(bus.wdata)]
            with m.Else():
                with m.Switch(waddr[2:12]):
                    with m.Case(AxiReg.CTRL_STATUS >> 2):
                        m.d.comb += [host.write.eq(bus.wdata[0]),
                                     host.addr.eq(host_address(Region.REGS, Reg.CTRL_STATUS)),
                                     host.wdata.eq(1)]
                    with m.Case(AxiReg.HOST_ADDR >> 2):
                        m.d.sync += host_addr.eq(bus.wdata)
                    with m.Case(AxiReg.DATA_LO >> 2):
                        m.d.comb += [host.write.eq(1), host.addr.eq(host_addr),
                                     host.wdata.eq(Cat(bus.wdata, wdata_hi))]
                        m.d.sync += host_addr.eq(host_addr + 1)
                    with m.Case(AxiReg.WDATA_HI >> 2):
                        m.d.sync += wdata_hi.eq(bus.wdata)
        with m.If(bvalid & bus.bready):
            m.d.sync += bvalid.eq(0)

        # ---- reads ---------------------------------------------------------------------
        raddr = bus.araddr
        with m.If(do_read):
            with m.If(raddr[12:] == REGS_WINDOW >> 12):
                m.d.comb += [host.read.eq(1), host.addr.eq(regs_base | raddr[2:12])]
                m.d.sync += wait_read.eq(1)
            with m.Else():
                with m.Switch(raddr[2:12]):
                    with m.Case(AxiReg.ID >> 2):
                        m.d.sync += [rdata.eq(AXI_ID), rvalid.eq(1)]
                    with m.Case(AxiReg.CONFIG_ID >> 2):
                        m.d.sync += [rdata.eq(Const(cfg.config_id, 32)), rvalid.eq(1)]
                    with m.Case(AxiReg.CTRL_STATUS >> 2):
                        m.d.sync += [rdata.eq(Cat(eie.busy, eie.done)), rvalid.eq(1)]
                    with m.Case(AxiReg.N_PES >> 2):
                        m.d.sync += [rdata.eq(cfg.n_pes), rvalid.eq(1)]
                    with m.Case(AxiReg.HOST_ADDR >> 2):
                        m.d.sync += [rdata.eq(host_addr), rvalid.eq(1)]
                    with m.Case(AxiReg.DATA_LO >> 2):
                        m.d.comb += [host.read.eq(1), host.addr.eq(host_addr)]
                        m.d.sync += [host_addr.eq(host_addr + 1), wait_read.eq(1)]
                    with m.Case(AxiReg.WDATA_HI >> 2):
                        m.d.sync += [rdata.eq(wdata_hi), rvalid.eq(1)]
                    with m.Case(AxiReg.RDATA_HI >> 2):
                        m.d.sync += [rdata.eq(rdata_hi), rvalid.eq(1)]
                    with m.Default():
                        m.d.sync += [rdata.eq(0), rvalid.eq(1)]
        with m.If(wait_read & host.rvalid):
            m.d.sync += [rdata.eq(host.rdata[:32]), rdata_hi.eq(host.rdata[32:]),
                         wait_read.eq(0), rvalid.eq(1)]
        with m.If(rvalid & bus.rready):
            m.d.sync += rvalid.eq(0)
        return m

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

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from contract.config import EIEConfig

from .common import MemSel, check_config
from .eie import EIE, Reg, Region, host_address

__all__ = ["AxiHost", "AXI4LiteSignature", "AXI4StreamSignature", "AxiReg", "AXI_ID",
           "REGS_WINDOW"]

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
    STREAM_CTRL = 0x20  # streams=True only: bit0 accept s_axis, bit1 start after tlast
    OUT_COUNT = 0x24    # activations m_axis sends after each run (0: none)
    OUT_BANK = 0x28     # activation buffer (0/1) m_axis reads (PackedImage.output_bank)


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


class AXI4StreamSignature(wiring.Signature):
    """AXI4-Stream with 32-bit ``tdata`` and ``tlast``, from the transmitter's side."""

    def __init__(self):
        super().__init__({"tdata": Out(32), "tlast": Out(1), "tvalid": Out(1),
                          "tready": In(1)})


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
    streams : bool
        Add the AXI4-Stream activation ports ``s_axis``/``m_axis`` (docs/register-map.md,
        "AXI4-Stream activations").

    Members
    -------
    s_axil : In(AXI4LiteSignature(addr_width))
        AXI4-Lite subordinate port (flattened Verilog names ``s_axil__awaddr`` ...).
    busy : Out(1)
        The array is running.
    done : Out(1)
        The last run has completed.
    s_axis : In(AXI4StreamSignature()), only with ``streams``
        Input activations, one per beat (``tdata[act_bits-1:0]``), in index order
        ``j = 0, 1, ...`` into buffer 0; ``tlast`` ends the vector (and starts a run when
        ``STREAM_CTRL`` bit 1 is set). Accepted only while the array is idle.
    m_axis : Out(AXI4StreamSignature()), only with ``streams``
        After every run, ``OUT_COUNT`` output activations of buffer ``OUT_BANK`` in index
        order, sign-extended to 32 bits, ``tlast`` on the last.
    """

    def __init__(self, config: EIEConfig, *, image=None, addr_width: int = 16, pe_class=None,
                 streams: bool = False):
        self._config = check_config(config)
        self._image = image
        self._pe_class = pe_class
        self._streams = bool(streams)
        members = {
            "s_axil": In(AXI4LiteSignature(addr_width)),
            "busy": Out(1),
            "done": Out(1),
        }
        if self._streams:
            members["s_axis"] = In(AXI4StreamSignature())
            members["m_axis"] = Out(AXI4StreamSignature())
        super().__init__(members)

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

        # A stream read shares the array's rvalid: no AXI-Lite read while one is pending.
        out_pending = Signal(name="out_pending_q")
        idle = ~bvalid & ~rvalid & ~wait_read & ~out_pending
        do_write = idle & bus.awvalid & bus.wvalid
        do_read = idle & ~do_write & bus.arvalid
        m.d.comb += [bus.awready.eq(do_write), bus.wready.eq(do_write),
                     bus.arready.eq(do_read)]

        regs_base = host_address(Region.REGS, 0)
        stream_ctrl = Signal(2, name="stream_ctrl_q")
        out_count = Signal(32, name="out_count_q")
        out_bank = Signal(name="out_bank_q")

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
                    if self._streams:
                        with m.Case(AxiReg.STREAM_CTRL >> 2):
                            m.d.sync += stream_ctrl.eq(bus.wdata[:2])
                        with m.Case(AxiReg.OUT_COUNT >> 2):
                            m.d.sync += out_count.eq(bus.wdata)
                        with m.Case(AxiReg.OUT_BANK >> 2):
                            m.d.sync += out_bank.eq(bus.wdata[0])
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
                    if self._streams:
                        with m.Case(AxiReg.STREAM_CTRL >> 2):
                            m.d.sync += [rdata.eq(stream_ctrl), rvalid.eq(1)]
                        with m.Case(AxiReg.OUT_COUNT >> 2):
                            m.d.sync += [rdata.eq(out_count), rvalid.eq(1)]
                        with m.Case(AxiReg.OUT_BANK >> 2):
                            m.d.sync += [rdata.eq(out_bank), rvalid.eq(1)]
                    with m.Default():
                        m.d.sync += [rdata.eq(0), rvalid.eq(1)]
        with m.If(wait_read & host.rvalid):
            m.d.sync += [rdata.eq(host.rdata[:32]), rdata_hi.eq(host.rdata[32:]),
                         wait_read.eq(0), rvalid.eq(1)]
        with m.If(rvalid & bus.rready):
            m.d.sync += rvalid.eq(0)

        if self._streams:
            self._elaborate_streams(m, eie, lite_port=do_write | do_read | wait_read,
                                    out_pending=out_pending, stream_ctrl=stream_ctrl,
                                    out_count=out_count, out_bank=out_bank)
        return m

    def _elaborate_streams(self, m, eie, *, lite_port, out_pending, stream_ctrl, out_count,
                           out_bank):
        """AXI4-Stream activations. The array has one host port: an AXI-Lite access owns
        it in its accept cycle (and while its read is pending); the input stream, the
        auto-start strobe and the output reads use the cycles left over, in that order."""
        cfg = self._config
        n = cfg.n_pes
        host = eie.host
        s_axis, m_axis = self.s_axis, self.m_axis
        act_addr_bits = 17

        def pe_address(pe, row, sel):
            """Array word address of ``row`` in memory ``sel`` of PE ``pe``."""
            return Cat(row, sel, pe, Const(0, 8 - len(pe)), Const(Region.PE.value, 4))

        # ---- input: activation j -> PE j mod N, word j div N of buffer 0 ------------------
        in_pe = Signal(range(n), name="in_pe_q")
        in_row = Signal(act_addr_bits, name="in_row_q")
        start_pending = Signal(name="start_pending_q")
        in_fire = Signal(name="in_fire")
        m.d.comb += [s_axis.tready.eq(stream_ctrl[0] & ~eie.busy & ~lite_port & ~start_pending),
                     in_fire.eq(s_axis.tvalid & s_axis.tready)]
        with m.If(in_fire):
            m.d.comb += [host.write.eq(1),
                         host.addr.eq(pe_address(in_pe, in_row, Const(MemSel.ACT0.value, 3))),
                         host.wdata.eq(s_axis.tdata.as_signed())]
            with m.If(s_axis.tlast):
                m.d.sync += [in_pe.eq(0), in_row.eq(0), start_pending.eq(stream_ctrl[1])]
            with m.Elif(in_pe == n - 1):
                m.d.sync += [in_pe.eq(0), in_row.eq(in_row + 1)]
            with m.Else():
                m.d.sync += in_pe.eq(in_pe + 1)
        with m.Elif(start_pending & ~lite_port):
            m.d.comb += [host.write.eq(1),
                         host.addr.eq(host_address(Region.REGS, Reg.CTRL_STATUS)),
                         host.wdata.eq(1)]
            m.d.sync += start_pending.eq(0)

        # ---- output: after each run, OUT_COUNT activations of buffer OUT_BANK ------------
        out_pe = Signal(range(n), name="out_pe_q")
        out_row = Signal(act_addr_bits, name="out_row_q")
        out_left = Signal(32, name="out_left_q")
        out_valid = Signal(name="out_valid_q")
        out_data = Signal(32, name="out_data_q")
        out_last = Signal(name="out_last_q")
        done_q = Signal(name="done_q")
        m.d.sync += done_q.eq(eie.done)
        m.d.comb += [m_axis.tvalid.eq(out_valid), m_axis.tdata.eq(out_data),
                     m_axis.tlast.eq(out_last)]
        with m.If(eie.done & ~done_q):
            m.d.sync += [out_left.eq(out_count), out_pe.eq(0), out_row.eq(0)]
        issue = (out_left != 0) & ~out_pending & ~out_valid & ~eie.busy & ~lite_port \
            & ~in_fire & ~start_pending
        with m.If(issue):
            m.d.comb += [host.read.eq(1),
                         host.addr.eq(pe_address(out_pe, out_row,
                                                 Mux(out_bank, MemSel.ACT1.value,
                                                     MemSel.ACT0.value)[:3]))]
            m.d.sync += [out_pending.eq(1), out_left.eq(out_left - 1),
                         out_last.eq(out_left == 1)]
            with m.If(out_pe == n - 1):
                m.d.sync += [out_pe.eq(0), out_row.eq(out_row + 1)]
            with m.Else():
                m.d.sync += out_pe.eq(out_pe + 1)
        with m.If(out_pending & host.rvalid):
            m.d.sync += [out_pending.eq(0), out_valid.eq(1), out_data.eq(host.rdata[:32])]
        with m.If(out_valid & m_axis.tready):
            m.d.sync += out_valid.eq(0)

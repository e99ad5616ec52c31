"""AXI4-Lite slave around the EIE array: control/status, cycle counters, image and
activation loading and read-back (register map: docs/register-map.md).

The array's host port (:class:`rtl.host_map.HostSignature`) is a strobe bus with 32-bit word
addresses and 64-bit data. AXI4-Lite has 32-bit data and a small address window, so the
array's address space is reached through an address/data register pair:

* ``HOST_ADDR`` holds an array word address (:func:`contract.host_map.host_address`);
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
from contract.host_map import (
    AXI_ID,
    OFFSET_BITS,
    REGS_WINDOW,
    AxiReg,
    MemSel,
    Reg,
    Region,
    host_address,
)

from .axi import AXI4LiteSignature, AXI4StreamSignature
from .common import check_config
from .eie import EIE
from .host_map import host_address_value

__all__ = ["AxiHost"]

# An AXI byte address: bits [1:0] the byte in the word, [_WINDOW_SHIFT-1:2] the register
# word, [_WINDOW_SHIFT:] the page: 0 for the AXI registers (AxiReg), 1 for the array's
# register window (REGS_WINDOW); nothing is mapped above (no page aliases another).
_BYTE_BITS = 2
_WINDOW_SHIFT = REGS_WINDOW.bit_length() - 1
assert REGS_WINDOW == 1 << _WINDOW_SHIFT


def _page(addr):
    return addr[_WINDOW_SHIFT:]


def _word(addr):
    """Register word of an AXI byte address (AxiReg offset or array register number)."""
    return addr[_BYTE_BITS:_WINDOW_SHIFT]


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

    def _core(self):
        """The wrapped engine (``boards/ese_vivado.py`` puts the ESE top here)."""
        return EIE(self._config, image=self._image, pe_class=self._pe_class)

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        m.submodules.eie = eie = self._core()
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

        stream_ctrl = Signal(2, name="stream_ctrl_q")
        out_count = Signal(32, name="out_count_q")
        out_bank = Signal(name="out_bank_q")

        # ---- writes --------------------------------------------------------------------
        waddr = bus.awaddr
        with m.If(do_write):
            m.d.sync += bvalid.eq(1)
            with m.If(_page(waddr) == 1):
                m.d.comb += [host.write.eq(1),
                             host.addr.eq(host_address_value(Region.REGS, _word(waddr))),
                             host.wdata.eq(bus.wdata)]
            with m.Elif(_page(waddr) == 0):
                with m.Switch(_word(waddr)):
                    with m.Case(AxiReg.CTRL_STATUS >> _BYTE_BITS):
                        m.d.comb += [host.write.eq(bus.wdata[0]),
                                     host.addr.eq(host_address(Region.REGS, Reg.CTRL_STATUS)),
                                     host.wdata.eq(1)]
                    with m.Case(AxiReg.HOST_ADDR >> _BYTE_BITS):
                        m.d.sync += host_addr.eq(bus.wdata)
                    with m.Case(AxiReg.DATA_LO >> _BYTE_BITS):
                        m.d.comb += [host.write.eq(1), host.addr.eq(host_addr),
                                     host.wdata.eq(Cat(bus.wdata, wdata_hi))]
                        m.d.sync += host_addr.eq(host_addr + 1)
                    with m.Case(AxiReg.WDATA_HI >> _BYTE_BITS):
                        m.d.sync += wdata_hi.eq(bus.wdata)
                    if self._streams:
                        with m.Case(AxiReg.STREAM_CTRL >> _BYTE_BITS):
                            m.d.sync += stream_ctrl.eq(bus.wdata[:2])
                        with m.Case(AxiReg.OUT_COUNT >> _BYTE_BITS):
                            m.d.sync += out_count.eq(bus.wdata)
                        with m.Case(AxiReg.OUT_BANK >> _BYTE_BITS):
                            m.d.sync += out_bank.eq(bus.wdata[0])
        with m.If(bvalid & bus.bready):
            m.d.sync += bvalid.eq(0)

        # ---- reads ---------------------------------------------------------------------
        raddr = bus.araddr
        with m.If(do_read):
            with m.If(_page(raddr) == 1):
                m.d.comb += [host.read.eq(1),
                             host.addr.eq(host_address_value(Region.REGS, _word(raddr)))]
                m.d.sync += wait_read.eq(1)
            with m.Elif(_page(raddr) == 0):
                with m.Switch(_word(raddr)):
                    with m.Case(AxiReg.ID >> _BYTE_BITS):
                        m.d.sync += [rdata.eq(AXI_ID), rvalid.eq(1)]
                    with m.Case(AxiReg.CONFIG_ID >> _BYTE_BITS):
                        m.d.sync += [rdata.eq(Const(cfg.config_id, 32)), rvalid.eq(1)]
                    with m.Case(AxiReg.CTRL_STATUS >> _BYTE_BITS):
                        m.d.sync += [rdata.eq(Cat(eie.busy, eie.done)), rvalid.eq(1)]
                    with m.Case(AxiReg.N_PES >> _BYTE_BITS):
                        m.d.sync += [rdata.eq(cfg.n_pes), rvalid.eq(1)]
                    with m.Case(AxiReg.HOST_ADDR >> _BYTE_BITS):
                        m.d.sync += [rdata.eq(host_addr), rvalid.eq(1)]
                    with m.Case(AxiReg.DATA_LO >> _BYTE_BITS):
                        m.d.comb += [host.read.eq(1), host.addr.eq(host_addr)]
                        m.d.sync += [host_addr.eq(host_addr + 1), wait_read.eq(1)]
                    with m.Case(AxiReg.WDATA_HI >> _BYTE_BITS):
                        m.d.sync += [rdata.eq(wdata_hi), rvalid.eq(1)]
                    with m.Case(AxiReg.RDATA_HI >> _BYTE_BITS):
                        m.d.sync += [rdata.eq(rdata_hi), rvalid.eq(1)]
                    if self._streams:
                        with m.Case(AxiReg.STREAM_CTRL >> _BYTE_BITS):
                            m.d.sync += [rdata.eq(stream_ctrl), rvalid.eq(1)]
                        with m.Case(AxiReg.OUT_COUNT >> _BYTE_BITS):
                            m.d.sync += [rdata.eq(out_count), rvalid.eq(1)]
                        with m.Case(AxiReg.OUT_BANK >> _BYTE_BITS):
                            m.d.sync += [rdata.eq(out_bank), rvalid.eq(1)]
                    with m.Default():
                        m.d.sync += [rdata.eq(0), rvalid.eq(1)]
            with m.Else():      # above the window nothing is mapped (no alias)
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

        # ---- input: activation j -> PE j mod N, word j div N of buffer 0 ------------------
        in_pe = Signal(range(n), name="in_pe_q")
        in_row = Signal(OFFSET_BITS, name="in_row_q")
        start_pending = Signal(name="start_pending_q")
        in_fire = Signal(name="in_fire")
        m.d.comb += [s_axis.tready.eq(stream_ctrl[0] & ~eie.busy & ~lite_port & ~start_pending),
                     in_fire.eq(s_axis.tvalid & s_axis.tready)]
        with m.If(in_fire):
            m.d.comb += [host.write.eq(1),
                         host.addr.eq(host_address_value(Region.PE, in_row, pe=in_pe,
                                                         sel=MemSel.ACT0)),
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
        out_row = Signal(OFFSET_BITS, name="out_row_q")
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
                         host.addr.eq(host_address_value(
                             Region.PE, out_row, pe=out_pe,
                             sel=Mux(out_bank, MemSel.ACT1, MemSel.ACT0)))]
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

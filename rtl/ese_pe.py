"""One PE position of an ESE engine: one copy of the weights serving C channels
(docs/ese.md, "RTL").

The pointer stage, the activation queue and the sparse-matrix reader are EIE's
(``rtl/ptr_read.py``, ``rtl/act_queue.py``, ``rtl/spmat_read.py``) with the same accept
rule and timing as :class:`rtl.pe.PE`; a broadcast carries every channel's activation, so
the entries read once feed C accumulators (``rtl/channel_arith.py``). Each channel keeps
its activation memory, its input and output frame rings and (in ``rtl/cell_unit.py``) its
cell state.
"""

from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from contract.config import clog2
from contract.host_map import MemSel
from contract.lstm_config import ESEConfig
from contract.lstm_program import PEEPHOLE_SEL, ChanSel

from .act_queue import ActQueue
from .cell_unit import CellUnit
from .channel_arith import ChannelArith
from .common import HostWrite, tile_layout, validating
from .ese_common import Mode, broadcast_layout, cell_tile_layout
from .pe import IDLE_DELAY, PRELOAD_LATENCY, WRITEBACK_LATENCY
from .ptr_read import PtrRead
from .spmat_read import SpmatRead

__all__ = ["ESEPE", "Mode", "broadcast_layout", "cell_tile_layout"]


class ESEPE(wiring.Component):
    """PE position ``p`` of every channel.

    Matrix timing is :class:`rtl.pe.PE`'s (same ``IDLE_DELAY``, ``PRELOAD_LATENCY``,
    ``WRITEBACK_LATENCY``): the broadcast is accepted when every PE's
    ``level - pop + pending < queue_depth``. The write-back goes to the cell unit when
    ``gate`` is set, else to ``act[tile.out_base + row]`` of channel ``wb_channel``: the
    write-back and the cell unit are shared by the channels, one channel per request.

    Engine port (``mode``, ``xfer_en``, ``xfer_src``, ``xfer_dst``): in ``CLEAR`` a
    transfer zeroes ``act[dst]`` (and the cell state at ``dst``) at once; in ``LOAD`` and
    ``COPY`` it reads ``in_ring[src]`` or ``act[src]`` and writes ``act[dst]`` one cycle
    later. Every engine write (not a clear) whose address is in
    ``[out_base, out_base + out_words)`` is also written to
    ``out_ring[slot * slot_words + addr - out_base]``. ``act_raddr`` addresses every
    channel's activation memory; ``act_rdata`` is the previous cycle's address.

    Host: writes ``host`` into the shared memory ``host_sel`` (``host_chan_mem`` low) or
    into memory ``host_chan_sel`` of channel ``host_channel`` (``host_chan_mem`` high);
    ``host_table`` writes the σ/tanh samples. ``host_rdata`` is channel
    ``host_channel``'s word of memory ``host_rsel`` at the previous cycle's
    ``host_raddr`` (``ACT`` through ``act_raddr``, ``OUT_RING`` at ``host_raddr``).
    """

    IDLE_DELAY = IDLE_DELAY
    PRELOAD_LATENCY = PRELOAD_LATENCY
    WRITEBACK_LATENCY = WRITEBACK_LATENCY

    def __init__(self, *, config: ESEConfig, ring_depth: int, slot_words: int,
                 init=None):
        with validating(self):
            if not isinstance(config, ESEConfig):
                raise TypeError(f"Config must be an ESEConfig, not {config!r}")
            self._config = config
            self._ring_depth = int(ring_depth)
            self._slot_words = int(slot_words)
            self._init = dict(init or {})
            ch, c = config.channel, config.channels
            act = signed(ch.act_bits)
            addr = clog2(ch.act_depth)
            self._ring_bits = clog2(self._ring_depth)
            host_bits = max(clog2(ch.spmat_depth), clog2(ch.ptr_depth), self._ring_bits,
                            clog2(3 * config.cell_depth), clog2(2 * config.table_size), addr)
            super().__init__({
                "act_in": In(stream.Signature(broadcast_layout(config))),
                "tile": In(tile_layout(ch)),
                "preload_en": In(1), "preload_row": In(range(ch.acc_depth)),
                "wb_en": In(1), "wb_row": In(range(ch.acc_depth)),
                "wb_channel": In(range(c)),
                "gate": In(1),
                "cell_tile": In(cell_tile_layout(config)),
                "idle": Out(1),
                "mode": In(Mode),
                "xfer_en": In(1),
                "xfer_src": In(max(addr, self._ring_bits)),
                "xfer_dst": In(max(addr, clog2(c * config.cell_depth))),
                "act_raddr": In(addr),
                "act_rdata": Out(data.ArrayLayout(act, c)),
                "out_base": In(addr), "out_words": In(addr + 1),
                "slot": In(max(1, self._ring_bits - clog2(self._slot_words))),
                "host": In(HostWrite.Signature(host_bits, 64)),
                "host_sel": In(3),
                "host_chan_mem": In(1),
                "host_chan_sel": In(ChanSel),
                "host_channel": In(range(c)),
                "active": In(range(c + 1)),
                "host_table": In(1),
                "host_raddr": In(self._ring_bits),
                "host_rsel": In(ChanSel),
                "host_rdata": Out(64),
            })

    @property
    def config(self) -> ESEConfig:
        return self._config

    def elaborate(self, platform):
        cfg = self._config
        ch, nch = cfg.channel, cfg.channels
        init = self._init
        m = Module()
        acts_layout = data.ArrayLayout(signed(ch.act_bits), nch)
        queue = ActQueue(layout=data.StructLayout({
            "start": unsigned(clog2(ch.spmat_depth) + ch.entries_per_word.bit_length() - 1),
            "length": unsigned(ch.pointer_bits), "acts": acts_layout}),
            depth=ch.queue_depth)
        ptr = PtrRead(config=ch, init_even=init.get("ptr_even"), init_odd=init.get("ptr_odd"))
        spmat = SpmatRead(config=ch, init=init.get("spmat"))
        arith = ChannelArith(config=ch, channels=nch, codebook_init=init.get("codebook"),
                             bias_init=init.get("bias"))
        cell = CellUnit(config=cfg, sigmoid_init=init.get("sigmoid"),
                        tanh_init=init.get("tanh"), peephole_init=init.get("peephole"))
        m.submodules.queue, m.submodules.ptr_read, m.submodules.spmat_read = queue, ptr, spmat
        m.submodules.channel_arith, m.submodules.cell_unit = arith, cell
        tile = self.tile

        # ---- pointer stage, queue, spmat reader: the accept rule of rtl.pe.PE ----------
        transfer = self.act_in.valid & self.act_in.ready
        m.d.comb += [ptr.en.eq(transfer), ptr.index.eq(self.act_in.payload.index),
                     ptr.base.eq(tile.ptr_base)]
        pending = Signal()
        pending_acts = Signal(acts_layout)
        m.d.sync += pending.eq(transfer)
        with m.If(transfer):
            m.d.sync += pending_acts.eq(self.act_in.payload.values)
        length = Signal(ch.pointer_bits)
        entry_shift = ch.entries_per_word.bit_length() - 1
        m.d.comb += [
            length.eq(ptr.end - ptr.start),
            queue.i.valid.eq(pending & (length != 0)),
            queue.i.payload.start.eq((tile.spmat_base << entry_shift) + ptr.start),
            queue.i.payload.length.eq(length),
            queue.i.payload.acts.eq(pending_acts),
            spmat.i.valid.eq(queue.o.valid),
            spmat.i.payload.start.eq(queue.o.payload.start),
            spmat.i.payload.length.eq(queue.o.payload.length),
            queue.o.ready.eq(spmat.i.ready),
        ]
        pop = queue.o.valid & spmat.i.ready
        # The reader emits a popped column's entries in s+1 .. s+len: the channels'
        # activations, latched at the pop, stay with them exactly that long.
        acts_q = Signal(acts_layout)
        with m.If(pop):
            m.d.sync += acts_q.eq(queue.o.payload.acts)
        m.d.comb += self.act_in.ready.eq(queue.level + pending < ch.queue_depth + pop)
        m.d.comb += [
            arith.i.valid.eq(spmat.o.valid),
            arith.i.payload.v.eq(spmat.o.payload.v),
            arith.i.payload.z.eq(spmat.o.payload.z),
            arith.i.payload.first.eq(spmat.o.payload.first),
            arith.i.payload.acts.eq(acts_q),
        ]
        free = ~pending & (queue.level == 0) & spmat.i.ready
        free_count = Signal(range(IDLE_DELAY + 1))
        with m.If(~free):
            m.d.sync += free_count.eq(0)
        with m.Elif(free_count != IDLE_DELAY):
            m.d.sync += free_count.eq(free_count + 1)
        m.d.comb += self.idle.eq(free & (free_count == IDLE_DELAY))

        m.d.comb += [
            arith.tile.eq(tile),
            arith.preload_en.eq(self.preload_en), arith.preload_row.eq(self.preload_row),
            arith.wb_en.eq(self.wb_en), arith.wb_row.eq(self.wb_row),
            arith.wb_channel.eq(self.wb_channel),
            cell.tile.eq(self.cell_tile),
            cell.wb.valid.eq(arith.wb.valid & self.gate),
            cell.wb.row.eq(arith.wb.payload.row),
            cell.wb.channel.eq(arith.wb.payload.channel),
            cell.wb.value.eq(arith.wb.payload.value),
        ]

        # ---- activation memories, frame rings ------------------------------------------
        mode = self.mode
        xfer_d = Signal()
        dst_d = Signal.like(self.xfer_dst)
        m.d.sync += [xfer_d.eq(self.xfer_en & (mode != Mode.CLEAR)), dst_d.eq(self.xfer_dst)]
        clearing = self.xfer_en & (mode == Mode.CLEAR)
        m.d.comb += [cell.clear.en.eq(clearing & (self.xfer_dst < nch * cfg.cell_depth)),
                     cell.clear.addr.eq(self.xfer_dst)]
        host = self.host
        chan_write = host.en & self.host_chan_mem
        rsel_q = Signal(ChanSel)
        rchan_q = Signal.like(self.host_channel)
        m.d.sync += [rsel_q.eq(self.host_rsel), rchan_q.eq(self.host_channel)]
        slot_shift = clog2(self._slot_words)
        # ---- one engine write per cycle, shared by the channels --------------------------
        # The write-back and the cell unit serve one channel per cycle and the host writes
        # one channel's word, so the address, the value and the output-region check are
        # computed once; a channel only decides whether it takes the write. A load, copy
        # or clear writes every channel (a load only the active ones: a channel outside
        # ACTIVE_CHANNELS keeps all-zero activations, so the scanner's OR needs no mask).
        addr_shape = unsigned(clog2(ch.act_depth))
        e_en, e_all, e_xfer, e_mirror = Signal(), Signal(), Signal(), Signal()
        e_addr, e_chan = Signal(addr_shape), Signal.like(self.host_channel)
        e_val = Signal(signed(ch.act_bits))
        host_act = chan_write & (self.host_chan_sel == ChanSel.ACT)
        with m.If(host_act):
            m.d.comb += [e_en.eq(1), e_addr.eq(host.addr), e_val.eq(host.data),
                         e_chan.eq(self.host_channel)]
        with m.Elif(clearing):
            m.d.comb += [e_en.eq(1), e_all.eq(1), e_addr.eq(self.xfer_dst)]
        with m.Elif(xfer_d):
            m.d.comb += [e_en.eq(1), e_all.eq(1), e_xfer.eq(1), e_addr.eq(dst_d),
                         e_mirror.eq(1)]
        with m.Elif(arith.wb.valid & ~self.gate):
            m.d.comb += [e_en.eq(1), e_addr.eq(tile.out_base + arith.wb.payload.row),
                         e_val.eq(arith.wb.payload.value), e_chan.eq(arith.wb.payload.channel),
                         e_mirror.eq(1)]
        with m.Elif(cell.m.valid):
            m.d.comb += [e_en.eq(1), e_addr.eq(cell.m.addr), e_val.eq(cell.m.value),
                         e_chan.eq(cell.m.channel), e_mirror.eq(1)]
        offset = Signal(clog2(ch.act_depth) + 1)
        out_hit = Signal()
        out_addr = Signal(self._ring_bits)
        m.d.comb += [
            offset.eq(e_addr - self.out_base),
            out_hit.eq(e_mirror & (e_addr >= self.out_base)
                       & (e_addr < self.out_base + self.out_words)),
            out_addr.eq((self.slot << slot_shift) + offset[:slot_shift]),
        ]
        loading = mode == Mode.LOAD
        # All channels' activations in one memory, a lane of act_bits per channel: every
        # read (scan, copy, host) is at one address for all channels, and a write enables
        # its lanes. One wide memory maps onto block RAM where C narrow ones would take
        # LUT RAM each.
        bits = ch.act_bits
        m.submodules.act = act_mem = Memory(shape=unsigned(nch * bits), depth=ch.act_depth,
                                            init=[])
        act_r, act_w = act_mem.read_port(), act_mem.write_port(granularity=bits)
        m.d.comb += [act_r.addr.eq(self.act_raddr), act_w.addr.eq(e_addr)]
        act_data, out_data = [], []
        for c in range(nch):
            in_ring = Memory(shape=signed(bits), depth=self._ring_depth, init=[])
            out_ring = Memory(shape=signed(bits), depth=self._ring_depth, init=[])
            m.submodules[f"in_ring{c}"], m.submodules[f"out_ring{c}"] = in_ring, out_ring
            in_r, in_w = in_ring.read_port(), in_ring.write_port()
            out_r, out_w = out_ring.read_port(), out_ring.write_port()
            lane = act_r.data[c * bits:(c + 1) * bits].as_signed()
            lane_w = act_w.data[c * bits:(c + 1) * bits]
            takes = Signal(name=f"takes{c}")
            m.d.comb += [
                self.act_rdata[c].eq(lane),
                in_r.addr.eq(self.xfer_src),
                in_w.addr.eq(host.addr), in_w.data.eq(host.data),
                in_w.en.eq(chan_write & (self.host_channel == c)
                           & (self.host_chan_sel == ChanSel.IN_RING)),
                out_r.addr.eq(self.host_raddr),
                takes.eq(e_en & Mux(e_all, ~(e_xfer & loading) | (self.active > c),
                                    e_chan == c)),
                lane_w.eq(Mux(e_xfer, Mux(loading, in_r.data, lane), e_val)),
                act_w.en[c].eq(takes),
                out_w.addr.eq(out_addr), out_w.data.eq(lane_w),
                out_w.en.eq(takes & out_hit),
            ]
            act_data.append(lane)
            out_data.append(out_r.data)
        word = Signal(signed(ch.act_bits))
        with m.If(rsel_q == ChanSel.OUT_RING):
            m.d.comb += word.eq(Array(out_data)[rchan_q])
        with m.Else():
            m.d.comb += word.eq(Array(act_data)[rchan_q])
        m.d.comb += self.host_rdata.eq(word)

        # ---- host writes of the shared memories ----------------------------------------
        shared = host.en & ~self.host_chan_mem & ~self.host_table
        sel = self.host_sel
        for port, hit in ((spmat.host, sel == MemSel.SPMAT),
                          (ptr.host, (sel == MemSel.PTR_EVEN) | (sel == MemSel.PTR_ODD)),
                          (arith.host_codebook, sel == MemSel.CODEBOOK),
                          (arith.host_bias, sel == MemSel.BIAS),
                          (cell.host_peephole, sel == PEEPHOLE_SEL)):
            m.d.comb += [port.en.eq(shared & hit), port.addr.eq(host.addr),
                         port.data.eq(host.data)]
        m.d.comb += [ptr.host_bank.eq(sel == MemSel.PTR_ODD),
                     cell.host_table.en.eq(host.en & self.host_table),
                     cell.host_table.addr.eq(host.addr), cell.host_table.data.eq(host.data)]
        return m

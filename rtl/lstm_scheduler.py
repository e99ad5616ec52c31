"""The ESE LSTM scheduler: runs the frame program (``contract/lstm_program.py``) once per
frame over every channel at once, through EIE's tile sequencer (``rtl/tile_sequencer.py``)
for the matrix tiles (docs/ese.md, "Schedule" and "RTL").
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import data, enum, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from contract.config import clog2
from contract.lstm_config import ESEConfig
from contract.lstm_program import op_bits, op_fields, ops_depth

from .common import HostWrite, descriptor_layout, tile_layout, validating
from .ese_pe import ESEPE, Mode, cell_tile_layout
from .tile_sequencer import COUNTER_BITS, TileSequencer

__all__ = ["LSTMScheduler", "SchedulerState", "lstm_pipeline", "op_layout"]


class SchedulerState(enum.Enum, shape=4):
    IDLE = 0
    CLEAR = 1
    WAIT = 2
    LOAD = 3
    DISPATCH = 4
    RUN = 5
    CELL = 6
    COPY = 7
    FRAME_END = 8
    PASS = 9        # write-back of channels 1 .. active-1, one row per cycle
    PASS_TAIL = 10  # the cycles that stand for the sequencer's POST and finish


def op_layout(config: ESEConfig) -> data.StructLayout:
    fields = {"desc": descriptor_layout(config.channel)}
    fields.update({name: width for name, width in op_fields(config).items()})
    return data.StructLayout(fields)


def lstm_pipeline(cell_latency: int) -> dict[str, int]:
    """The constants of ``golden.lstm_cycles.LSTM_PIPELINE`` this scheduler implements, for
    a cell unit whose ``m`` follows its ``o`` row by ``cell_latency`` cycles.

    ``LOAD``: the WAIT cycle that finds the frame, the load's read latency and FRAME_END.
    ``SEG``: a segment's DISPATCH and the cycle that sees the sequencer finish.
    ``CELL``: after a gate tile (itself a segment, ``SEG`` included), the cell unit drains:
    its last ``m`` is written ``cell_latency`` cycles after the last gate row leaves the
    accumulators, which is the cycle the scheduler sees the sequencer finish, and a copy
    or a tile may read it one cycle after that.
    ``COPY``: the DISPATCH cycle and the read latency.
    ``PASS``: with ``A > 1`` channels, every tile adds ``(A - 1) * out_local`` write-back
    cycles (one channel after the other: the write-back path and the cell unit are
    shared) and these two cycles, which stand for POST and finish as after the sequencer.
    """
    return {"LOAD": 3, "SEG": 2, "CELL": 2 + max(0, cell_latency - 1), "COPY": 2,
            "PASS": 2}


class LSTMScheduler(wiring.Component):
    """Frame loop of an ESE engine.

    ``start`` clears every activation and cell-state word (``max(act_depth, cell_depth)``
    cycles, not counted), then runs ``frames`` frames. Frame ``t`` waits until
    ``t < frames_ready``; it loads ``x_words`` words from slot ``t mod frame_slots`` of the
    input ring into ``X`` (address 0), walks the program from operation 0 to the one with
    ``end``, and stores its cycles in ``frame_cycles[t mod frame_slots]``.
    """

    def __init__(self, *, config: ESEConfig, frame_slots: int, slot_words: int,
                 cell_latency: int, program=None):
        with validating(self):
            if not isinstance(config, ESEConfig):
                raise TypeError(f"Config must be an ESEConfig, not {config!r}")
            self._config = config
            self._slots, self._slot_words = frame_slots, slot_words
            self._cell_latency = cell_latency
            self._program = list(program or [])
            ch = config.channel
            addr = clog2(ch.act_depth)
            self._ring_bits = clog2(frame_slots * slot_words)
            super().__init__({
                "start": In(1), "busy": Out(1), "done": Out(1), "waiting": Out(1),
                "frames": In(16), "frames_ready": In(16), "x_words": In(addr + 1),
                "active": In(range(config.channels + 1)),
                "frame_count": Out(16),
                "total_cycles": Out(COUNTER_BITS),
                "cycles_raddr": In(range(frame_slots)),
                "cycles_rdata": Out(COUNTER_BITS),
                "host_program": In(HostWrite.Signature(clog2(ops_depth(config)),
                                                       op_bits(config))),
                # to the array
                "tile": Out(tile_layout(ch)),
                "preload_en": Out(1), "wb_en": Out(1), "row": Out(range(ch.acc_depth)),
                "wb_channel": Out(range(config.channels)),
                "gate": Out(1), "cell_tile": Out(cell_tile_layout(config)),
                "scan_start": Out(1),
                "scan_rows": Out(ch.descriptor_layout()["in_local"]),
                "scan_mode": Out(1), "scan_base": Out(addr), "raddr": Out(addr),
                "scan_running": In(1), "all_idle": In(1),
                "mode": Out(Mode), "xfer_en": Out(1),
                "xfer_src": Out(max(addr, self._ring_bits)),
                "xfer_dst": Out(max(addr, clog2(config.channels * config.cell_depth))),
                "slot": Out(max(1, clog2(frame_slots))),
            })

    @property
    def pipeline(self) -> dict[str, int]:
        return lstm_pipeline(self._cell_latency)

    def elaborate(self, platform):
        cfg = self._config
        ch = cfg.channel
        m = Module()
        seq = TileSequencer(config=ch, idle_delay=ESEPE.IDLE_DELAY,
                            writeback_latency=ESEPE.WRITEBACK_LATENCY)
        m.submodules.tile_sequencer = seq
        layout = op_layout(cfg)
        # encoded operations (ints) become constants of the layout: a struct-shaped memory
        # takes no plain integers as initial values
        m.submodules.program = program = Memory(
            shape=layout, depth=ops_depth(cfg),
            init=[data.Const(layout, int(op)) for op in self._program])
        seq_rd, fsm_rd, prog_wr = program.read_port(), program.read_port(), program.write_port()
        m.submodules.frame_cycles = cycles_mem = Memory(shape=COUNTER_BITS,
                                                        depth=self._slots, init=[])
        cyc_rd, cyc_wr = cycles_mem.read_port(), cycles_mem.write_port()
        m.d.comb += [prog_wr.en.eq(self.host_program.en),
                     prog_wr.addr.eq(self.host_program.addr),
                     prog_wr.data.eq(self.host_program.data),
                     cyc_rd.addr.eq(self.cycles_raddr), self.cycles_rdata.eq(cyc_rd.data)]

        state = Signal(SchedulerState)
        self._registers = {"state": state}
        seg_base = Signal(clog2(ops_depth(cfg)))
        op_pc = Signal.like(seg_base)
        clear_words = max(ch.act_depth, cfg.channels * cfg.cell_depth)
        count = Signal(max(clog2(clear_words) + 1, self._ring_bits + 1, 8))
        chan = Signal(range(cfg.channels + 1))
        frame = Signal(16)
        frame_cyc = Signal(COUNTER_BITS)
        slot = Signal(self.slot.shape())
        words = Signal(ch.descriptor_layout()["in_local"])
        src, dst = Signal(clog2(ch.act_depth)), Signal(clog2(ch.act_depth))
        cur = seq_rd.data          # the operation the sequencer runs (stable for a tile)
        nxt = fsm_rd.data          # the operation at op_pc (addressed the cycle before)
        pass_row = Signal.like(self.row)
        m.d.comb += [
            seq_rd.addr.eq(seg_base + seq.pc),
            seq.descriptor.eq(cur.desc),
            seq.scan_running.eq(self.scan_running),
            seq.all_idle.eq(self.all_idle),
            fsm_rd.addr.eq(op_pc),
            self.tile.eq(seq.tile),
            self.preload_en.eq(seq.preload_en),
            self.scan_start.eq(seq.scan_start), self.scan_rows.eq(seq.scan_rows),
            self.gate.eq(cur.gate),
            self.cell_tile.cell_base.eq(cur.cell_base), self.cell_tile.m_base.eq(cur.m_base),
            self.cell_tile.peephole.eq(cur.peephole),
            self.cell_tile.peep_shift.eq(cur.peep_shift),
            self.scan_base.eq(cur.scan_base),
            self.scan_mode.eq(state == SchedulerState.RUN),
            self.slot.eq(slot),
            self.busy.eq(state != SchedulerState.IDLE),
            self.frame_count.eq(frame),
        ]
        ready = frame < self.frames_ready
        m.d.comb += self.waiting.eq((state == SchedulerState.WAIT) & ~ready
                                    & (frame != self.frames))
        with m.If(self.busy & ~self.waiting):
            m.d.sync += [self.total_cycles.eq(self.total_cycles + 1),
                         frame_cyc.eq(frame_cyc + 1)]
        with m.If(state == SchedulerState.PASS):
            m.d.comb += [self.wb_en.eq(1), self.row.eq(pass_row), self.wb_channel.eq(chan)]
        with m.Else():
            m.d.comb += [self.wb_en.eq(seq.wb_en), self.row.eq(seq.row)]
        cell_wait = self.pipeline["CELL"] - 2
        slot_shift = clog2(self._slot_words)
        with m.Switch(state):
            with m.Case(SchedulerState.IDLE):
                with m.If(self.start):
                    m.d.sync += [state.eq(SchedulerState.CLEAR), count.eq(0), frame.eq(0),
                                 slot.eq(0), self.total_cycles.eq(0), self.done.eq(0)]
            with m.Case(SchedulerState.CLEAR):
                m.d.comb += [self.mode.eq(Mode.CLEAR), self.xfer_en.eq(1),
                             self.xfer_dst.eq(count)]
                m.d.sync += count.eq(count + 1)
                with m.If(count == clear_words - 1):
                    m.d.sync += [state.eq(SchedulerState.WAIT), self.total_cycles.eq(0)]
            with m.Case(SchedulerState.WAIT):
                with m.If(frame == self.frames):
                    m.d.sync += [state.eq(SchedulerState.IDLE), self.done.eq(1)]
                with m.Elif(ready):
                    m.d.sync += [state.eq(SchedulerState.LOAD), count.eq(0),
                                 frame_cyc.eq(1)]
            with m.Case(SchedulerState.LOAD):
                m.d.comb += [self.mode.eq(Mode.LOAD), self.xfer_en.eq(count < self.x_words),
                             self.xfer_src.eq(Cat(count[:slot_shift], slot)),
                             self.xfer_dst.eq(count)]
                m.d.sync += count.eq(count + 1)
                with m.If(count == self.x_words):
                    m.d.comb += fsm_rd.addr.eq(0)
                    m.d.sync += [state.eq(SchedulerState.DISPATCH), op_pc.eq(0)]
            with m.Case(SchedulerState.DISPATCH):
                with m.If(nxt.kind == 0):
                    m.d.comb += seq.start.eq(1)
                    m.d.sync += [seg_base.eq(op_pc), state.eq(SchedulerState.RUN)]
                with m.Else():
                    m.d.sync += [state.eq(SchedulerState.COPY), count.eq(0),
                                 words.eq(nxt.desc.in_local), src.eq(nxt.scan_base),
                                 dst.eq(nxt.desc.out_base)]
            with m.Case(SchedulerState.RUN):
                with m.If(~seq.busy):
                    m.d.comb += fsm_rd.addr.eq(seg_base + seq.pc + 1)
                    m.d.sync += [op_pc.eq(seg_base + seq.pc + 1), count.eq(0),
                                 chan.eq(1), pass_row.eq(0)]
                    with m.If(self.active > 1):
                        m.d.sync += state.eq(SchedulerState.PASS)
                    with m.Else():
                        self._after_tile(m, state, cur, cell_wait)
            with m.Case(SchedulerState.PASS):
                m.d.sync += pass_row.eq(pass_row + 1)
                with m.If(pass_row + 1 == cur.desc.out_local):
                    m.d.sync += [pass_row.eq(0), chan.eq(chan + 1)]
                    with m.If(chan + 1 == self.active):
                        m.d.sync += [state.eq(SchedulerState.PASS_TAIL), count.eq(0)]
            with m.Case(SchedulerState.PASS_TAIL):
                m.d.sync += count.eq(count + 1)
                with m.If(count == self.pipeline["PASS"] - 1):
                    m.d.sync += count.eq(0)
                    self._after_tile(m, state, cur, cell_wait)
            with m.Case(SchedulerState.CELL):
                m.d.sync += count.eq(count + 1)
                with m.If(count == cell_wait - 1):
                    m.d.sync += state.eq(SchedulerState.DISPATCH)
            with m.Case(SchedulerState.COPY):
                m.d.comb += [self.mode.eq(Mode.COPY), self.xfer_en.eq(count < words),
                             self.raddr.eq(src + count), self.xfer_dst.eq(dst + count)]
                m.d.sync += count.eq(count + 1)
                with m.If(count == words):
                    with m.If(nxt.end):
                        m.d.sync += state.eq(SchedulerState.FRAME_END)
                    with m.Else():
                        m.d.sync += [state.eq(SchedulerState.DISPATCH), op_pc.eq(op_pc + 1)]
                        m.d.comb += fsm_rd.addr.eq(op_pc + 1)
            with m.Case(SchedulerState.FRAME_END):
                m.d.comb += [cyc_wr.en.eq(1), cyc_wr.addr.eq(slot), cyc_wr.data.eq(frame_cyc + 1)]
                m.d.sync += [frame.eq(frame + 1), slot.eq(slot + 1),
                             state.eq(SchedulerState.WAIT)]
        return m

    @staticmethod
    def _after_tile(m, state, cur, cell_wait):
        """The state after a tile's last write-back: the cell unit's drain, the frame's
        end, or the next operation."""
        with m.If(cur.gate & (cell_wait > 0)):
            m.d.sync += state.eq(SchedulerState.CELL)
        with m.Elif(cur.end):
            m.d.sync += state.eq(SchedulerState.FRAME_END)
        with m.Else():
            m.d.sync += state.eq(SchedulerState.DISPATCH)

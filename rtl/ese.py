"""The ESE engine top: reset register, host port, the LSTM scheduler
(``rtl/lstm_scheduler.py``) and the PE array of C channels (``rtl/ese_array.py``).

docs/ese.md ("RTL", "Host port") gives the schedule, the host address map and the
registers; ``contract/lstm_program.py`` holds the map as plain Python.
"""

from __future__ import annotations

from amaranth.hdl import (
    Cat,
    ClockDomain,
    ClockSignal,
    Const,
    DomainRenamer,
    Module,
    Mux,
    ResetSignal,
    Signal,
)
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from contract.config import ConfigError, clog2
from contract.host_map import HOST_DATA_BITS, MemSel
from contract.lstm_config import ESEConfig
from contract.lstm_program import (
    ChanSel,
    ESEReg,
    ESERegion,
    encode_op,
    frame_io,
    frame_program,
)

from .cell_unit import CellUnit
from .common import pe_init, validating
from .ese_array import ESEArray
from .host_map import HostAddress, HostSignature
from .lstm_scheduler import LSTMScheduler, lstm_pipeline

__all__ = ["ESE", "ese_inits"]


def ese_inits(image) -> list[dict]:
    """Initial contents of every PE position's memories from an ``LSTMImage``."""
    out = []
    for p in range(image.config.n_pes):
        init = pe_init(image.matrices, p)
        init.update(sigmoid=[int(v) for v in image.sigmoid], tanh=[int(v) for v in image.tanh],
                    peephole=[int(v) for v in image.peephole[p]])
        out.append(init)
    return out


class ESE(wiring.Component):
    """An ESE engine: ``config.channels`` channels of ``config.n_pes`` PEs on one copy of
    the weights.

    Parameters
    ----------
    config : ESEConfig
    image : LSTMImage, optional
        Baked image: weights, tables, peepholes, the frame program and the frame I/O
        registers start with its contents.
    frame_slots : int
        Slots of the input and output frame rings (a power of two, at least 2: the host
        writes frame ``t + 1`` while frame ``t`` runs).
    slot_words : int
        Words per PE per slot (a power of two, at least the image's input and output
        words per PE).

    Members
    -------
    host : In(HostSignature())
    busy, done : Out(1)
    """

    def __init__(self, config: ESEConfig, *, image=None, frame_slots: int = 2,
                 slot_words: int = 16):
        with validating(self):
            if not isinstance(config, ESEConfig):
                raise TypeError(f"Config must be an ESEConfig, not {config!r}")
            for name, value in (("frame_slots", frame_slots), ("slot_words", slot_words)):
                if not isinstance(value, int) or value < 2 or value & (value - 1):
                    raise ValueError(f"{name} must be a power of two >= 2, not {value!r}")
            if image is not None:
                if image.config != config:
                    raise ConfigError("image was packed for a different ESE config")
                io = frame_io(image)
                if max(io.x_words, io.out_words) > slot_words:
                    raise ConfigError(f"slot_words {max(io.x_words, io.out_words)} needed, "
                                      f"{slot_words} configured")
            self._config, self._image = config, image
            self._slots, self._slot_words = frame_slots, slot_words
            super().__init__({"host": In(HostSignature()), "busy": Out(1), "done": Out(1)})

    @property
    def config(self) -> ESEConfig:
        return self._config

    @property
    def cell_latency(self) -> int:
        return int(CellUnit.LATENCY)

    @property
    def pipeline(self) -> dict[str, int]:
        """``golden.lstm_cycles.LSTM_PIPELINE`` of this design."""
        return lstm_pipeline(self.cell_latency)

    def elaborate(self, platform):
        m = Module()
        cfg, image = self._config, self._image
        ch = cfg.channel
        m.domains.core = ClockDomain("core", local=True)
        rst_q = Signal(name="rst_q", reset_less=True)
        m.d.sync += rst_q.eq(ResetSignal("sync"))
        m.d.comb += [ClockSignal("core").eq(ClockSignal("sync")),
                     ResetSignal("core").eq(rst_q)]
        core = DomainRenamer("core")
        program = [] if image is None else [encode_op(op, cfg) for op in frame_program(image)]
        io = None if image is None else frame_io(image)
        ring = self._slots * self._slot_words
        array = ESEArray(config=cfg, ring_depth=ring, slot_words=self._slot_words,
                         inits=None if image is None else ese_inits(image))
        sched = LSTMScheduler(config=cfg, frame_slots=self._slots,
                              slot_words=self._slot_words, cell_latency=self.cell_latency,
                              program=program)
        m.submodules.ese_array = core(array)
        m.submodules.lstm_scheduler = core(sched)
        self._blocks = {"array": array, "scheduler": sched}

        cmd_write, cmd_read = Signal(), Signal()
        cmd = Signal(HostAddress)
        wdata = Signal(HOST_DATA_BITS)
        m.d.core += [cmd_write.eq(self.host.write), cmd_read.eq(self.host.read),
                     cmd.eq(self.host.addr), wdata.eq(self.host.wdata)]
        busy = sched.busy
        mem_write = cmd_write & ~busy
        addr_bits = clog2(ch.act_depth)
        regs = {
            ESEReg.FRAMES: Signal(16, name="frames"),
            ESEReg.FRAMES_READY: Signal(16, name="frames_ready"),
            ESEReg.ACTIVE_CHANNELS: Signal(range(cfg.channels + 1), name="active_channels",
                                           init=cfg.channels),
            ESEReg.CHANNEL_SEL: Signal(range(cfg.channels), name="channel_sel"),
            ESEReg.X_WORDS: Signal(addr_bits + 1, name="x_words",
                                   init=io.x_words if io else 0),
            ESEReg.OUT_BASE: Signal(addr_bits, name="out_base", init=io.out_base if io else 0),
            ESEReg.OUT_WORDS: Signal(addr_bits + 1, name="out_words",
                                     init=io.out_words if io else 0),
        }
        wdata_high = Signal(64, name="wdata_high")
        with m.If(cmd_write & cmd.in_region(ESERegion.REGS)):
            with m.Switch(cmd.offset):
                for reg, sig in regs.items():
                    with m.Case(reg):
                        m.d.core += sig.eq(wdata)
                with m.Case(ESEReg.WDATA_HIGH):
                    m.d.core += wdata_high.eq(wdata)
        m.d.comb += [
            self.busy.eq(busy), self.done.eq(sched.done),
            sched.start.eq(cmd_write & cmd.is_register(ESEReg.CTRL_STATUS) & wdata[0]),
            sched.frames.eq(regs[ESEReg.FRAMES]),
            sched.frames_ready.eq(regs[ESEReg.FRAMES_READY]),
            sched.x_words.eq(regs[ESEReg.X_WORDS]),
            sched.scan_running.eq(array.scan_running), sched.all_idle.eq(array.all_idle),
            sched.host_program.en.eq(mem_write & cmd.in_region(ESERegion.PROGRAM)),
            sched.host_program.addr.eq(cmd.offset),
            sched.host_program.data.eq(Cat(wdata, wdata_high)),
            sched.cycles_raddr.eq(cmd.offset - ESEReg.FRAME_CYCLES),
        ]
        for name in ("tile", "preload_en", "wb_en", "wb_channel", "gate", "cell_tile", "scan_start",
                     "scan_rows", "scan_mode", "scan_base", "mode", "xfer_en", "xfer_src",
                     "xfer_dst", "slot"):
            m.d.comb += getattr(array, name).eq(getattr(sched, name))
        m.d.comb += [
            array.preload_row.eq(sched.row), array.wb_row.eq(sched.row),
            array.raddr.eq(Mux(busy, sched.raddr, cmd.offset)),
            array.active.eq(regs[ESEReg.ACTIVE_CHANNELS]),
            sched.active.eq(regs[ESEReg.ACTIVE_CHANNELS]),
            array.out_base.eq(regs[ESEReg.OUT_BASE]),
            array.out_words.eq(regs[ESEReg.OUT_WORDS]),
            # The input ring may be written during a run (double buffering: the host fills
            # the slots of frames the run has not reached); everything else only when idle.
            array.host.en.eq((mem_write & (cmd.in_region(ESERegion.PE)
                                           | cmd.in_region(ESERegion.CODEBOOK)
                                           | cmd.in_region(ESERegion.CHANNEL)
                                           | cmd.in_region(ESERegion.TABLES)))
                             | (cmd_write & cmd.in_region(ESERegion.CHANNEL)
                                & (cmd.sel == ChanSel.IN_RING))),
            array.host.addr.eq(cmd.offset), array.host.data.eq(wdata),
            array.host_pe.eq(cmd.pe),
            array.host_all.eq(cmd.in_region(ESERegion.CODEBOOK)
                              | cmd.in_region(ESERegion.TABLES)),
            array.host_sel.eq(cmd.sel),
            array.host_chan_mem.eq(cmd.in_region(ESERegion.CHANNEL)),
            array.host_chan_sel.eq(cmd.sel),
            array.host_channel.eq(regs[ESEReg.CHANNEL_SEL]),
            array.host_table.eq(cmd.in_region(ESERegion.TABLES)),
            array.host_raddr.eq(cmd.offset),
            array.host_rsel.eq(cmd.sel),
            array.read_pe.eq(cmd.pe),
        ]
        with m.If(cmd.in_region(ESERegion.CODEBOOK)):
            m.d.comb += array.host_sel.eq(MemSel.CODEBOOK)

        # ---- reads: stage 1 (memories addressed), stage 2 (rdata) -------------------------
        read_q, region_q, offset_q = Signal(), Signal(4), Signal(17)
        m.d.core += [read_q.eq(cmd_read), region_q.eq(cmd.region), offset_q.eq(cmd.offset)]
        reg_data = Signal(HOST_DATA_BITS)
        with m.Switch(offset_q):
            with m.Case(ESEReg.CTRL_STATUS):
                m.d.comb += reg_data.eq(Cat(busy, sched.done, sched.waiting))
            with m.Case(ESEReg.CONFIG_ID):
                m.d.comb += reg_data.eq(Const(cfg.config_id, 32))
            with m.Case(ESEReg.TOTAL_CYCLES):
                m.d.comb += reg_data.eq(sched.total_cycles)
            with m.Case(ESEReg.N_PES):
                m.d.comb += reg_data.eq(cfg.n_pes)
            with m.Case(ESEReg.FRAME_COUNT):
                m.d.comb += reg_data.eq(sched.frame_count)
            with m.Case(ESEReg.CHANNELS):
                m.d.comb += reg_data.eq(cfg.channels)
            with m.Case(ESEReg.FRAME_SLOTS):
                m.d.comb += reg_data.eq(self._slots)
            with m.Default():
                m.d.comb += reg_data.eq(sched.cycles_rdata)
        with m.If(region_q == ESERegion.CHANNEL):
            m.d.core += self.host.rdata.eq(array.read_data)
        with m.Else():
            m.d.core += self.host.rdata.eq(reg_data)
        m.d.core += self.host.rvalid.eq(read_q)
        return m

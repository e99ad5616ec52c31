"""Tile sequencer of the EIE array: walks the program of tile descriptors through preload,
compute and write-back, and counts the cycles (docs/rtl.md, "Sequencer and pipeline
constants"; docs/architecture.md, "Total cycles")."""

from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal
from amaranth.lib import data, enum, wiring
from amaranth.lib.wiring import In, Out

from contract.config import clog2

from .common import check_config, descriptor_layout, tile_layout, validating

__all__ = ["TileSequencer", "SequencerState", "COUNTER_BITS", "PRE_CYCLES",
           "pipeline_constants"]

#: Width of the cycle counters (``total_cycles``, ``layer_cycles``).
COUNTER_BITS = 32
#: Cycles from a tile's start to its first preload cycle: FETCH and DECODE.
PRE_CYCLES = 2


class SequencerState(enum.Enum, shape=3):
    """Phase of the tile sequencer."""

    IDLE = 0
    FETCH = 1
    DECODE = 2
    PRELOAD = 3
    COMPUTE = 4
    WRITEBACK = 5
    POST = 6


def pipeline_constants(*, idle_delay: int, writeback_latency: int) -> dict[str, int]:
    """``START``, ``PRE``, ``DRAIN`` and ``POST`` of docs/architecture.md ("Total cycles")
    for PEs with these latencies (``golden.cycle_model.PIPELINE`` for :class:`rtl.pe.PE`).

    ``PRE``: FETCH and DECODE. ``DRAIN``: a PE's ``idle`` rises ``idle_delay`` cycles
    after the span, plus one cycle to leave COMPUTE. ``POST``: a scan read sees a written
    row ``writeback_latency`` cycles after its ``wb_en``, and the next tile's first scan
    read is presented in its DECODE, ``POST + 2`` cycles after the last ``wb_en``; so
    ``POST = writeback_latency - 2``, at least 1. ``START``: the counters count busy
    cycles only.
    """
    return {"START": 0, "PRE": PRE_CYCLES, "DRAIN": idle_delay + 1,
            "POST": max(1, writeback_latency - 2)}


def _check_latency(name: str, value, low: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        kind = "non-negative" if low == 0 else "positive"
        raise TypeError(f"{name} must be a {kind} integer, not {value!r}")
    return value


class TileSequencer(wiring.Component):
    """Runs the program: ``IDLE -> FETCH -> DECODE -> PRELOAD -> COMPUTE -> WRITEBACK ->
    POST -> (FETCH | IDLE)``.

    ``start`` in ``IDLE`` starts a run at descriptor 0 with source bank 0 and clears the
    counters and ``done``. Per tile: FETCH presents ``pc`` to the program memory, DECODE
    registers its descriptor (``tile`` is then stable for the whole tile), PRELOAD raises
    ``preload_en`` for rows ``0 .. out_local-1`` (one per cycle) and ``scan_start`` in its
    last cycle, COMPUTE lasts until the scan has ended ``idle_delay`` cycles ago and every
    PE is idle, WRITEBACK raises ``wb_en`` for rows ``0 .. out_local-1``, POST waits
    ``post_cycles``. After a ``swap`` tile the source bank flips; after a ``swap`` or
    ``last`` tile the layer's cycles are stored; after the ``last`` tile ``done`` rises
    and the sequencer returns to ``IDLE``. So a tile takes
    ``PRE + out_local + C + DRAIN + out_local + POST`` cycles (:attr:`pipeline`), ``C``
    the compute span of docs/architecture.md::

        state   FETCH DECODE PRELOAD xL  COMPUTE (C + idle_delay + 1)  WRITEBACK xL  POST
        pc      t     t      t           t                             t             t
        tile          <- descriptor t, stable ------------------------------------------->

    Parameters
    ----------
    config : EIEConfig
    idle_delay : int
        Cycles from a PE being free to its ``idle`` (the PE class's ``IDLE_DELAY``).
    writeback_latency : int
        Cycles from ``wb_en`` until a scan read sees the row (``WRITEBACK_LATENCY``).

    Members
    -------
    start : In(1)
        Start a run (ignored unless ``IDLE``).
    busy : Out(1)
        Not ``IDLE``.
    done : Out(1)
        The last run has completed (cleared by the next start).
    pc : Out(clog2(max_tiles))
        Descriptor address for the program memory (synchronous read).
    descriptor : In(descriptor_layout(config))
        The program memory's read data: descriptor ``pc`` of the previous cycle.
    tile : Out(tile_layout(config))
        Fields of the current descriptor, for the PEs.
    preload_en, wb_en : Out(1)
        Preload / write-back request for accumulator ``row``.
    row : Out(out_local width)
    src_bank : Out(1)
        Activation bank the scan reads (the PEs write back to the other).
    scan_start : Out(1)
        Start the row scan of ``scan_rows`` rows.
    scan_rows : Out(in_local width)
        ``in_local`` of the current descriptor.
    scan_running : In(1)
        The row scan is in progress.
    all_idle : In(1)
        Every PE is idle.
    total_cycles : Out(32)
        Busy cycles of the last (or current) run.
    layer_cycles : Out(ArrayLayout(32, max_layers))
        Cycles of layer ``k`` of the last run.

    Raises
    ------
    TypeError
        ``config`` is not an ``EIEConfig``, or a latency is not an integer in range.
    """

    def __init__(self, *, config, idle_delay, writeback_latency):
        with validating(self):
            self._config = check_config(config)
            self._idle_delay = _check_latency("Idle delay", idle_delay, 0)
            self._writeback_latency = _check_latency("Write-back latency", writeback_latency, 1)
            fields = descriptor_layout(config)
            super().__init__({
                "start": In(1),
                "busy": Out(1),
                "done": Out(1),
                "pc": Out(clog2(config.max_tiles)),
                "descriptor": In(fields),
                "tile": Out(tile_layout(config)),
                "preload_en": Out(1),
                "wb_en": Out(1),
                "row": Out(fields["out_local"].shape),
                "src_bank": Out(1),
                "scan_start": Out(1),
                "scan_rows": Out(fields["in_local"].shape),
                "scan_running": In(1),
                "all_idle": In(1),
                "total_cycles": Out(COUNTER_BITS),
                "layer_cycles": Out(data.ArrayLayout(COUNTER_BITS, config.max_layers)),
            })

    @property
    def config(self):
        return self._config

    @property
    def idle_delay(self) -> int:
        return self._idle_delay

    @property
    def writeback_latency(self) -> int:
        return self._writeback_latency

    @property
    def pipeline(self) -> dict[str, int]:
        """The constants of docs/architecture.md for this sequencer (golden PIPELINE)."""
        return pipeline_constants(idle_delay=self._idle_delay,
                                  writeback_latency=self._writeback_latency)

    @property
    def post_cycles(self) -> int:
        """Cycles after the last write-back request so that the next tile's first scan read
        (presented in DECODE) and a host read after ``done`` see the written row."""
        return self.pipeline["POST"]

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        state = Signal(SequencerState, name="state")
        in_local = Signal(self.scan_rows.shape(), name="in_local")
        out_local = Signal(self.row.shape(), name="out_local")
        flag_swap = Signal(name="flag_swap")
        flag_last = Signal(name="flag_last")
        post_count = Signal(range(self.post_cycles + 1), name="post_count")
        layer_count = Signal(COUNTER_BITS, name="layer_count")
        layer = Signal(range(cfg.max_layers), name="layer")
        layer_cycles = Array(Signal(COUNTER_BITS, name=f"layer_cycles{k}")
                             for k in range(cfg.max_layers))
        # Registers of the last elaboration, for white-box checks in the tests.
        self._registers = {"state": state}
        pc, row, src_bank, total_cycles = self.pc, self.row, self.src_bank, self.total_cycles

        m.d.comb += [
            self.busy.eq(state != SequencerState.IDLE),
            self.scan_rows.eq(in_local),
            self.preload_en.eq(state == SequencerState.PRELOAD),
            self.wb_en.eq(state == SequencerState.WRITEBACK),
        ]
        m.d.comb += [self.layer_cycles[k].eq(layer_cycles[k]) for k in range(cfg.max_layers)]
        with m.If(self.busy):
            m.d.sync += [total_cycles.eq(total_cycles + 1), layer_count.eq(layer_count + 1)]

        # The PEs raise idle ``idle_delay`` cycles after their last entry; the scanner's
        # "all rows scanned" is delayed by the same amount so that the compute phase ends
        # exactly idle_delay + 1 cycles after the span C of docs/architecture.md.
        scan_done = ~self.scan_running
        for k in range(self._idle_delay):
            delayed = Signal(name=f"scan_done_d{k + 1}")
            m.d.sync += delayed.eq(Mux(self.scan_start, 0, scan_done))
            scan_done = delayed
        compute_end = Signal(name="compute_end")
        m.d.comb += compute_end.eq(scan_done & self.all_idle)

        with m.Switch(state):
            with m.Case(SequencerState.IDLE):
                with m.If(self.start):
                    m.d.sync += [
                        state.eq(SequencerState.FETCH), pc.eq(0), src_bank.eq(0),
                        layer.eq(0), total_cycles.eq(0), layer_count.eq(0), self.done.eq(0),
                    ]
            with m.Case(SequencerState.FETCH):
                m.d.sync += state.eq(SequencerState.DECODE)
            with m.Case(SequencerState.DECODE):
                descriptor = self.descriptor
                m.d.sync += [getattr(self.tile, name).eq(getattr(descriptor, name))
                             for name in self.tile.shape().members]
                m.d.sync += [
                    in_local.eq(descriptor.in_local), out_local.eq(descriptor.out_local),
                    flag_swap.eq(descriptor.swap), flag_last.eq(descriptor.last),
                    row.eq(0), state.eq(SequencerState.PRELOAD),
                ]
            with m.Case(SequencerState.PRELOAD):
                m.d.sync += row.eq(row + 1)
                # The scanner loads row 0 (addressed since FETCH) in the last preload cycle.
                with m.If(row + 1 >= out_local):
                    m.d.comb += self.scan_start.eq(1)
                    m.d.sync += [state.eq(SequencerState.COMPUTE), row.eq(0)]
            with m.Case(SequencerState.COMPUTE):
                # Write-back may start in the cycle after the PEs' idle is seen, so DRAIN is
                # idle_delay + 1 cycles and needs no state of its own.
                with m.If(compute_end):
                    m.d.sync += state.eq(SequencerState.WRITEBACK)
            with m.Case(SequencerState.WRITEBACK):
                m.d.sync += row.eq(row + 1)
                with m.If(row + 1 >= out_local):
                    m.d.sync += [state.eq(SequencerState.POST), post_count.eq(0)]
            with m.Case(SequencerState.POST):
                m.d.sync += post_count.eq(post_count + 1)
                with m.If(post_count + 1 >= self.post_cycles):
                    with m.If(flag_swap | flag_last):
                        m.d.sync += [layer_cycles[layer].eq(layer_count + 1),
                                     layer_count.eq(0), layer.eq(layer + 1)]
                    with m.If(flag_swap):
                        m.d.sync += src_bank.eq(~src_bank)
                    with m.If(flag_last):
                        m.d.sync += [state.eq(SequencerState.IDLE), self.done.eq(1)]
                    with m.Else():
                        m.d.sync += [state.eq(SequencerState.FETCH), pc.eq(pc + 1)]
        return m

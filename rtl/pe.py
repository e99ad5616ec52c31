"""One EIE processing element: activation queue, pointer read, sparse-matrix read,
arithmetic unit and activation buffers (docs/rtl.md, section "PE")."""

from __future__ import annotations

from collections.abc import Mapping

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from contract.config import clog2
from contract.host_map import MemSel

from .act_buffer import ActBuffer
from .act_queue import ActQueue
from .arith_unit import ArithUnit
from .common import (
    PE_INIT_KEYS,
    HostWrite,
    act_layout,
    check_config,
    check_init,
    tile_layout,
    validating,
)
from .pe_wide import wide_front
from .ptr_read import PtrRead
from .spmat_read import SpmatRead, spmat_command_layout
from .wide_scanner import broadcast_signature

__all__ = ["PE", "IDLE_DELAY", "PRELOAD_LATENCY", "WRITEBACK_LATENCY"]

#: ``idle`` rises this many cycles after the PE is free (nothing pending or queued and
#: the spmat reader on its last entry): the last accumulator write is 3 cycles after the
#: last entry, so every write has completed by then.
IDLE_DELAY = 4
#: A preload request in cycle ``t`` is in the accumulator from cycle ``t + 2`` on.
PRELOAD_LATENCY = 2
#: A write-back request in cycle ``t`` is in the activation buffer from ``t + 3`` on.
WRITEBACK_LATENCY = 3


class PE(wiring.Component):
    """EIE processing element.

    Processing contract (docs/architecture.md): a broadcast ``(a_j, j)`` transferred on
    ``act_in`` in cycle ``b`` has its pointers ``P_j``, ``P_{j+1}`` read in ``b`` (pointer
    stage in ``b + 1``); a column with ``len = P_{j+1} - P_j > 0`` entries is written
    into the queue as ``(a_j, start, len)`` at the end of ``b + 1``, a column with no
    entries is dropped and costs the PE nothing.  The PE pops queued column ``m`` in cycle
    ``s_m = max(b_m + 2, s_{m'} + len_{m'})`` (``m'`` the previous queued column) and
    streams its entries in ``s_m + 1 .. s_m + len_m``, one per cycle, consecutive columns
    with no bubble.  ``act_in.ready`` (a function of registers only, independent of
    ``valid``) is ``level - pop + pending < queue_depth``: the queue level at the start of
    the cycle, minus 1 if the PE pops in this cycle, plus 1 if a broadcast was accepted
    in the previous cycle (its column in the pointer stage may still be queued).
    Pipeline, for a broadcast accepted in cycle ``b`` and popped in ``s``::

        b        transfer; read P_j, P_{j+1}      (ptr_read)
        b+1      length known; queue (a_j, start, len) unless len == 0
        s        pop (>= b+2); spmat window fetch (spmat_read)
        s+1 ..   entries emitted, one per cycle  (s+1 .. s+len)
        +1       register entry, row, codebook read
        +2       multiply, accumulator read
        +3       accumulate (with bypass), accumulator write

    Latencies (cycle ``t`` = the request cycle):

    - ``preload_en``: accumulator written at the end of ``t + 1``.
    - ``wb_en``: activation ``act[dst_bank][out_base + wb_row]`` written at the end of
      ``t + 2`` (``dst_bank`` is sampled in ``t``; ``tile`` must be stable).
    - ``idle``: high in cycle ``t`` iff the PE was *free* in each of the cycles
      ``t - IDLE_DELAY .. t``: no broadcast accepted in the previous cycle, the queue
      empty at the start of the cycle and the spmat reader on its last entry or idle
      (the cycle is at or after ``s_last + len_last``).  After the last broadcast
      (cycle ``b_last``) it rises exactly in cycle
      ``max(b_last + 2, s_last + len_last) + IDLE_DELAY`` (``IDLE_DELAY = 4``), when
      every accumulator write has completed.  It depends on registered state only (no
      combinational path from any input).
    - ``scan_data``: 1-cycle synchronous read.
    - host writes take effect at the end of their cycle.

    The latencies are also class attributes (``PE.IDLE_DELAY``, ``PE.PRELOAD_LATENCY``,
    ``PE.WRITEBACK_LATENCY``): the PE array and the tile sequencer read them from whatever
    PE class they are given.

    Preload, compute and write-back must not overlap; ``tile`` is held stable for a tile.

    Parameters
    ----------
    config : EIEConfig
    init : Mapping[str, sequence of int], optional
        Initial memory contents: ``spmat``, ``ptr_even``, ``ptr_odd``, ``bias``,
        ``codebook`` (as from :func:`rtl.common.pe_init`) and optionally ``act0``,
        ``act1``.  Missing memories and rows are 0.

    Members
    -------
    act_in : In(stream.Signature(act_layout(config)))
        Activation broadcasts ``(value, index = j)``;
        ``ready = level - pop + pending < queue_depth`` (see above).
    tile : In(tile_layout(config))
        ``ptr_base``, ``spmat_base``, ``bias_base``, ``out_base``, ``slot``, ``shift``,
        ``relu``, ``bias_en`` of the current tile.
    preload_en : In(1)
    preload_row : In(range(acc_depth))
    wb_en : In(1)
    wb_row : In(range(acc_depth))
    dst_bank : In(1)
        Activation bank written back to.
    idle : Out(1)
    scan_bank : In(1)
    scan_addr : In(range(act_depth))
    scan_data : Out(signed(act_bits))
    host : In(HostWrite.Signature(clog2(deepest memory), widest memory))
        Host write into memory ``host_sel``: word address inside that memory (spmat:
        logical word address), data LSB-aligned and truncated to the memory width
        (64 bits by default).
    host_sel : In(MemSel)
        The memory ``host`` writes (:class:`contract.host_map.MemSel`; ``ACT0``/``ACT1``
        are the activation banks).

    Raises
    ------
    TypeError
        ``config`` is not an ``EIEConfig``; ``init`` is not a mapping or holds
        non-integers.
    ValueError
        Unknown ``init`` key or too many initial values.
    """

    IDLE_DELAY = IDLE_DELAY
    PRELOAD_LATENCY = PRELOAD_LATENCY
    WRITEBACK_LATENCY = WRITEBACK_LATENCY

    def __init__(self, *, config, init=None):
        with validating(self):
            self._config = check_config(config)
            if init is None:
                init = {}
            if not isinstance(init, Mapping):
                raise TypeError(f"PE init must be a mapping of memory name to contents, "
                                f"not {init!r}")
            unknown = sorted(set(init) - set(PE_INIT_KEYS))
            if unknown:
                raise ValueError(f"Unknown PE init memory name(s) {unknown}; expected some of "
                                 f"{list(PE_INIT_KEYS)}")
            depths = {"spmat": config.spmat_depth, "ptr_even": config.ptr_depth,
                      "ptr_odd": config.ptr_depth, "bias": config.bias_depth,
                      "codebook": config.max_layers * config.codebook_size,
                      "act0": config.act_depth, "act1": config.act_depth}
            self._init = {name: check_init(f"the PE {name} memory", init.get(name), depth)
                          for name, depth in depths.items()}
            host_width = max(config.word_bits, config.acc_bits, config.pointer_bits,
                             config.act_bits, config.codebook_bits)
            host_addr_width = clog2(max(depths.values()))
            if config.broadcast_width == 1:
                act_in = In(stream.Signature(act_layout(config)))
            else:
                act_in = In(broadcast_signature(act_layout(config), config.broadcast_width))
            super().__init__({
                "act_in": act_in,
                "tile": In(tile_layout(config)),
                "preload_en": In(1),
                "preload_row": In(range(config.acc_depth)),
                "wb_en": In(1),
                "wb_row": In(range(config.acc_depth)),
                "dst_bank": In(1),
                "idle": Out(1),
                "scan_bank": In(1),
                "scan_addr": In(clog2(config.act_depth)),
                "scan_data": Out(signed(config.act_bits)),
                "host": In(HostWrite.Signature(host_addr_width, host_width)),
                "host_sel": In(MemSel),
            })

    @property
    def config(self):
        return self._config

    @property
    def init(self):
        """Validated initial contents (lists of int, empty for all zeros)."""
        return {name: list(values) for name, values in self._init.items()}

    def _units(self, m, queue, ptr):
        """The units after the queue, shared by both fronts: the spmat reader, arithmetic
        unit and activation buffers, all five registered as submodules in one order."""
        config, init = self._config, self._init
        spmat = SpmatRead(config=config, init=init["spmat"])
        arith = ArithUnit(config=config, codebook_init=init["codebook"],
                          bias_init=init["bias"])
        act = ActBuffer(config=config, init0=init["act0"], init1=init["act1"])
        m.submodules.queue, m.submodules.ptr_read, m.submodules.spmat_read = queue, ptr, spmat
        m.submodules.arith_unit, m.submodules.act_buffer = arith, act
        # The last elaboration's blocks, for white-box checks in the tests.
        self._blocks = {"queue": queue, "ptr_read": ptr, "spmat_read": spmat,
                        "arith_unit": arith, "act_buffer": act}
        return spmat, arith, act

    def _front(self, m):
        """B = 1: one broadcast per cycle, EIE's pointer stage and queue."""
        config, init = self._config, self._init
        queue = ActQueue(layout=spmat_command_layout(config), depth=config.queue_depth)
        ptr = PtrRead(config=config, init_even=init["ptr_even"], init_odd=init["ptr_odd"])
        spmat, arith, act = self._units(m, queue, ptr)
        tile = self.tile

        # ---- pointer stage: a broadcast's pointers are read in the cycle it arrives -----
        transfer = self.act_in.valid & self.act_in.ready
        m.d.comb += [
            ptr.en.eq(transfer),
            ptr.index.eq(self.act_in.payload.index),
            ptr.base.eq(tile.ptr_base),
        ]
        pending = Signal()            # accepted last cycle; ptr.start/end are its pointers
        pending_act = Signal(signed(config.act_bits))
        m.d.sync += pending.eq(transfer)
        with m.If(transfer):
            m.d.sync += pending_act.eq(self.act_in.payload.value)
        length = Signal(config.pointer_bits)
        entry_shift = config.entries_per_word.bit_length() - 1
        m.d.comb += [
            length.eq(ptr.end - ptr.start),
            # Only columns with entries in this PE are queued: an empty one costs nothing.
            queue.i.valid.eq(pending & (length != 0)),
            queue.i.payload.start.eq((tile.spmat_base << entry_shift) + ptr.start),
            queue.i.payload.length.eq(length),
            queue.i.payload.act.eq(pending_act),
        ]

        # ---- queue -> spmat reader: pop when the reader is on the previous column's last
        # entry (or idle), so consecutive columns follow with no bubble.
        wiring.connect(m, queue.o, spmat.i)
        pop = queue.o.valid & spmat.i.ready                 # registers only
        # Accept a broadcast only if the queue has room for it after the pointer stage even
        # if the column now in the pointer stage turns out non-empty:
        #   level - pop + pending < queue_depth   (a function of registers only).
        m.d.comb += self.act_in.ready.eq(queue.level + pending < config.queue_depth + pop)
        return queue, ptr, spmat, arith, act, pending

    def elaborate(self, platform):
        config = self._config
        m = Module()
        if config.broadcast_width == 1:
            queue, ptr, spmat, arith, act, pending = self._front(m)
            any_pending = pending
        else:
            queue, ptr, spmat, arith, act, pending = wide_front(self, m)
            any_pending = pending.any()
        tile = self.tile
        wiring.connect(m, spmat.o, arith.i)

        # ---- idle: IDLE_DELAY + 1 consecutive free cycles ----------------------------
        # A broadcast accepted in cycle b is pending in b + 1, so the input transfer itself
        # need not be looked at: idle stays a function of registers.
        free = ~any_pending & (queue.level == 0) & spmat.i.ready
        free_count = Signal(range(IDLE_DELAY + 1))
        with m.If(~free):
            m.d.sync += free_count.eq(0)
        with m.Elif(free_count != IDLE_DELAY):
            m.d.sync += free_count.eq(free_count + 1)
        m.d.comb += self.idle.eq(free & (free_count == IDLE_DELAY))
        # Registers of the last elaboration, for white-box reset checks in the tests.
        self._registers = {"pending": pending, "free_count": free_count}

        # ---- preload and write-back ------------------------------------------------
        m.d.comb += [
            arith.tile.eq(tile),
            arith.preload_en.eq(self.preload_en),
            arith.preload_row.eq(self.preload_row),
            arith.wb_en.eq(self.wb_en),
            arith.wb_row.eq(self.wb_row),
        ]
        dst_bank_1, dst_bank_2 = Signal(), Signal()
        m.d.sync += [dst_bank_1.eq(self.dst_bank), dst_bank_2.eq(dst_bank_1)]
        m.d.comb += [
            act.wb_en.eq(arith.wb.valid),
            act.wb_bank.eq(dst_bank_2),
            act.wb_addr.eq(tile.out_base + arith.wb.payload.row),
            act.wb_data.eq(arith.wb.payload.value),
            act.scan_bank.eq(self.scan_bank),
            act.scan_addr.eq(self.scan_addr),
            self.scan_data.eq(act.scan_data),
        ]

        # ---- host writes: one port per unit, the memory selected by host_sel -----------
        sel = self.host_sel
        writes = ((spmat.host, sel == MemSel.SPMAT),
                  (ptr.host, (sel == MemSel.PTR_EVEN) | (sel == MemSel.PTR_ODD)),
                  (arith.host_codebook, sel == MemSel.CODEBOOK),
                  (arith.host_bias, sel == MemSel.BIAS),
                  (act.host, (sel == MemSel.ACT0) | (sel == MemSel.ACT1)))
        for port, hit in writes:
            m.d.comb += [port.en.eq(self.host.en & hit), port.addr.eq(self.host.addr),
                         port.data.eq(self.host.data)]
        m.d.comb += [ptr.host_bank.eq(sel == MemSel.PTR_ODD),
                     act.host_bank.eq(sel == MemSel.ACT1)]
        return m

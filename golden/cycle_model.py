"""Cycle model of the EIE array: the schedule of docs/architecture.md, cycle for cycle.

For each tile the LNZD turns the source activation rows into broadcast slots; each PE
reads the pointers of a broadcast column as it arrives, queues the non-empty columns
(depth ``queue_depth``) and spends ``len`` cycles on each, so a column with no entries in
a PE costs that PE no cycle. :func:`compute_span` evaluates the
recurrences of docs/architecture.md ("Broadcast slots", "PE", "Compute span") exactly;
:func:`cycles` adds the preload/write-back phases and the pipeline constants.

The activations each layer sees come from the bit-exact model (:func:`golden.model.run`),
so a later layer's schedule depends on the real ReLU sparsity of its input.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from contract.image import PackedImage

from .model import Tile, decode_program, run

__all__ = ["PIPELINE", "Span", "TileCycles", "LayerCycles", "CycleReport", "compute_span",
           "cycles"]

# Fixed latencies of the RTL pipeline, in cycles (docs/architecture.md, "Total cycles"):
#   START: once per run, from `start` to the first tile's preload;
#   PRE:   per tile, from the descriptor fetch to the first preload cycle;
#   DRAIN: per tile, from the end of the compute span to the first write-back cycle
#          (the PE pipeline emptying);
#   POST:  per tile, from the last write-back cycle to the next tile (or `done`).
# Owned by the RTL: the RTL engineer sets these to the implementation's values; the
# model and the RTL counters must then agree exactly.
PIPELINE = {"START": 0, "PRE": 2, "DRAIN": 5, "POST": 1}


@dataclass
class Span:
    """Compute phase of one tile (docs/architecture.md).

    Attributes
    ----------
    compute : ``C``, cycles of the compute phase.
    busy : int64 [n_pes] entries processed per PE; ``idle = compute - busy``.
    stalls : cycles the broadcast waited for a PE that could not accept (sum over non-zero
        slots of ``b_m - (b_{k-1} + 1)``).
    broadcasts : ``M``, non-zero activations broadcast.
    slots : broadcast slots (non-zero slots plus one per all-zero activation row); with
        ``B > 1`` a slot is a cycle's group of up to ``B`` non-zeros.
    columns, broadcast_cycles, pop_cycles : only with ``trace=True``: int64 [M] column
        ``j_m`` and cycle ``b_m`` of each non-zero broadcast, int64 [n_pes, M] the cycle
        ``s[p, m]`` PE ``p`` pops it, -1 where the column is empty in PE ``p`` (never
        queued); cycles relative to the start of the compute phase.
    """

    compute: int
    busy: np.ndarray
    stalls: int
    broadcasts: int
    slots: int
    # with trace=True: columns j_m, broadcast cycles b_m and pop cycles s[p, m]
    columns: np.ndarray | None = None
    broadcast_cycles: np.ndarray | None = None
    pop_cycles: np.ndarray | None = None

    @property
    def idle(self) -> np.ndarray:
        return self.compute - self.busy

    @property
    def ideal(self) -> int:
        n = len(self.busy)
        return int(-(-int(self.busy.sum()) // n))

    @property
    def efficiency(self) -> float:
        return self.ideal / self.compute if self.compute else 1.0


def compute_span(lengths: np.ndarray, activations: np.ndarray, queue_depth: int,
                 trace: bool = False, broadcast_width: int = 1) -> Span:
    """Evaluate the compute-phase schedule of one tile.

    Parameters
    ----------
    lengths : int [n_pes, in_local * n_pes] entries of column ``j`` in PE ``p``'s tile.
    activations : int [in_local * n_pes] the source activations the LNZD scans (row ``l``
        holds ``j = l * n_pes + p``); only their zero/non-zero pattern matters.
    queue_depth : ``D``, the activation-queue depth.
    trace : also return the per-broadcast cycles (for debugging the RTL against the model).
    broadcast_width : ``B``, non-zero activations broadcast per cycle (docs/architecture.md,
        "Broadcast width"); 1 is EIE and uses the closed form below, wider ones
        :func:`_wide_span`.
    """
    if broadcast_width != 1:
        return _wide_span(lengths, activations, queue_depth, broadcast_width, trace)
    lengths = np.asarray(lengths, np.int64)
    n = lengths.shape[0]
    act = np.asarray(activations)
    if act.size % n:
        raise ValueError(f"activations ({act.size}) are not whole rows of {n}")
    nz = act.reshape(-1, n) != 0                                 # [in_local, n]
    row_has = nz.any(axis=1)
    js = np.flatnonzero(nz.reshape(-1))                          # ascending j == slot order
    m_total = int(js.size)
    # Empty slots (all-zero rows) between consecutive non-zero slots.
    empty_before = np.concatenate(([0], np.cumsum(~row_has)))    # empty rows with index < l
    n_empty = int(empty_before[-1])
    rows_of = js // n
    eb = empty_before[rows_of]
    gaps = np.diff(np.concatenate(([0], eb))).tolist()           # E_m
    tail = n_empty - (int(eb[-1]) if m_total else 0)

    lens = lengths[:, js]                                        # [n, M]
    busy = lens.sum(axis=1)
    depth = int(queue_depth)

    # docs/architecture.md: broadcast m goes in the first cycle b >= free with, in every
    # PE, (queue level) - (pop in b) + (broadcast in b - 1) < D, i.e.
    #   b_m = max(free_m, max_p R_D[p]), plus one if that is b_{m-1} + 1 and D = 1 or
    #   max_p R'_{D-1}[p] > b_{m-1} + 1 (R' over the non-empty columns before m - 1),
    # where R_c[p] is the pop cycle of PE p's c-th most recent non-empty column before m
    # (0 if none). A non-empty column of PE p is popped in s = max(b_m + 2, e[p]) and
    # ends in e[p] = s + len; empty columns are never queued.
    #
    # Which broadcast is PE p's c-th most recent non-empty column before m depends only
    # on the lengths, so it is precomputed as flat indices into pops[M + 1, n] (row M
    # stays 0 for "none"); the loop then needs one gather per broadcast.
    nonempty = lens > 0                                          # [n, M]
    before = np.cumsum(nonempty, axis=1) - nonempty              # non-empty columns < m
    pe_of, m_of = np.nonzero(nonempty)
    by_rank = np.full((n, m_total + 1), m_total, np.int64)       # rank -> broadcast m
    by_rank[pe_of, before[pe_of, m_of]] = m_of
    pe_index = np.arange(n)[:, None]

    def recent(c):
        """[M, n] flat index into pops of PE p's c-th most recent non-empty column."""
        rank = before - c
        k = np.where(rank >= 0, by_rank[pe_index, np.maximum(rank, 0)], m_total)
        return np.ascontiguousarray((k * n + pe_index).T)

    last_d = recent(depth)
    last_d1 = recent(depth - 1) if depth > 1 else None
    pops = np.zeros((m_total + 1, n), np.int64)
    pops_flat = pops.reshape(-1)
    # e[p], carried through empty columns as max(e, b + 2): the next pop cycle
    # max(e, b' + 2) is the same for every later b' > b.
    end = np.zeros(n, np.int64)
    lens_t = np.ascontiguousarray(lens.T)                        # [M, n]
    b_prev = -1
    stalls = 0
    b_trace = np.zeros(m_total, np.int64) if trace else None
    for m in range(m_total):
        free = b_prev + gaps[m] + 1
        b = max(free, int(pops_flat.take(last_d[m]).max()))
        # Back to back with broadcast m - 1, which is still in the pointer stage.
        if m and b == b_prev + 1 and (
                last_d1 is None or int(pops_flat.take(last_d1[m - 1]).max()) > b):
            b += 1
        stalls += b - free
        s = pops[m]
        np.maximum(end, b + 2, out=s)
        np.add(s, lens_t[m], out=end)
        b_prev = b
        if trace:
            b_trace[m] = b
    b_last = b_prev + tail
    compute = b_last + 1
    if m_total:
        compute = max(compute, b_prev + 2, int(end.max()))
    span = Span(int(compute), busy, int(stalls), m_total, m_total + n_empty)
    if trace:
        span.columns, span.broadcast_cycles = js, b_trace
        span.pop_cycles = np.where(nonempty, pops[:m_total].T, -1)
    return span


def _wide_span(lengths, activations, queue_depth: int, width: int, trace: bool) -> Span:
    """The compute phase with ``B = width`` broadcast lanes, one group per cycle.

    docs/architecture.md ("Broadcast width"): the scan takes, in cycle ``b``, the next
    ``k = min(B, left, R)`` non-zeros of the current row, where ``left`` is what the row
    has left and ``R = min_p room[p](b)``, ``room = D - queued - pending``: ``queued`` the
    non-empty columns of PE ``p`` broadcast by ``b - 2`` and not popped by ``b``
    (``s > b``), ``pending`` the size of the group of cycle ``b - 1``. Nothing goes while
    ``R = 0``. With ``B = 1`` this is the closed form of :func:`compute_span` (a test
    checks the two agree). The loop is over groups, jumping over stalls: once the group of
    ``b - 1`` has left its pointer stage, ``R >= 1`` first holds in the cycle of the
    ``D``-th most recent pop.
    """
    lengths = np.asarray(lengths, np.int64)
    n = lengths.shape[0]
    act = np.asarray(activations)
    if act.size % n:
        raise ValueError(f"activations ({act.size}) are not whole rows of {n}")
    depth, width = int(queue_depth), int(width)
    nz = act.reshape(-1, n) != 0
    js = np.flatnonzero(nz.reshape(-1))
    m_total = int(js.size)
    lens_t = np.ascontiguousarray(lengths[:, js].T)              # [M, n]
    busy = lens_t.sum(axis=0) if m_total else np.zeros(n, np.int64)
    # pops[p, r]: pop cycle of PE p's r-th non-empty column; queued[p] of them so far.
    pops = np.full((n, m_total + 1), -1, np.int64)
    queued = np.zeros(n, np.int64)
    before_last = np.zeros(n, np.int64)      # queued[] before the last group
    lanes = np.arange(1, depth + 1)
    rows_pe = np.arange(n)[:, None]
    end = np.zeros(n, np.int64)
    b_prev, g_prev = -1, 0                   # the last group's cycle and size
    free, last_slot, stalls, groups = 0, -1, 0, 0
    b_of = np.zeros(m_total, np.int64)
    pop_of = np.full((n, m_total), -1, np.int64) if trace else None

    def outstanding(top, b):
        """[n] pops after cycle b among each PE's D most recent columns below rank top."""
        idx = top[:, None] - lanes
        window = np.where(idx >= 0, pops[rows_pe, np.maximum(idx, 0)], -1)
        return (window > b).sum(axis=1)

    m = 0
    for row_has in nz.any(axis=1):
        if not row_has:
            last_slot, free = free, free + 1
            continue
        row_end = m + int(np.count_nonzero(nz[js[m] // n]))
        while m < row_end:
            b = free
            while True:
                if b == b_prev + 1:
                    room = depth - g_prev - outstanding(before_last, b)
                    if room.min() >= 1:
                        break
                    b += 1
                    continue
                # The last group is queued too: R >= 1 from the D-th most recent pop on.
                idx = queued - depth
                dth = np.where(idx >= 0, pops[np.arange(n), np.maximum(idx, 0)], -1)
                b = max(b, int(dth.max()))
                room = depth - outstanding(queued, b)
                break
            k = min(width, row_end - m, int(room.min()))
            stalls += b - free
            before_last = queued.copy()
            for c in range(m, m + k):
                length = lens_t[c]
                nonempty = length > 0
                s = np.maximum(end, b + 2)
                rows = np.flatnonzero(nonempty)
                pops[rows, queued[rows]] = s[rows]
                if trace:
                    pop_of[rows, c] = s[rows]
                queued += nonempty
                end = np.where(nonempty, s + length, end)
                b_of[c] = b
            m += k
            b_prev, g_prev, groups = b, k, groups + 1
            last_slot, free = b, b + 1
    compute = last_slot + 1
    if m_total:
        compute = max(compute, b_prev + 2, int(end.max()))
    n_empty = int((~nz.any(axis=1)).sum())
    span = Span(int(compute), busy.astype(np.int64), int(stalls), m_total, groups + n_empty)
    if trace:
        span.columns, span.broadcast_cycles, span.pop_cycles = js, b_of, pop_of
    return span


@dataclass
class TileCycles:
    """Cycles of one tile: ``PRE + out_local + compute + DRAIN + out_local + POST``."""

    tile: int
    layer: int
    out_local: int
    span: Span
    cycles: int

    @property
    def compute(self) -> int:
        return self.span.compute


@dataclass
class LayerCycles:
    """Cycles of one layer (sums over its tiles).

    Attributes
    ----------
    cycles : total cycles of the layer's tiles, phases and pipeline constants included.
    compute : sum of the tiles' compute spans ``C``.
    ideal : sum of the tiles' ideal bounds ``ceil(sum_p busy / n_pes)``.
    efficiency : load-balance efficiency ``ideal / compute``.
    busy, idle : int64 [n_pes] entries processed / compute cycles without an entry.
    stalls : broadcast stall cycles (full queues).
    tiles : the per-tile figures.
    """

    cycles: int
    compute: int
    ideal: int
    efficiency: float
    busy: np.ndarray
    idle: np.ndarray
    stalls: int
    tiles: list = field(default_factory=list)


@dataclass
class CycleReport:
    """Cycle figures of one inference: per layer, and ``total`` (``START`` included)."""

    layers: list
    total: int

    @property
    def compute(self) -> int:
        return sum(layer.compute for layer in self.layers)


def cycles(image: PackedImage, q_in, tiles: list[Tile] | None = None,
           pipeline: dict | None = None, trace: bool = False) -> CycleReport:
    """Cycle count of one inference on the image (docs/architecture.md).

    Parameters
    ----------
    image : the packed image.
    q_in : int [n_in], one raw input vector (:func:`golden.quantize_input`).
    tiles : decoded program to reuse (:func:`golden.model.decode_program`).
    pipeline : overrides :data:`PIPELINE` (for what-if studies and tests).
    trace : keep each tile's broadcast and pop cycles (:class:`Span`).
    """
    q_in = np.asarray(q_in)
    if q_in.ndim != 1:
        raise ValueError(f"cycles() takes one input vector [n_in], not shape {q_in.shape}")
    pipe = dict(PIPELINE if pipeline is None else pipeline)
    if tiles is None:
        tiles = decode_program(image)
    result = run(image, q_in, tiles=tiles)
    n = image.config.n_pes
    per_layer: dict[int, list[TileCycles]] = {}
    for tile in tiles:
        desc = tile.desc
        width = desc.in_local * n
        acts = result.layer_inputs[tile.layer][:width]
        span = compute_span(tile.lengths, acts, image.config.queue_depth, trace=trace,
                            broadcast_width=image.config.broadcast_width)
        total = (pipe["PRE"] + desc.out_local + span.compute + pipe["DRAIN"]
                 + desc.out_local + pipe["POST"])
        per_layer.setdefault(tile.layer, []).append(
            TileCycles(tile.index, tile.layer, desc.out_local, span, int(total)))
    layers = []
    for k in sorted(per_layer):
        tcs = per_layer[k]
        compute = sum(t.compute for t in tcs)
        ideal = sum(t.span.ideal for t in tcs)
        busy = np.sum([t.span.busy for t in tcs], axis=0).astype(np.int64)
        layers.append(LayerCycles(
            cycles=sum(t.cycles for t in tcs), compute=compute, ideal=ideal,
            efficiency=ideal / compute if compute else 1.0, busy=busy, idle=compute - busy,
            stalls=sum(t.span.stalls for t in tcs), tiles=tcs))
    return CycleReport(layers, int(pipe["START"] + sum(layer.cycles for layer in layers)))

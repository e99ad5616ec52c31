"""Cycle model against a cycle-stepped simulator written from docs/architecture.md's prose.

The simulator below keeps, per PE, an explicit pointer-read stage and an explicit FIFO and
steps one clock at a time: the LNZD issues one slot per cycle (an empty slot for an
all-zero activation row, otherwise the row's non-zeros in ascending PE order); a non-zero
slot is accepted by every PE in a cycle only if, in every PE, the FIFO level at the start
of the cycle plus the pointer stage's occupancy (a broadcast accepted in the previous
cycle) is below the depth. A broadcast spends the cycle after its acceptance in the
pointer stage, where it is written into the FIFO only if its column has entries in that
PE; a PE pops the head of its FIFO (written in an earlier cycle) when it has streamed
every entry of the previous column but the last, then spends ``len`` cycles on it.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import deque
from pathlib import Path

import numpy as np
import pytest

import golden
from compiler import pack, unpack
from compiler.types import QuantLayer
from contract.config import EIEConfig
from golden.cycle_model import PIPELINE, compute_span

DOCS = Path(__file__).resolve().parents[1] / "docs"
# docs/architecture.md, "RTL pipeline constants" (and docs/rtl.md, "Sequencer and pipeline
# constants").
PIPELINE_DOC = {"START": 0, "PRE": 2, "DRAIN": 5, "POST": 1}


def naive_span(lengths, activations, depth, log=None):
    """Returns (compute cycles, busy[p], stall cycles) by stepping the clock.

    ``log`` (a dict) receives the acceptance cycle of each non-zero broadcast and, per
    PE, the cycle each column is popped (-1 for a column that PE never queues).
    """
    n = len(lengths)
    rows = [activations[l * n:(l + 1) * n] for l in range(len(activations) // n)]
    slots = []                                  # None = empty slot, else column j
    for l, row in enumerate(rows):
        nz = [l * n + p for p in range(n) if row[p] != 0]
        slots.extend(nz if nz else [None])
    queues = [deque() for _ in range(n)]       # items: (broadcast number, cycle written)
    pointer_stage = [None] * n                 # broadcast number accepted last cycle
    log = {} if log is None else log
    log["written"], log["popped"] = [], [[] for _ in range(n)]
    columns = []                               # column j of each non-zero broadcast
    busy_until = [0] * n                       # the PE may pop again from this cycle
    busy = [0] * n
    next_slot = 0
    stalls = 0
    cycle = 0
    while True:
        if (next_slot == len(slots) and all(not q for q in queues)
                and all(x is None for x in pointer_stage)
                and all(b <= cycle for b in busy_until)):
            return cycle, busy, stalls
        # a PE pops in this cycle if it is free and its FIFO is not empty (everything in
        # it was written in an earlier cycle); the broadcast is accepted if, in every PE,
        # the FIFO would have room after this cycle even if the column in the pointer
        # stage turns out non-empty: level - pop + pointer stage < depth
        pops = [busy_until[p] <= cycle and bool(queues[p]) for p in range(n)]
        occupancy = [len(queues[p]) - pops[p] + (pointer_stage[p] is not None)
                     for p in range(n)]
        accepted = None
        if next_slot < len(slots):
            j = slots[next_slot]
            if j is None:
                next_slot += 1
            elif all(level < depth for level in occupancy):
                accepted = len(columns)
                columns.append(j)
                log["written"].append(cycle)
                for p in range(n):
                    log["popped"][p].append(-1)
                next_slot += 1
            else:
                stalls += 1
        for p in range(n):
            q = queues[p]
            if pops[p]:
                m, written = q.popleft()
                assert written < cycle
                log["popped"][p][m] = cycle
                busy_until[p] = cycle + lengths[p][columns[m]]
                busy[p] += lengths[p][columns[m]]
            # pointer stage: known length now; only non-empty columns are queued
            m = pointer_stage[p]
            if m is not None and lengths[p][columns[m]] > 0:
                assert len(q) + pops[p] < depth  # the FIFO had room at the start
                q.append((m, cycle))
            pointer_stage[p] = accepted
        cycle += 1


def test_pipeline_constants_are_the_documented_values():
    assert PIPELINE == PIPELINE_DOC
    assert golden.PIPELINE is PIPELINE
    # the literal above is still what the docs say: the architecture page's table ...
    text = (DOCS / "architecture.md").read_text().split("## RTL pipeline constants", 1)[1]
    table = re.findall(r"^\| `(START|PRE|DRAIN|POST)` \| (\d+) \|", text, re.MULTILINE)
    assert {name: int(value) for name, value in table} == PIPELINE_DOC
    # ... and the RTL page's dict
    assert '`{"START": 0, "PRE": 2, "DRAIN": 5, "POST": 1}`' in (DOCS / "rtl.md").read_text()


def random_case(rng):
    n = int(rng.integers(1, 6))
    in_local = int(rng.integers(0, 7))
    kind = rng.choice(["dense", "sparse", "zero", "mixed"])
    p_nz = {"dense": 1.0, "sparse": 0.15, "zero": 0.0, "mixed": rng.random()}[kind]
    acts = (rng.random(in_local * n) < p_nz) * rng.integers(1, 100, in_local * n)
    lengths = rng.integers(0, 6, size=(n, in_local * n))
    lengths[:, rng.random(in_local * n) < 0.3] = 0          # empty columns
    depth = int(rng.integers(1, 17))
    return lengths, acts, depth


def test_hand_example():
    # docs/architecture.md, "Worked example": N = 2, rows [5, -2] and [7, 0];
    # len[0] = [3, 0, 1, 0], len[1] = [0, 0, 2, 0] (column 1 is empty in both PEs).
    lengths = np.array([[3, 0, 1, 0], [0, 0, 2, 0]])
    acts = np.array([5, -2, 7, 0])
    # D = 2: b = 0, 1, 2 (no stall: PE 0 pops column 0 in cycle 2, freeing its place).
    # PE 0 queues columns 0 and 2: s[0,0] = 0 + 2, e = 2 + 3 = 5; s[0,2] = max(2 + 2, 5)
    # = 5, e = 6. PE 1 queues column 2 only: s[1,2] = 2 + 2 = 4, e = 6.
    # C = max(2 + 1, 2 + 2, 6, 6) = 6.
    span = compute_span(lengths, acts, 2, trace=True)
    assert span.compute == 6
    assert span.busy.tolist() == [4, 2]
    assert span.idle.tolist() == [2, 4]
    assert span.stalls == 0
    assert span.ideal == 3 and span.efficiency == pytest.approx(3 / 6)
    assert span.columns.tolist() == [0, 1, 2]
    assert span.broadcast_cycles.tolist() == [0, 1, 2]
    assert span.pop_cycles.tolist() == [[2, -1, 5], [-1, -1, 4]]
    assert naive_span(lengths, acts.tolist(), 2) == (6, [4, 2], 0)
    # D = 1: slot 1 waits for PE 0 to pop column 0 (b1 = R_1 = 2); slot 2 would follow
    # back to back while column 1 is still in the pointer stage: b2 = 4. 2 stalls.
    # s[0,2] = max(4 + 2, 5) = 6, s[1,2] = 6; C = max(5, 6, 6 + 1, 6 + 2) = 8.
    span = compute_span(lengths, acts, 1, trace=True)
    assert (span.compute, span.stalls) == (8, 2)
    assert span.broadcast_cycles.tolist() == [0, 2, 4]
    assert span.pop_cycles.tolist() == [[2, -1, 6], [-1, -1, 6]]
    assert naive_span(lengths, acts.tolist(), 1) == (8, [4, 2], 2)


def test_empty_rows_and_empty_input():
    # all-zero rows: one empty slot per row, nothing else -> C = in_local
    span = compute_span(np.ones((3, 12), np.int64), np.zeros(12), 4)
    assert (span.compute, span.broadcasts, span.slots) == (4, 0, 4)
    assert span.busy.tolist() == [0, 0, 0] and span.efficiency == 0.0
    span = compute_span(np.zeros((3, 0), np.int64), np.zeros(0), 4)
    assert span.compute == 0 and span.efficiency == 1.0
    # a broadcast of an empty column still passes the pointer stage: row [x, 0] then an
    # empty row, len 0 -> b0 = 0, empty slot b = 1; C = max(1 + 1, 0 + 2, 0) = 2
    span = compute_span(np.zeros((2, 4), np.int64), np.array([1, 0, 0, 0]), 2)
    assert span.compute == 2 and span.busy.tolist() == [0, 0]
    # the last broadcast an empty column: C = b_last + 2
    span = compute_span(np.zeros((2, 2), np.int64), np.array([1, 0]), 2)
    assert span.compute == 2


def test_empty_columns_cost_no_cycle():
    # PE 1 has no entries at all: it never queues anything, PE 0 works back to back.
    m = 40
    lengths = np.stack([np.full(m, 4), np.zeros(m, np.int64)])
    acts = np.ones(m)
    for depth in (1, 2, 8):
        span = compute_span(lengths, acts, depth)
        assert naive_span(lengths.tolist(), acts.tolist(), depth)[0] == span.compute
    # deep queue: first pop in 2, then 4 entries per column with no bubble
    assert compute_span(lengths, acts, 64).compute == 2 + 4 * m
    # only empty columns: one broadcast per cycle (D >= 2), the last leaves the pointer
    # stage one cycle after its slot; with D = 1 the pointer stage counts, so every
    # other cycle
    empty = np.zeros((2, m), np.int64)
    assert compute_span(empty, acts, 2).compute == m + 1
    assert compute_span(empty, acts, 2).stalls == 0
    assert compute_span(empty, acts, 1).compute == 2 * m
    # one PE with one long column and many empty ones finishes like its entries alone
    lengths = np.zeros((2, m), np.int64)
    lengths[0, 0] = 60
    lengths[1, 1::2] = 1
    span = compute_span(lengths, acts, 8)
    assert span.compute == 2 + 60 and span.stalls == 0


def naive_span_wide(lengths, activations, depth, width):
    """``naive_span`` with ``width`` broadcast lanes: by stepping the clock, each cycle
    takes the largest ``k <= width`` next non-zeros of the current row such that every
    PE's queue, counting the previous cycle's group in its pointer stage, has room for
    ``k`` more. Returns (compute, busy, stalls, broadcast cycles, pop cycles [n][M])."""
    n = len(lengths)
    rows = []
    for l in range(len(activations) // n):
        rows.append([l * n + p for p in range(n) if activations[l * n + p] != 0])
    queues = [deque() for _ in range(n)]
    pointer_stage = []                         # broadcasts accepted in the last cycle
    columns, written = [], []
    popped = [[] for _ in range(n)]
    busy_until, busy = [0] * n, [0] * n
    row, left = 0, list(rows[0]) if rows else []
    stalls = cycle = 0
    while True:
        scanning = row < len(rows)
        if (not scanning and all(not q for q in queues) and not pointer_stage
                and all(b <= cycle for b in busy_until)):
            return cycle, busy, stalls, written, popped
        pops = [busy_until[p] <= cycle and bool(queues[p]) for p in range(n)]
        room = min(depth - (len(queues[p]) - pops[p] + len(pointer_stage)) for p in range(n))
        accepted = []
        if scanning:
            k = min(width, len(left), max(room, 0))
            if left and k == 0:
                stalls += 1
            for j in left[:k]:
                accepted.append(len(columns))
                columns.append(j)
                written.append(cycle)
                for p in range(n):
                    popped[p].append(-1)
            left = left[k:]
            if not left:                         # the row is done (an empty row: 1 cycle)
                row += 1
                left = list(rows[row]) if row < len(rows) else []
        for p in range(n):
            q = queues[p]
            if pops[p]:
                m = q.popleft()
                popped[p][m] = cycle
                busy_until[p] = cycle + lengths[p][columns[m]]
                busy[p] += lengths[p][columns[m]]
            for m in pointer_stage:
                if lengths[p][columns[m]] > 0:
                    q.append(m)
            assert len(q) <= depth
        pointer_stage = accepted
        cycle += 1


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_wide_span_matches_naive_simulator(width):
    rng = np.random.default_rng(99 + width)
    for case in range(300):
        lengths, acts, depth = random_case(rng)
        n = lengths.shape[0]
        if width > min(n, depth):
            continue
        span = compute_span(lengths, acts, depth, trace=True, broadcast_width=width)
        c, busy, stalls, written, popped = naive_span_wide(lengths.tolist(), acts.tolist(),
                                                           depth, width)
        assert (span.compute, span.busy.tolist(), span.stalls) == (c, busy, stalls), case
        assert span.broadcast_cycles.tolist() == written, case
        assert span.pop_cycles.tolist() == popped, case


def test_wide_loop_at_b1_is_the_closed_form():
    # The group loop (_wide_span) at B = 1 against the closed form: two evaluations of the
    # one schedule, every broadcast and pop cycle equal.
    from golden.cycle_model import _wide_span
    rng = np.random.default_rng(7)
    for case in range(300):
        lengths, acts, depth = random_case(rng)
        closed = compute_span(lengths, acts, depth, trace=True)
        loop = _wide_span(lengths, acts, depth, 1, True)
        assert (loop.compute, loop.stalls, loop.slots) == (closed.compute, closed.stalls,
                                                           closed.slots), case
        assert loop.broadcast_cycles.tolist() == closed.broadcast_cycles.tolist(), case
        assert loop.pop_cycles.tolist() == closed.pop_cycles.tolist(), case


def test_wide_hand_example():
    # N = 2, D = 2, B = 2, rows [5, -2] and [7, 0] (docs/architecture.md, "Broadcast
    # width"): j = 0, 1 go together in cycle 0; j = 2 waits in cycle 1 (PE 0 would have
    # 0 + 2 pending = D) and goes in cycle 2, when PE 0 pops j = 0.
    lengths = np.array([[1, 1, 2, 0], [2, 0, 1, 0]])
    span = compute_span(lengths, np.array([5, -2, 7, 0]), 2, trace=True, broadcast_width=2)
    assert span.broadcast_cycles.tolist() == [0, 0, 2]
    assert span.pop_cycles.tolist() == [[2, 3, 4], [2, -1, 4]]
    assert (span.compute, span.stalls, span.slots) == (6, 1, 2)
    assert span.busy.tolist() == [4, 3]


def test_compute_span_matches_naive_simulator():
    rng = np.random.default_rng(1234)
    for case in range(400):
        lengths, acts, depth = random_case(rng)
        span = compute_span(lengths, acts, depth, trace=True)
        log = {}
        c, busy, stalls = naive_span(lengths.tolist(), acts.tolist(), depth, log)
        assert (span.compute, span.busy.tolist(), span.stalls) == (c, busy, stalls), case
        assert span.broadcast_cycles.tolist() == log["written"], case
        assert span.pop_cycles.tolist() == log["popped"], case


def test_long_columns_stall_shallow_queues():
    # One PE with long columns and depth 1 forces stalls; deep queues avoid them.
    rng = np.random.default_rng(7)
    lengths = rng.integers(5, 9, size=(4, 64))
    acts = np.ones(64)
    shallow = compute_span(lengths, acts, 1)
    deep = compute_span(lengths, acts, 64)
    assert shallow.stalls > 0 and deep.stalls == 0
    assert deep.compute <= shallow.compute
    # without stalls each PE just works back to back from cycle 2 (pointer stage, queue)
    assert deep.compute == 2 + int(lengths.sum(axis=1).max())
    for depth in (1, 2, 3, 8):
        assert (compute_span(lengths, acts, depth).compute
                == naive_span(lengths.tolist(), acts.tolist(), depth)[0])


def _packed_image(rng, config, sizes, density):
    layers = []
    for k in range(len(sizes) - 1):
        shape = (sizes[k + 1], sizes[k])
        idx = (rng.integers(1, 16, size=shape) * (rng.random(shape) < density)).astype(np.uint8)
        cb = np.concatenate(([0.0], rng.normal(0, 0.4, size=15)))
        layers.append(QuantLayer(f"fc{k}", idx, cb, rng.normal(0, 0.2, sizes[k + 1]), True))
    return pack(layers, config), layers


def test_cycles_on_packed_image():
    config = dataclasses.replace(EIEConfig(), n_pes=3, acc_depth=4, queue_depth=2)
    rng = np.random.default_rng(3)
    image, layers = _packed_image(rng, config, [20, 30, 11], 0.4)
    x = rng.normal(0, 1, size=20) * (rng.random(20) < 0.6)
    q = golden.quantize_input(x, config)
    pipe = {"START": 7, "PRE": 2, "DRAIN": 3, "POST": 1}
    report = golden.cycles(image, q, pipeline=pipe)
    assert len(report.layers) == 2
    # activations of each layer, from the golden model (layer 2 sees ReLU zeros)
    inputs = [q, golden.run(image, q).layer_q[0]]
    n = config.n_pes
    total = pipe["START"]
    for k, (layer, info, idx) in enumerate(zip(report.layers, image.layers, unpack(image),
                                               strict=True)):
        in_local = math.ceil(info.n_in / n)
        acts = np.zeros(in_local * n, np.int64)
        acts[:info.n_in] = inputs[k]
        expect_cycles = expect_compute = expect_ideal = 0
        busy_sum = np.zeros(n, np.int64)
        for t in range(info.n_tiles):
            rows = idx[t * config.rows_per_tile:(t + 1) * config.rows_per_tile]
            out_local = math.ceil(rows.shape[0] / n)
            # lengths from the index matrix: entries per column and PE, with padding
            # (acc_depth 4 < 16 rows, so no padding can occur here)
            lengths = np.zeros((n, in_local * n), np.int64)
            for p in range(n):
                lengths[p, :info.n_in] = (rows[p::n] != 0).sum(axis=0)
            c, busy, _ = naive_span(lengths.tolist(), acts.tolist(), config.queue_depth)
            expect_compute += c
            expect_ideal += math.ceil(sum(busy) / n)
            busy_sum += busy
            expect_cycles += pipe["PRE"] + 2 * out_local + c + pipe["DRAIN"] + pipe["POST"]
        assert layer.cycles == expect_cycles
        assert layer.compute == expect_compute
        assert layer.ideal == expect_ideal
        assert layer.busy.tolist() == busy_sum.tolist()
        assert layer.idle.tolist() == (expect_compute - busy_sum).tolist()
        assert layer.efficiency == pytest.approx(expect_ideal / expect_compute)
        total += expect_cycles
    assert report.total == total
    # without an override the module-level PIPELINE constants are used
    def overhead(c):
        return c["START"] + len(image.program) * (c["PRE"] + c["DRAIN"] + c["POST"])

    default = golden.cycles(image, q)
    assert default.total == total - overhead(pipe) + overhead(golden.PIPELINE)
    with pytest.raises(ValueError, match="one input vector"):
        golden.cycles(image, np.stack([q, q]))


def test_cycles_random_images_match_naive():
    rng = np.random.default_rng(11)
    for _case in range(6):
        n = int(rng.integers(1, 5))
        config = dataclasses.replace(EIEConfig(), n_pes=n, acc_depth=int(rng.integers(2, 20)),
                                     queue_depth=int(rng.integers(1, 17)))
        sizes = [int(rng.integers(3, 40)) for _ in range(3)]
        image, _ = _packed_image(rng, config, sizes, float(rng.random()))
        q = golden.quantize_input(rng.normal(0, 1, sizes[0]) * (rng.random(sizes[0]) < 0.5),
                                  config)
        report = golden.cycles(image, q, pipeline={"START": 0, "PRE": 0, "DRAIN": 0,
                                                   "POST": 0})
        tiles = golden.decode_program(image)
        result = golden.run(image, q)
        for tile in tiles:
            acts = result.layer_inputs[tile.layer][:tile.desc.in_local * n]
            c, busy, stalls = naive_span(tile.lengths.tolist(), acts.tolist(),
                                         config.queue_depth)
            tc = [t for t in report.layers[tile.layer].tiles if t.tile == tile.index][0]
            assert (tc.compute, tc.span.busy.tolist(), tc.span.stalls) == (c, busy, stalls)
            assert tc.cycles == c + 2 * tile.desc.out_local

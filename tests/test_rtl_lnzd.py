# amaranth: UnusedElaboratable=no
"""LNZD quadtree and row scanner (rtl/lnzd.py) on Amaranth's simulator."""

import random

import pytest
from amaranth.sim import Simulator

from rtl.lnzd import LNZD, RowScanner, lnzd_leaves

# ---- parameters ---------------------------------------------------------------------------


def test_node_count():
    assert LNZD(width=64).node_count == 21
    assert LNZD(width=16).node_count == 5
    assert LNZD(width=4).node_count == 1
    assert LNZD(width=1).node_count == 1
    assert LNZD(width=65).node_count == 85
    assert lnzd_leaves(17) == 64


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, None])
def test_bad_width(bad):
    with pytest.raises(TypeError, match="LNZD width must be a positive integer"):
        LNZD(width=bad)


@pytest.mark.parametrize("kw", ["n_pes", "act_bits", "depth"])
def test_bad_scanner_params(kw):
    params = dict(n_pes=4, act_bits=16, depth=8)
    params[kw] = 0
    with pytest.raises(TypeError, match="must be a positive integer, not 0"):
        RowScanner(**params)


# ---- LNZD ---------------------------------------------------------------------------------


@pytest.mark.parametrize("width", [1, 3, 4, 5, 16, 64, 70])
def test_lnzd_lowest(width):
    rng = random.Random(width)
    dut = LNZD(width=width)

    async def tb(ctx):
        cases = [0, (1 << width) - 1, 1 << (width - 1)]
        cases += [rng.getrandbits(width) for _ in range(40)]
        for mask in cases:
            values = [rng.randrange(-2**15, 2**15) for _ in range(width)]
            ctx.set(dut.mask, mask)
            ctx.set(dut.values, values)
            if mask == 0:
                assert ctx.get(dut.valid) == 0
                continue
            low = (mask & -mask).bit_length() - 1
            assert ctx.get(dut.valid) == 1
            assert ctx.get(dut.index) == low
            assert ctx.get(dut.value) == values[low]

    sim = Simulator(dut)
    sim.add_testbench(tb)
    sim.run()


# ---- row scanner --------------------------------------------------------------------------


def expected_slots(rows, ready):
    """Independent model: (cycle, value, j) transfers, empty-slot cycles and the end cycle.

    ``ready[c]`` is the AND of the queue readies in cycle ``c`` (cycle 0 = first slot).
    """
    n = len(rows[0])
    transfers, empties, t = [], [], 0
    for l, row in enumerate(rows):
        nz = [p for p in range(n) if row[p] != 0]
        if not nz:
            empties.append(t)
            t += 1
            continue
        for p in nz:
            while not ready[t]:
                t += 1
            transfers.append((t, row[p], l * n + p))
            t += 1
    return transfers, empties, t


def run_scanner(n, rows, ready, depth):
    """Drive a RowScanner with a model synchronous-read memory; return observed events."""
    dut = RowScanner(n_pes=n, act_bits=16, depth=depth)
    memory = rows + [[0] * n] * (depth - len(rows))
    observed = {"transfers": [], "empties": [], "end": None}

    async def tb(ctx):
        addr_prev = 0
        ctx.set(dut.rows, len(rows))
        # Idle a few cycles with row_addr = 0, then start.
        for cycle in range(-3, len(ready)):
            ctx.set(dut.row_data, memory[addr_prev % depth])
            ctx.set(dut.start, cycle == -1)
            ctx.set(dut.o.ready, ready[cycle] if cycle >= 0 else 1)
            if cycle < 0:
                assert ctx.get(dut.running) == 0
                assert ctx.get(dut.o.valid) == 0
            if ctx.get(dut.o.valid) and ctx.get(dut.o.ready):
                observed["transfers"].append(
                    (cycle, ctx.get(dut.o.payload.value), ctx.get(dut.o.payload.index)))
            if ctx.get(dut.empty):
                observed["empties"].append(cycle)
            if cycle >= 0 and not ctx.get(dut.running) and observed["end"] is None:
                observed["end"] = cycle
            addr_prev = ctx.get(dut.row_addr)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()
    return observed


def random_rows(rng, n, n_rows, density):
    return [[(rng.randrange(-2**15, 2**15) or 1) if rng.random() < density else 0
             for _ in range(n)] for _ in range(n_rows)]


def check(n, rows, ready, depth=None):
    depth = depth or len(rows) + 2
    want_t, want_e, want_end = expected_slots(rows, ready)
    got = run_scanner(n, rows, ready, depth)
    assert got["transfers"] == want_t
    assert got["empties"] == want_e
    assert got["end"] == want_end


def test_order_single_row():
    rows = [[0, 5, 0, -3, 7, 0, 0, 1]]
    check(8, rows, [1] * 12)


def test_empty_vector_costs_one_cycle_per_row():
    rows = [[0] * 5 for _ in range(4)]
    want_t, want_e, want_end = expected_slots(rows, [1] * 10)
    assert want_t == [] and want_e == [0, 1, 2, 3] and want_end == 4
    check(5, rows, [1] * 10)


def test_no_bubble_between_rows():
    # Single non-zero per row and all-zero rows alternate: one slot per cycle throughout.
    rows = [[0, 0, 9], [0, 0, 0], [4, 0, 0], [0, 0, 0], [0, -2, 0]]
    want_t, _, want_end = expected_slots(rows, [1] * 10)
    assert [t for t, _, _ in want_t] == [0, 2, 4] and want_end == 5
    check(3, rows, [1] * 10)


def test_full_buffer_depth():
    rng = random.Random(3)
    rows = random_rows(rng, 4, 8, 0.4)
    check(4, rows, [1] * 60, depth=8)


def test_stalls():
    rng = random.Random(11)
    rows = random_rows(rng, 6, 7, 0.6)
    ready = [int(rng.random() < 0.4) for _ in range(200)]
    check(6, rows, ready)


@pytest.mark.parametrize("n", range(1, 71))
def test_random_widths(n):
    rng = random.Random(100 + n)
    n_rows = rng.randrange(1, 6)
    density = rng.choice([0.0, 0.05, 0.3, 1.0])
    rows = random_rows(rng, n, n_rows, density)
    ready = [int(rng.random() < 0.7) for _ in range(n * n_rows * 3 + 20)]
    check(n, rows, ready)

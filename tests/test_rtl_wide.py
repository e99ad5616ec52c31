"""The broadcast-width units (docs/architecture.md, "Broadcast width") against Python
references of their contracts: WideActQueue (several writes a cycle), WideRowScanner
(B lanes; with B = 1 the same cycles as RowScanner) and WidePtrRead (B columns' pointers
a cycle)."""

import random
from collections import deque

import pytest
from amaranth.sim import Simulator

from contract.config import EIEConfig
from rtl.act_queue import WideActQueue
from rtl.common import act_layout
from rtl.lnzd import RowScanner
from rtl.ptr_read import WidePtrRead
from rtl.wide_scanner import WideRowScanner

LAYOUT = act_layout(EIEConfig())


def run(dut, testbench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


@pytest.mark.parametrize("depth,lanes", [(1, 1), (4, 2), (3, 3), (8, 4), (6, 2), (6, 3)])
def test_wide_queue_against_deque(depth, lanes):
    dut = WideActQueue(layout=LAYOUT, depth=depth, lanes=lanes)
    rng = random.Random(depth * 10 + lanes)
    model = deque()

    async def tb(ctx):
        counter = 0
        for _ in range(400):
            pop = rng.random() < 0.5
            popped = bool(model) and pop
            room = depth - len(model) + popped
            want = [rng.random() < 0.6 for _ in range(lanes)]
            # the writer's contract: never more than the room
            valid, used = [], 0
            for w in want:
                valid.append(w and used < room)
                used += valid[-1]
            assert ctx.get(dut.level) == len(model)
            assert ctx.get(dut.o.valid) == bool(model)
            if model:
                assert ctx.get(dut.o.payload.index) == model[0]
            ctx.set(dut.o.ready, pop)
            items = []
            for lane in range(lanes):
                ctx.set(dut.i_valid[lane], valid[lane])
                ctx.set(dut.i_payload[lane].index, counter % 512)
                if valid[lane]:
                    items.append(counter % 512)
                counter += 1
            assert not ctx.get(dut.overflow)
            await ctx.tick()
            if popped:
                model.popleft()
            model.extend(items)

    run(dut, tb)


def test_wide_queue_depth_is_whole_banks():
    with pytest.raises(ValueError, match=r"^Queue depth \(5\) must be a multiple of its "
                                         r"lanes \(2\)$"):
        WideActQueue(layout=LAYOUT, depth=5, lanes=2)


def test_wide_queue_flags_overflow():
    dut = WideActQueue(layout=LAYOUT, depth=2, lanes=2)

    async def tb(ctx):
        ctx.set(dut.i_valid, 0b11)
        await ctx.tick()
        ctx.set(dut.i_valid, 0b01)                 # full, no pop: one write too many
        assert ctx.get(dut.level) == 2 and ctx.get(dut.overflow)
        ctx.set(dut.o.ready, 1)                    # with a pop it fits
        assert not ctx.get(dut.overflow)

    run(dut, tb)


def scanner_reference(rows, width, ready_of):
    """(cycle, lane, j) of every transfer, by the contract: a row's next non-zeros, up
    to ``width`` and up to the room ``ready_of(cycle)``, one group a cycle; an empty row
    one cycle."""
    n = len(rows[0])
    out, cycle = [], 0
    for l, row in enumerate(rows):
        left = [l * n + p for p in range(n) if row[p] != 0]
        if not left:
            cycle += 1
            continue
        while left:
            k = min(width, len(left), ready_of(cycle))
            out += [(cycle, lane, j) for lane, j in enumerate(left[:k])]
            left = left[k:]
            cycle += 1
    return out, cycle


@pytest.mark.parametrize("n,width", [(1, 1), (4, 1), (4, 2), (5, 3), (8, 4), (4, 4)])
def test_wide_scanner_against_reference(n, width):
    rng = random.Random(n * 7 + width)
    depth = 12
    rows = [[rng.choice([0, 0, 1, -3, 7]) if rng.random() < 0.8 else 0 for _ in range(n)]
            for _ in range(depth)]
    room = [rng.choice([0, 1, 2, width, width]) for _ in range(200)]
    dut = WideRowScanner(n_pes=n, act_bits=16, depth=depth, width=width)
    want, last = scanner_reference(rows, width, lambda c: room[c])

    async def tb(ctx):
        got = []
        ctx.set(dut.rows, depth)
        for p in range(n):
            ctx.set(dut.row_data[p], rows[0][p])
        ctx.set(dut.start, 1)
        addr = ctx.get(dut.row_addr)               # row 1, for cycle 0
        await ctx.tick()
        ctx.set(dut.start, 0)
        for p in range(n):
            ctx.set(dut.row_data[p], rows[addr][p])
        for cycle in range(200):
            ctx.set(dut.o.ready, (1 << room[cycle]) - 1)
            addr = ctx.get(dut.row_addr)
            running = ctx.get(dut.running)
            if not running:
                assert cycle == last
                break
            for lane in range(width):
                if ctx.get(dut.o.valid[lane]) and (room[cycle] > lane):
                    j = ctx.get(dut.o.payload[lane].index)
                    assert ctx.get(dut.o.payload[lane].value) == rows[j // n][j % n]
                    got.append((cycle, lane, j))
            await ctx.tick()
            for p in range(n):
                ctx.set(dut.row_data[p], rows[addr][p] if addr < depth else 0)
        assert got == want

    run(dut, tb)


def test_wide_scanner_b1_is_row_scanner():
    # With one lane the wide scanner gives RowScanner's transfers in RowScanner's cycles.
    rng = random.Random(3)
    n, depth = 5, 10
    rows = [[rng.choice([0, 0, 2, -1]) for _ in range(n)] for _ in range(depth)]
    ready = [rng.random() < 0.6 for _ in range(150)]
    traces = []
    for wide in (False, True):
        dut = (WideRowScanner(n_pes=n, act_bits=16, depth=depth, width=1) if wide
               else RowScanner(n_pes=n, act_bits=16, depth=depth))
        trace = []

        async def tb(ctx, dut=dut, trace=trace, wide=wide):
            ctx.set(dut.rows, depth)
            for p in range(n):
                ctx.set(dut.row_data[p], rows[0][p])
            ctx.set(dut.start, 1)
            addr = ctx.get(dut.row_addr)
            await ctx.tick()
            ctx.set(dut.start, 0)
            for p in range(n):
                ctx.set(dut.row_data[p], rows[addr][p])
            for cycle in range(150):
                ctx.set(dut.o.ready, ready[cycle])
                addr = ctx.get(dut.row_addr)
                payload = dut.o.payload[0] if wide else dut.o.payload
                if ctx.get(dut.o.valid) and ready[cycle]:
                    trace.append((cycle, ctx.get(payload.index)))
                trace.append(("empty", ctx.get(dut.empty), ctx.get(dut.running)))
                await ctx.tick()
                for p in range(n):
                    ctx.set(dut.row_data[p], rows[addr][p] if addr < depth else 0)

        run(dut, tb)
        traces.append(trace)
    assert traces[0] == traces[1]


def test_wide_ptr_read_lanes():
    config = EIEConfig(n_pes=4, act_depth=8, ptr_depth=64)
    rng = random.Random(5)
    even = [rng.randrange(1 << 16) for _ in range(64)]
    odd = [rng.randrange(1 << 16) for _ in range(64)]
    dut = WidePtrRead(config=config, lanes=3, init_even=even, init_odd=odd)

    def pointer(base, j):
        return even[base + j // 2] if j % 2 == 0 else odd[base + j // 2]

    async def tb(ctx):
        for _ in range(60):
            base = rng.randrange(16)
            js = [rng.randrange(32) for _ in range(3)]
            en = [rng.random() < 0.7 for _ in range(3)]
            ctx.set(dut.base, base)
            for lane in range(3):
                ctx.set(dut.index[lane], js[lane])
                ctx.set(dut.en[lane], en[lane])
            await ctx.tick()
            ctx.set(dut.en, 0)
            for lane in range(3):
                if en[lane]:
                    assert ctx.get(dut.start[lane]) == pointer(base, js[lane])
                    assert ctx.get(dut.end[lane]) == pointer(base, js[lane] + 1)
        # a host write reaches every lane's reads
        ctx.set(dut.host.en, 1)
        ctx.set(dut.host.addr, 3)
        ctx.set(dut.host.data, 1234)
        ctx.set(dut.host_bank, 1)
        await ctx.tick()
        ctx.set(dut.host.en, 0)
        for lane in range(3):
            ctx.set(dut.index[lane], 7)
        ctx.set(dut.base, 0)
        ctx.set(dut.en, 0b111)
        await ctx.tick()
        for lane in range(3):
            assert ctx.get(dut.start[lane]) == 1234

    run(dut, tb)


@pytest.mark.parametrize("kw,message", [
    (dict(n_pes=2, act_bits=16, depth=4, width=3),
     r"^Broadcast width \(3\) must not exceed the number of PEs \(2\)$"),
    (dict(n_pes=2, act_bits=16, depth=4, width=0),
     r"^Broadcast width must be a positive integer, not 0$"),
])
def test_wide_scanner_bad_params(kw, message):
    with pytest.raises((TypeError, ValueError), match=message):
        WideRowScanner(**kw)

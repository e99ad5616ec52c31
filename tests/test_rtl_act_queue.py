"""ActQueue: parameter checks, then full/empty and simultaneous push+pop against a model."""

import random
from collections import deque

import pytest
from amaranth.hdl import unsigned
from amaranth.sim import Simulator

from contract.config import EIEConfig
from rtl.act_queue import ActQueue
from rtl.common import act_layout

LAYOUT = act_layout(EIEConfig())


def test_init():
    queue = ActQueue(layout=LAYOUT, depth=3)
    queue._MustUse__silence = True     # constructed only, never elaborated
    assert queue.depth == 3 and queue.layout is LAYOUT
    with pytest.raises(AttributeError):
        queue.depth = 4


@pytest.mark.parametrize("depth", [0, -1, True, "8", 2.0, None])
def test_wrong_depth(depth):
    with pytest.raises(TypeError, match=rf"^Queue depth must be a positive integer, not "
                                        rf"{repr(depth)}$"):
        ActQueue(layout=LAYOUT, depth=depth)


def test_wrong_layout():
    with pytest.raises(TypeError, match=r"^Queue layout must be a data.Layout, not "
                                        r"unsigned\(8\)$"):
        ActQueue(layout=unsigned(8), depth=2)


def run(dut, testbench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


def test_fill_drain_and_full_push_pop():
    depth = 4
    dut = ActQueue(layout=LAYOUT, depth=depth)

    async def testbench(ctx):
        assert ctx.get(dut.o.valid) == 0 and ctx.get(dut.i.ready) == 1
        ctx.set(dut.i.valid, 1)
        for k in range(depth):
            ctx.set(dut.i.payload, {"value": -k, "index": k})
            assert ctx.get(dut.i.ready) == 1 and ctx.get(dut.level) == k
            await ctx.tick()
        # Full: ready low although valid is high; a pop in the same cycle does not let a
        # push in (level is sampled at the start of the cycle).
        assert ctx.get(dut.level) == depth and ctx.get(dut.i.ready) == 0
        ctx.set(dut.i.payload, {"value": 99, "index": 99})
        ctx.set(dut.o.ready, 1)
        assert ctx.get(dut.o.payload).index == 0
        await ctx.tick()
        assert ctx.get(dut.level) == depth - 1
        # Not full: push and pop in one cycle keep the level.
        ctx.set(dut.i.payload, {"value": 5, "index": 7})
        assert ctx.get(dut.i.ready) == 1 and ctx.get(dut.o.payload).index == 1
        await ctx.tick()
        assert ctx.get(dut.level) == depth - 1
        ctx.set(dut.i.valid, 0)
        seen = []
        while ctx.get(dut.o.valid):
            seen.append((ctx.get(dut.o.payload).value, ctx.get(dut.o.payload).index))
            await ctx.tick()
        assert seen == [(-2, 2), (-3, 3), (5, 7)]
        assert ctx.get(dut.level) == 0 and ctx.get(dut.o.valid) == 0

    run(dut, testbench)


@pytest.mark.parametrize("depth", [1, 2, 5])
def test_random_against_model(depth):
    rng = random.Random(depth)
    dut = ActQueue(layout=LAYOUT, depth=depth)

    async def testbench(ctx):
        model = deque()
        for _ in range(400):
            push, pop = rng.random() < 0.55, rng.random() < 0.5
            item = (rng.randrange(-2**15, 2**15), rng.randrange(2**10))
            ctx.set(dut.i.valid, push)
            ctx.set(dut.i.payload, {"value": item[0], "index": item[1]})
            ctx.set(dut.o.ready, pop)
            assert ctx.get(dut.level) == len(model)
            assert ctx.get(dut.i.ready) == (len(model) < depth)
            assert ctx.get(dut.o.valid) == (len(model) > 0)
            popped = pop and len(model) > 0
            if len(model):
                head = ctx.get(dut.o.payload)
                assert (head.value, head.index) == model[0]
            pushed = push and len(model) < depth
            if popped:
                model.popleft()
            if pushed:
                model.append(item)
            await ctx.tick()

    run(dut, testbench)

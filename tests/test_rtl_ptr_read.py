"""PtrRead: parameter checks, then P_j / P_{j+1} on even and odd columns and host writes."""

import random

import pytest
from amaranth.sim import Simulator

from contract.config import EIEConfig
from rtl.ptr_read import PtrRead

CONFIG = EIEConfig(ptr_depth=32)


def test_init():
    dut = PtrRead(config=CONFIG, init_even=[1, 2], init_odd=[3])
    dut._MustUse__silence = True
    assert dut.config is CONFIG
    with pytest.raises(AttributeError):
        dut.config = CONFIG


def test_wrong_parameters():
    with pytest.raises(TypeError, match=r"^Config must be an EIEConfig, not 4$"):
        PtrRead(config=4)
    with pytest.raises(ValueError, match=r"^Initial contents of the even pointer bank have 33 "
                                         r"rows, more than its depth 32$"):
        PtrRead(config=CONFIG, init_even=[0] * 33)
    with pytest.raises(TypeError, match=r"^Initial contents of the odd pointer bank must be "
                                        r"integers, not 1.5$"):
        PtrRead(config=CONFIG, init_odd=[1.5])
    with pytest.raises(TypeError, match=r"^Initial contents of the odd pointer bank must be "
                                        r"a sequence of integers, not 7$"):
        PtrRead(config=CONFIG, init_odd=7)


def test_even_and_odd_columns():
    rng = random.Random(1)
    # A pointer sequence laid out as the image format says: P_j -> bank j%2 at base + j//2.
    base = 5
    pointers = sorted(rng.sample(range(1, 60000), 40))
    pointers[0] = 0
    even, odd = [0] * 32, [0] * 32
    for j, value in enumerate(pointers):
        (even if j % 2 == 0 else odd)[base + j // 2] = value
    dut = PtrRead(config=CONFIG, init_even=even, init_odd=odd)

    async def testbench(ctx):
        ctx.set(dut.base, base)
        columns = list(range(len(pointers) - 1))
        rng.shuffle(columns)
        for j in columns:
            ctx.set(dut.index, j)
            ctx.set(dut.en, 1)
            await ctx.tick()
            ctx.set(dut.en, 0)
            ctx.set(dut.index, rng.randrange(len(pointers) - 1))   # ignored without en
            assert (ctx.get(dut.start), ctx.get(dut.end)) == (pointers[j], pointers[j + 1]), j
            await ctx.tick()
            # Output holds while en is low.
            assert (ctx.get(dut.start), ctx.get(dut.end)) == (pointers[j], pointers[j + 1]), j
        # Back-to-back reads, one per cycle.
        for j in range(len(pointers) - 1):
            ctx.set(dut.index, j)
            ctx.set(dut.en, 1)
            await ctx.tick()
            assert (ctx.get(dut.start), ctx.get(dut.end)) == (pointers[j], pointers[j + 1])

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


def test_host_writes():
    dut = PtrRead(config=CONFIG)

    async def testbench(ctx):
        # P_0..P_3 = 11, 22, 33, 44 at base 30: even[30]=11, odd[30]=22, even[31]=33, odd[31]=44
        ctx.set(dut.host.en, 1)
        for bank, addr, value in ((0, 30, 11), (1, 30, 22), (0, 31, 33), (1, 31, 44)):
            ctx.set(dut.host_bank, bank)
            ctx.set(dut.host.addr, addr)
            ctx.set(dut.host.data, value)
            await ctx.tick()
        ctx.set(dut.host.en, 0)
        ctx.set(dut.base, 30)
        ctx.set(dut.en, 1)
        for j, expected in enumerate(((11, 22), (22, 33), (33, 44))):
            ctx.set(dut.index, j)
            await ctx.tick()
            assert (ctx.get(dut.start), ctx.get(dut.end)) == expected

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()

# amaranth: UnusedElaboratable=no
"""PEArray: parameter checks, then the host-write fan-out and the activation read mux with
the real PE. The scan and broadcast run in the array-top tests (tests/test_rtl_eie.py,
tests/test_rtl_reset.py) and the system tests."""

import random

import pytest
from amaranth.sim import Simulator

from contract.config import ConfigError, EIEConfig
from contract.host_map import MemSel
from contract.image import PackedImage
from rtl.pe import PE
from rtl.pe_array import PEArray

CONFIG = EIEConfig(n_pes=3, queue_depth=2, act_depth=8, acc_depth=4, spmat_depth=16,
                   ptr_depth=8, bias_depth=8, max_layers=2, max_tiles=4)


def test_init():
    dut = PEArray(config=CONFIG)
    assert dut.config is CONFIG and dut.pe_class is PE
    assert (dut.idle_delay, dut.writeback_latency) == (4, 3)
    assert len(dut.host_pe) == 8 and len(dut.read_pe) == 8 and len(dut.host.addr) == 17


def test_wrong_parameters():
    with pytest.raises(TypeError, match=r"^Config must be an EIEConfig, not 4$"):
        PEArray(config=4)

    class NoLatency:
        IDLE_DELAY = 4

    with pytest.raises(TypeError, match=r"^PE class must have an integer WRITEBACK_LATENCY "
                                        r"attribute, not <class '.*NoLatency'>$"):
        PEArray(config=CONFIG, pe_class=NoLatency)
    with pytest.raises(ConfigError, match=r"^image was packed for a different config"):
        PEArray(config=CONFIG, image=PackedImage.empty(EIEConfig(n_pes=2)))


def test_host_writes_and_read_mux():
    rng = random.Random(2)
    n, depth = CONFIG.n_pes, CONFIG.act_depth
    model = {(p, sel, a): 0 for p in range(n) for sel in (MemSel.ACT0, MemSel.ACT1)
             for a in range(depth)}
    dut = PEArray(config=CONFIG)

    async def write(ctx, pe, sel, addr, value, host_all=0):
        ctx.set(dut.host.en, 1)
        ctx.set(dut.host_pe, pe)
        ctx.set(dut.host_sel, sel)
        ctx.set(dut.host_all, host_all)
        ctx.set(dut.host.addr, addr)
        ctx.set(dut.host.data, value & (2**64 - 1))
        await ctx.tick()
        ctx.set(dut.host.en, 0)
        ctx.set(dut.host_all, 0)

    async def testbench(ctx):
        for _ in range(120):
            pe, sel = rng.randrange(n + 2), rng.choice([MemSel.ACT0, MemSel.ACT1])
            addr, value = rng.randrange(depth), rng.randrange(-2**15, 2**15)
            await write(ctx, pe, sel, addr, value)
            if pe < n:                   # a PE number past the array writes nothing
                model[(pe, sel, addr)] = value
        # A codebook broadcast (host_all) goes to the codebook, not to host_sel's memory.
        await write(ctx, 0, MemSel.ACT0, 1, 12345, host_all=1)
        for (pe, sel, addr), value in model.items():
            ctx.set(dut.host_sel, sel)
            ctx.set(dut.host.addr, addr)
            ctx.set(dut.read_pe, pe)
            await ctx.tick()
            assert ctx.get(dut.read_data) == value, (pe, sel, addr)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()

"""ActBuffer: parameter checks, then host writes, write-back writes and the 1-cycle scan
read of both banks."""

import random

import pytest
from amaranth.sim import Simulator

from contract.config import EIEConfig
from rtl.act_buffer import ActBuffer

CONFIG = EIEConfig(act_depth=16)


def test_init():
    dut = ActBuffer(config=CONFIG, init0=[1, -2], init1=[3])
    dut._MustUse__silence = True
    assert dut.config is CONFIG
    with pytest.raises(AttributeError):
        dut.config = CONFIG


def test_wrong_parameters():
    with pytest.raises(TypeError, match=r"^Config must be an EIEConfig, not \{\}$"):
        ActBuffer(config={})
    with pytest.raises(ValueError, match=r"^Initial contents of activation bank 1 have 17 "
                                         r"rows, more than its depth 16$"):
        ActBuffer(config=CONFIG, init1=[0] * 17)


def test_banks_host_writeback_and_scan():
    rng = random.Random(3)
    init0 = [rng.randrange(-2**15, 2**15) for _ in range(16)]
    dut = ActBuffer(config=CONFIG, init0=init0)
    model = [list(init0), [0] * 16]

    async def testbench(ctx):
        # Scan read: data of the previous cycle's bank/address.
        for addr in range(16):
            ctx.set(dut.scan_bank, addr % 2)
            ctx.set(dut.scan_addr, addr)
            await ctx.tick()
            assert ctx.get(dut.scan_data) == model[addr % 2][addr]
        for _ in range(300):
            op = rng.choice(["host", "wb", "both", "none"])
            bank, addr, value = rng.randrange(2), rng.randrange(16), rng.randrange(-2**15, 2**15)
            wb_bank, wb_addr, wb_value = (rng.randrange(2), rng.randrange(16),
                                          rng.randrange(-2**15, 2**15))
            scan_bank, scan_addr = rng.randrange(2), rng.randrange(16)
            ctx.set(dut.host.en, op in ("host", "both"))
            ctx.set(dut.host_bank, bank)
            ctx.set(dut.host.addr, addr)
            ctx.set(dut.host.data, value & 0xffff)         # two's complement
            ctx.set(dut.wb_en, op in ("wb", "both"))
            ctx.set(dut.wb_bank, wb_bank)
            ctx.set(dut.wb_addr, wb_addr)
            ctx.set(dut.wb_data, wb_value)
            ctx.set(dut.scan_bank, scan_bank)
            ctx.set(dut.scan_addr, scan_addr)
            before = model[scan_bank][scan_addr]   # read-before-write in the same cycle
            await ctx.tick()
            assert ctx.get(dut.scan_data) == before
            if op in ("host", "both"):
                model[bank][addr] = value          # host wins a collision
            elif op == "wb":
                model[wb_bank][wb_addr] = wb_value
        ctx.set(dut.host.en, 0)
        ctx.set(dut.wb_en, 0)
        for bank in (0, 1):
            for addr in range(16):
                ctx.set(dut.scan_bank, bank)
                ctx.set(dut.scan_addr, addr)
                await ctx.tick()
                assert ctx.get(dut.scan_data) == model[bank][addr]

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()

"""The ESE scheduler's states (rtl/lstm_scheduler.py) in Amaranth's simulator, on the whole
engine (rtl/ese.py) with a baked tiny LSTM: the clear, a frame that waits for the host,
the order of the states within a frame, the counters, against the cycle model."""

import logging

import numpy as np
import torch
from amaranth.sim import Simulator
from lstm_models import lstm_model

from compiler.lstm_pack import compress_lstm, pack_lstm
from contract.config import EIEConfig
from contract.lstm_config import ESEConfig
from contract.lstm_program import ChanSel, ESEReg, ESERegion, ese_address
from golden.lstm_cycles import lstm_cycles
from golden.lstm_model import quantize_sequence, run_lstm
from rtl.ese import ESE
from rtl.lstm_scheduler import SchedulerState as S


def _image(channels):
    logging.getLogger("compiler.pack").setLevel(logging.ERROR)
    cfg = ESEConfig(channel=EIEConfig(n_pes=2, act_frac=11, acc_depth=8, act_depth=32,
                                      spmat_depth=128, ptr_depth=64, bias_depth=32,
                                      max_tiles=16),
                    channels=channels, cell_depth=8)
    model = lstm_model(3, 4, 1, 2, (3,), seed=1)
    return pack_lstm(compress_lstm(model, cfg, density=0.5, balance=True), cfg)


def _collapse(states):
    out = []
    for s in states:
        if not out or out[-1] != s:
            out.append(s)
    return out


def test_states_counters_and_a_frame_that_waits():
    image = _image(channels=2)
    cfg = image.config
    x = torch.randn(2, 2, 3, generator=torch.Generator().manual_seed(3)).numpy()
    q = quantize_sequence(x, cfg)                        # 2 sequences (both channels), T = 2
    want = run_lstm(image, q, trace=True)
    model_cycles = lstm_cycles(image, q, result=want).cycles
    dut = ESE(cfg, image=image, frame_slots=2, slot_words=4)
    sched = None
    trace = {"states": [], "waiting": 0}
    n = cfg.n_pes

    async def bench(ctx):
        nonlocal sched
        h = dut.host

        async def write(addr, data):
            ctx.set(h.addr, addr)
            ctx.set(h.wdata, data & (2**64 - 1))
            ctx.set(h.write, 1)
            await ctx.tick()
            ctx.set(h.write, 0)

        async def read(addr):
            ctx.set(h.addr, addr)
            ctx.set(h.read, 1)
            await ctx.tick()
            ctx.set(h.read, 0)
            while not ctx.get(h.rvalid):
                await ctx.tick()
            return ctx.get(h.rdata)

        def reg(r):
            return ese_address(ESERegion.REGS, int(r))

        for c in range(2):
            await write(reg(ESEReg.CHANNEL_SEL), c)
            for t in range(2):
                for j in range(3):
                    await write(ese_address(ESERegion.CHANNEL, t * 4 + j // n, pe=j % n,
                                            sel=ChanSel.IN_RING), int(q[c, t, j]))
        await write(reg(ESEReg.FRAMES), 2)
        await write(reg(ESEReg.FRAMES_READY), 1)         # frame 1 is not written "yet"
        await write(reg(ESEReg.CTRL_STATUS), 1)
        sched = dut._blocks["scheduler"]
        state = sched._registers["state"]
        waited = 0
        while True:
            await ctx.tick()
            s = S(ctx.get(state))
            trace["states"].append(s)
            if s == S.WAIT and ctx.get(sched.waiting):
                waited += 1
                if waited == 25:                         # the host "writes" frame 1
                    await write(reg(ESEReg.FRAMES_READY), 2)
            if ctx.get(dut.done):
                break
        trace["waiting"] = waited
        assert await read(reg(ESEReg.CTRL_STATUS)) == 2
        assert await read(reg(ESEReg.FRAME_COUNT)) == 2
        trace["frame_cycles"] = [await read(reg(ESEReg.FRAME_CYCLES + t)) for t in range(2)]
        trace["total"] = await read(reg(ESEReg.TOTAL_CYCLES))
        outs = np.zeros((2, 2, image.n_out), np.int64)
        for c in range(2):
            await write(reg(ESEReg.CHANNEL_SEL), c)
            for t in range(2):
                for j in range(image.n_out):
                    v = await read(ese_address(ESERegion.CHANNEL, t * 4 + j // n, pe=j % n,
                                               sel=ChanSel.OUT_RING))
                    outs[c, t, j] = v - (1 << 64) if v >> 63 else v
        trace["q"] = outs

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()

    states = _collapse(trace["states"])
    clear = sum(1 for s in trace["states"] if s == S.CLEAR)
    assert clear == max(cfg.channel.act_depth, cfg.channels * cfg.cell_depth)
    # one layer with projection and a one-tile head; each tile then channel 1's pass
    frame = [S.LOAD, S.DISPATCH, S.RUN, S.PASS, S.PASS_TAIL, S.CELL,      # gate tile
             S.DISPATCH, S.RUN, S.PASS, S.PASS_TAIL,                      # projection
             S.DISPATCH, S.RUN, S.PASS, S.PASS_TAIL, S.FRAME_END]         # head
    assert states == [S.CLEAR, S.WAIT, *frame, S.WAIT, *frame, S.WAIT, S.IDLE]
    assert trace["waiting"] >= 25
    np.testing.assert_array_equal(trace["q"], want.q)
    assert trace["frame_cycles"] == model_cycles[0].tolist()
    # the run's cycles are the frames' and the last WAIT; the frame wait is not counted
    assert trace["total"] == sum(trace["frame_cycles"]) + 1

# amaranth: UnusedElaboratable=no
"""Reset of the array top with the real PE (docs/rtl.md, "Reset"), on Amaranth's simulator.

A reset may come at any point of a run. Right after it every PE's queue, pointer stage
and idle counter and the sequencer must be back at their power-up values, and a run
started straight away, without rewriting the input (the memories keep their contents),
must give golden's outputs and cycle counts. The resets here land during compute (with
a full queue), during write-back, in a later tile, right after the bank swap and in the
later layer; the input in bank 0 is only overwritten by the second layer's write-back, so
every reset point lies before it.
"""

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

import golden
from compiler.pack import pack
from compiler.types import QuantLayer
from contract.config import EIEConfig
from contract.host_map import MemSel, Reg, Region, host_address
from golden import cycle_model
from rtl.eie import EIE

CONFIG = EIEConfig(n_pes=2, queue_depth=4, act_depth=16, acc_depth=12, spmat_depth=128,
                   ptr_depth=64, bias_depth=64, max_layers=4, max_tiles=8)
#: ``idle`` of a PE rises this many free cycles after power-up or reset (docs/rtl.md,
#: "Fixed latencies"; pinned with the pipeline constants in tests/test_rtl_eie.py).
IDLE_DELAY = 4
#: Cycles observed after power-up and after each reset.
OBSERVE = IDLE_DELAY + 3


def make_case():
    """A two-layer image (the first layer in two tiles) and one input vector."""
    rng = np.random.default_rng(11)
    layers = []
    for k, (n_out, n_in) in enumerate([(30, 13), (9, 30)]):
        idx = rng.integers(1, 16, (n_out, n_in)) * (rng.random((n_out, n_in)) < 0.8)
        layers.append(QuantLayer(f"fc{k}", idx.astype(np.uint8),
                                 np.concatenate([[0.0], rng.normal(0, 0.5, 15)]),
                                 rng.normal(size=n_out) if k == 0 else None, relu=k == 0))
    image = pack(layers, CONFIG)
    q = rng.integers(-400, 400, 13)
    q[[1, 6]] = 0
    return image, q


IMAGE, Q = make_case()
# First tile of the second layer: the tile after the first swap.
LATER_LAYER = next(t for t in range(1, len(IMAGE.program)) if IMAGE.program[t - 1].swap)


# White-box handles of the last elaboration (rtl/eie.py, rtl/pe_array.py, rtl/pe.py).
def pes(dut):
    return dut._blocks["array"]._blocks["pes"]


def scanner(dut):
    return dut._blocks["array"]._blocks["scanner"]


def sequencer_state(dut):
    return dut._blocks["sequencer"]._registers["state"]


def sequencer_pc(dut):
    return dut._blocks["sequencer"].pc


def queue_full(dut, ctx):
    return any(ctx.get(pe._blocks["queue"].level) == CONFIG.queue_depth for pe in pes(dut))


# (name, tile, sequencer state, extra condition, cycles to wait after it, reset cycles)
POINTS = {
    "compute-queue-full": (0, "COMPUTE", queue_full, 0, 1),
    "writeback": (0, "WRITEBACK", None, 2, 3),
    "later-tile-compute": (1, "COMPUTE", queue_full, 1, 1),
    "after-bank-swap": (LATER_LAYER, "DECODE", None, 0, 2),
    "later-layer-compute": (LATER_LAYER, "COMPUTE", queue_full, 0, 2),
}


def snapshot(dut, ctx):
    """The state a reset must clear: sequencer, scanner and per PE (level, pending, idle)."""
    return (ctx.get(sequencer_state(dut)).name, ctx.get(sequencer_pc(dut)), ctx.get(dut.busy),
            ctx.get(dut.done), ctx.get(scanner(dut).running),
            tuple((ctx.get(pe._blocks["queue"].level), ctx.get(pe._registers["pending"]),
                   ctx.get(pe.idle)) for pe in pes(dut)))


def power_up_trace():
    """Expected snapshots of the cycles after power-up, independent of the RTL."""
    return [("IDLE", 0, 0, 0, 0, ((0, 0, int(k >= IDLE_DELAY)),) * CONFIG.n_pes)
            for k in range(OBSERVE)]


class Host:
    """Host-port driver for an Amaranth async testbench."""

    def __init__(self, ctx, dut):
        self.ctx, self.dut = ctx, dut

    async def write(self, addr, data):
        h = self.dut.host
        self.ctx.set(h.addr, addr)
        self.ctx.set(h.wdata, int(data) & (2**64 - 1))
        self.ctx.set(h.write, 1)
        await self.ctx.tick()
        self.ctx.set(h.write, 0)

    async def read(self, addr):
        h = self.dut.host
        self.ctx.set(h.addr, addr)
        self.ctx.set(h.read, 1)
        await self.ctx.tick()
        self.ctx.set(h.read, 0)
        for _ in range(8):
            if self.ctx.get(h.rvalid):
                word = self.ctx.get(h.rdata)
                return word - 2**64 if word >= 2**63 else word
            await self.ctx.tick()
        raise AssertionError("no rvalid")

    async def load(self, image):
        for p in range(CONFIG.n_pes):
            for name, sel in (("spmat", MemSel.SPMAT), ("ptr_even", MemSel.PTR_EVEN),
                              ("ptr_odd", MemSel.PTR_ODD), ("bias", MemSel.BIAS)):
                words = getattr(image, name)[p]
                for a in np.flatnonzero(words):
                    await self.write(host_address(Region.PE, int(a), pe=p, sel=sel),
                                     int(words[a]))
        for a in np.flatnonzero(image.codebook):
            await self.write(host_address(Region.CODEBOOK, int(a)), int(image.codebook[a]))
        for t, d in enumerate(image.program):
            await self.write(host_address(Region.PROGRAM, t), d.encode(CONFIG))

    async def start(self):
        await self.write(host_address(Region.REGS, Reg.CTRL_STATUS), 1)


@pytest.mark.parametrize("at_once", [False, True], ids=["observe", "restart-at-once"])
@pytest.mark.parametrize("points", [[name] for name in POINTS] + [list(POINTS)],
                         ids=[*POINTS, "all-in-sequence"])
def test_reset_then_rerun_without_rewriting_input(points, at_once):
    assert IMAGE.program[0].slot == 0 and not IMAGE.program[0].swap and LATER_LAYER == 2
    want = golden.run(IMAGE, Q).q.tolist()
    want_cycles = cycle_model.cycles(IMAGE, Q)
    n = CONFIG.n_pes
    dut = EIE(CONFIG)
    top = Module()
    top.domains.sync = sync = ClockDomain()
    top.submodules.dut = dut
    log = []

    async def tick(ctx):
        await ctx.tick()
        assert not ctx.get(dut.done), "the run ended before the reset point"

    async def testbench(ctx):
        trace = []
        for _ in range(OBSERVE):
            trace.append(snapshot(dut, ctx))
            await ctx.tick()
        assert trace == power_up_trace()
        host = Host(ctx, dut)
        await host.load(IMAGE)
        for j in range(IMAGE.program[0].in_local * n):      # the input, written once
            value = int(Q[j]) if j < len(Q) else 0
            await host.write(host_address(Region.PE, j // n, pe=j % n, sel=MemSel.ACT0), value)
        for name in points:
            tile, state, condition, delay, hold = POINTS[name]
            await host.start()
            for _ in range(5000):
                if (ctx.get(sequencer_pc(dut)) == tile
                        and ctx.get(sequencer_state(dut)).name == state
                        and (condition is None or condition(dut, ctx))):
                    break
                await tick(ctx)
            else:
                raise AssertionError(f"{name}: tile {tile} never reached {state}")
            for _ in range(delay):
                await tick(ctx)
            assert ctx.get(sequencer_state(dut)).name == state, name
            log.append((name, snapshot(dut, ctx)))
            ctx.set(sync.rst, 1)
            for _ in range(hold):
                await ctx.tick()
            ctx.set(sync.rst, 0)
            await ctx.tick()                  # the cycle the core reset (rst_q) is high
            if at_once:
                # The next start follows in the first cycle after the reset, so anything
                # a reset missed is still in flight when the rerun preloads and computes.
                assert snapshot(dut, ctx) == power_up_trace()[0], name
                continue
            trace = []
            for _ in range(OBSERVE):
                trace.append(snapshot(dut, ctx))
                await ctx.tick()
            assert trace == power_up_trace(), name
            assert await host.read(host_address(Region.REGS, Reg.CTRL_STATUS)) == 0, name
        await host.start()                    # the input is not rewritten
        for _ in range(5000):
            if ctx.get(dut.done):
                break
            await ctx.tick()
        else:
            raise AssertionError("done never rose")
        sel = MemSel.ACT1 if IMAGE.output_bank else MemSel.ACT0
        got = [await host.read(host_address(Region.PE, i // n, pe=i % n, sel=sel))
               for i in range(IMAGE.n_out)]
        assert got == want, (got, want)
        assert await host.read(host_address(Region.REGS, Reg.TOTAL_CYCLES)) == \
            want_cycles.total
        per_layer = [await host.read(host_address(Region.REGS, Reg.LAYER_CYCLES + k))
                     for k in range(len(IMAGE.layers))]
        assert per_layer == [layer.cycles for layer in want_cycles.layers]

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    # Every reset hit a busy array; the compute points with columns queued.
    assert [name for name, _ in log] == points
    for name, (_, _, busy, _, _, pes) in log:
        assert busy == 1, name
        if "compute" in name:
            assert any(level for level, _, _ in pes), name
    assert any(want) and len(set(want)) > 3

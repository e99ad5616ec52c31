"""PE: parameter checks, then whole-PE runs of packed random layers (compiler.pack) with
randomly gapped broadcasts, checked bit for bit against an independent NumPy evaluation
of docs/numerics.md, plus the cycle-exact pop schedule (empty columns never queued), the
accept rule of act_in.ready and the idle timing."""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from compiler.pack import pack
from compiler.types import QuantLayer
from contract.config import EIEConfig
from contract.host_map import MemSel
from rtl.common import pe_init
from rtl.pe import IDLE_DELAY, PE

CONFIG = EIEConfig(n_pes=2, queue_depth=3, acc_depth=24, act_depth=64, spmat_depth=256,
                   ptr_depth=128, bias_depth=64, max_layers=2, max_tiles=8)
# Narrow relative indices (more padding), 56-bit words, 4 PEs and a one-entry queue.
NARROW = EIEConfig(n_pes=4, queue_depth=1, index_bits=3, acc_depth=20, act_depth=32,
                   spmat_depth=256, ptr_depth=128, bias_depth=64, max_layers=2, max_tiles=8)


def test_init():
    dut = PE(config=CONFIG, init={"bias": [1, -1], "act1": [5]})
    dut._MustUse__silence = True
    assert dut.config is CONFIG
    assert dut.init["bias"] == [1, -1] and dut.init["spmat"] == []
    with pytest.raises(AttributeError):
        dut.config = CONFIG


def test_wrong_parameters():
    with pytest.raises(TypeError, match=r"^Config must be an EIEConfig, not 3$"):
        PE(config=3)
    with pytest.raises(TypeError, match=r"^PE init must be a mapping of memory name to "
                                        r"contents, not \[1\]$"):
        PE(config=CONFIG, init=[1])
    with pytest.raises(ValueError, match=r"^Unknown PE init memory name\(s\) \['acc'\]"):
        PE(config=CONFIG, init={"acc": [0]})
    with pytest.raises(ValueError, match=r"^Initial contents of the PE ptr_odd memory have "
                                         r"129 rows, more than its depth 128$"):
        PE(config=CONFIG, init={"ptr_odd": [0] * 129})
    with pytest.raises(ValueError, match=r"^PE index must be an integer in \[0, 2\), not 2$"):
        pe_init(object.__new__(type("I", (), {"config": CONFIG})), 2)


# ---- independent reference ---------------------------------------------------------------
def reference_layer(layer, w_frac, a, config):
    """docs/numerics.md with plain Python integers: wrap, shift/round half up, saturate."""
    c = [int(v) for v in np.rint(np.asarray(layer.codebook) * 2.0**w_frac)]
    bias = ([0] * layer.n_out if layer.bias is None else
            [int(v) for v in np.rint(np.asarray(layer.bias) * 2.0**(config.act_frac + w_frac))])
    mod, half_acc = 1 << config.acc_bits, 1 << (config.acc_bits - 1)
    lo, hi = -(1 << (config.act_bits - 1)), (1 << (config.act_bits - 1)) - 1
    out = []
    for i in range(layer.n_out):
        acc = bias[i] + sum(c[int(v)] * int(x) for v, x in zip(layer.indices[i], a, strict=True))
        acc = (acc + half_acc) % mod - half_acc
        t = (acc + (1 << (w_frac - 1))) >> w_frac if w_frac else acc
        t = min(max(t, lo), hi)
        out.append(max(t, 0) if layer.relu else t)
    return out


def column_lengths(layer, p, row0, out_local, config):
    """Entries (non-zeros plus padding) of every column in PE p's part of a tile."""
    lengths = []
    for j in range(layer.n_in):
        count, previous = 0, -1
        for r in range(out_local):
            i = row0 + p + config.n_pes * r
            if i < layer.n_out and layer.indices[i, j]:
                count += 1 + (r - previous - 1) // (config.max_run + 1)
                previous = r
        lengths.append(count)
    return lengths


def random_layers(rng):
    def layer(name, n_in, n_out, density, relu, bias):
        indices = rng.integers(1, 16, (n_out, n_in)) * (rng.random((n_out, n_in)) < density)
        indices[:, 3] = 0                                   # an empty column
        indices[:, 5] = rng.integers(1, 16, n_out)          # a dense column (long runs)
        indices[::7, 8] = 3                                 # long zero gaps -> padding
        indices[1::7, 8] = 0
        codebook = np.concatenate(([0.0], rng.normal(0, 0.4, 15)))
        return QuantLayer(name, indices.astype(np.uint8), codebook,
                          rng.normal(0, 1, n_out) if bias else None, relu)
    first = layer("fc1", 30, 100, 0.15, True, True)         # 3 tiles of up to 48 rows
    second = layer("fc2", 100, 20, 0.2, False, False)
    return [first, second]


class PETestbench:
    """Drives one PE through a program like the array top does and records the timing."""

    def __init__(self, dut, rng):
        self.dut, self.rng, self.cycle = dut, rng, 0
        self.transfers, self.pops, self.idle_rise = [], [], []
        self.ready = []                       # act_in.ready in every cycle
        self.stalls = 0

    async def tick(self, ctx):
        queue = self.dut._blocks["queue"]
        if ctx.get(queue.o.valid) and ctx.get(queue.o.ready):
            self.pops.append(self.cycle)
        # The accept rule guarantees the queue never refuses a column.
        assert not ctx.get(queue.i.valid) or ctx.get(queue.i.ready), self.cycle
        self.ready.append(ctx.get(self.dut.act_in.ready))
        await ctx.tick()
        self.cycle += 1

    async def run_tile(self, ctx, descriptor, activations, dst_bank):
        dut = self.dut
        ctx.set(dut.tile, {name: int(getattr(descriptor, name)) for name in
                           ("ptr_base", "spmat_base", "bias_base", "out_base", "slot",
                            "shift", "relu", "bias_en")})
        ctx.set(dut.preload_en, 1)
        for row in range(descriptor.out_local):
            ctx.set(dut.preload_row, row)
            await self.tick(ctx)
        ctx.set(dut.preload_en, 0)
        # Broadcast the non-zero activations in ascending j with random gaps; valid, once
        # raised, stays up until the transfer (stream rules).
        pending = [(int(a), j) for j, a in enumerate(activations) if a != 0]
        transfers = []
        while pending:
            if self.rng.random() < 0.6:
                ctx.set(dut.act_in.valid, 1)
                ctx.set(dut.act_in.payload, {"value": pending[0][0], "index": pending[0][1]})
                while not ctx.get(dut.act_in.ready):
                    self.stalls += 1
                    await self.tick(ctx)
                transfers.append(self.cycle)
                pending.pop(0)
                await self.tick(ctx)
                ctx.set(dut.act_in.valid, 0)
            else:
                await self.tick(ctx)
        # Wait for idle; record when it rose.
        pops_before = len(self.pops)
        while not ctx.get(dut.idle):
            await self.tick(ctx)
        arith, spmat = dut._blocks["arith_unit"], dut._blocks["spmat_read"]
        assert ctx.get(arith.busy) == 0 and ctx.get(spmat.o.valid) == 0
        self.transfers.append(transfers)
        self.idle_rise.append((self.cycle, pops_before))
        ctx.set(dut.wb_en, 1)
        ctx.set(dut.dst_bank, dst_bank)
        for row in range(descriptor.out_local):
            ctx.set(dut.wb_row, row)
            await self.tick(ctx)
        ctx.set(dut.wb_en, 0)
        for _ in range(3):
            await self.tick(ctx)

    async def read_bank(self, ctx, bank, count):
        values = []
        ctx.set(self.dut.scan_bank, bank)
        for addr in range(count):
            ctx.set(self.dut.scan_addr, addr)
            await ctx.tick()
            values.append(ctx.get(self.dut.scan_data))
        return values


async def host_load(ctx, dut, memories):
    """Load a PE's memories through the host write port (only non-zero words)."""
    select = {"spmat": MemSel.SPMAT, "ptr_even": MemSel.PTR_EVEN, "ptr_odd": MemSel.PTR_ODD,
              "bias": MemSel.BIAS, "codebook": MemSel.CODEBOOK}
    ctx.set(dut.host.en, 1)
    for name, values in memories.items():
        ctx.set(dut.host_sel, select[name])
        for addr, value in enumerate(values):
            if value:
                ctx.set(dut.host.addr, addr)
                ctx.set(dut.host.data, value & ((1 << 64) - 1))   # two's complement
                await ctx.tick()
    ctx.set(dut.host.en, 0)


@pytest.mark.parametrize("config,pe,load", [(CONFIG, 0, "init"), (CONFIG, 1, "init"),
                                            (CONFIG, 1, "host"), (NARROW, 3, "init")],
                         ids=["pe0", "pe1", "pe1-host-load", "narrow-pe3"])
def test_pe_program(config, pe, load):
    N = config.n_pes
    rng = np.random.default_rng(20 + pe)
    layers = random_layers(rng)
    image = pack(layers, config)
    memories = pe_init(image, pe)
    dut = PE(config=config, init=memories if load == "init" else None)
    q_in = rng.integers(-2**15, 2**15, layers[0].n_in) * (rng.random(layers[0].n_in) < 0.6)
    q_in[[0, 3, 5, 8]] = [2**15 - 1, 1000, -2**15, 77]
    hidden = reference_layer(layers[0], image.layers[0].w_frac, q_in, config)
    output = reference_layer(layers[1], image.layers[1].w_frac, hidden, config)
    bench = PETestbench(dut, random.Random(pe))
    results = {}

    async def testbench(ctx):
        if load == "host":
            await host_load(ctx, dut, memories)
        ctx.set(dut.host.en, 1)              # the source activations, through the host port
        for addr in range(config.act_depth):
            j = addr * N + pe
            ctx.set(dut.host_sel, MemSel.ACT0)
            ctx.set(dut.host.addr, addr)
            ctx.set(dut.host.data, int(q_in[j]) & 0xffff if j < len(q_in) else 0)
            await ctx.tick()
        ctx.set(dut.host.en, 0)
        for descriptor in image.program:
            layer_index = descriptor.slot
            vector = q_in if layer_index == 0 else hidden
            await bench.run_tile(ctx, descriptor, vector, dst_bank=1 - layer_index)
        results["bank1"] = await bench.read_bank(ctx, 1, config.act_depth)
        results["bank0"] = await bench.read_bank(ctx, 0, config.act_depth)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()

    # Activations: layer-1 output in bank 1, layer-2 output in bank 0 (over the input),
    # interleaved; rows of a tile past n_out are written as 0, the rest is untouched.
    written = {"bank1": sum(d.out_local for d in image.program if d.slot == 0),
               "bank0": sum(d.out_local for d in image.program if d.slot == 1)}
    for bank, vector in (("bank1", hidden), ("bank0", output)):
        for addr, value in enumerate(results[bank]):
            i = addr * N + pe
            if addr < written[bank]:
                expected = vector[i] if i < len(vector) else 0
            else:
                expected = int(q_in[i]) if bank == "bank0" and i < len(q_in) else 0
            assert value == expected, (bank, addr)

    # Pop schedule, cycle-exact: only columns with entries are queued; such a column is
    # popped in s = max(b + 2, e) where e = s' + len' of the previous one (docs/architecture).
    pops = iter(bench.pops)
    queued = []                                  # transfer cycles of non-empty columns
    empty_broadcasts = 0
    rows_per_tile = config.rows_per_tile
    for t, descriptor in enumerate(image.program):
        layer = layers[descriptor.slot]
        first_tile = image.layers[descriptor.slot].first_tile
        row0 = (t - first_tile) * rows_per_tile
        lengths = column_lengths(layer, pe, row0, descriptor.out_local, config)
        vector = q_in if descriptor.slot == 0 else hidden
        columns = [j for j, a in enumerate(vector) if a != 0]
        transfers = bench.transfers[t]
        assert len(transfers) == len(columns)
        previous = 0
        for b, j in zip(transfers, columns, strict=True):
            if lengths[j] == 0:
                empty_broadcasts += 1
                continue
            queued.append(b)
            s = next(pops)
            assert s == max(b + 2, previous), (t, j)
            previous = s + lengths[j]
        # idle rises IDLE_DELAY cycles after the PE is free: the last broadcast has left
        # the pointer stage and the last column is on its last entry.
        idle_cycle, _ = bench.idle_rise[t]
        assert idle_cycle == max(previous, transfers[-1] + 2) + IDLE_DELAY
    assert next(pops, None) is None
    # act_in.ready in every cycle: level - pop + pending < queue_depth, with the level
    # counted from the transfers (a non-empty column enters the queue 2 cycles after its
    # transfer) and the pops.
    all_transfers = {b for tile in bench.transfers for b in tile}
    pop_set = set(bench.pops)
    for cycle, ready in enumerate(bench.ready):
        level = (sum(b + 2 <= cycle for b in queued)
                 - sum(s < cycle for s in bench.pops))
        expected = level - (cycle in pop_set) + (cycle - 1 in all_transfers) < config.queue_depth
        assert ready == expected, cycle
    assert empty_broadcasts > 0
    # The test exercised padding, long columns, the queue filling up, and non-trivial values.
    assert image.layers[0].padding > 0 and bench.stalls > 0
    assert len(set(hidden)) > 10 and len(set(output)) > 10
    print(f"pe {pe}: {bench.cycle} cycles, {len(bench.pops)} pops, {bench.stalls} stalls, "
          f"hidden {hidden[:6]}, output {output[:6]}")
    assert max(column_lengths(layers[0], pe, 0, config.acc_depth, config)) > 16


def test_pe_fixed_latencies():
    """PRELOAD_LATENCY and WRITEBACK_LATENCY as documented in docs/rtl.md, exactly."""
    from rtl.pe import PRELOAD_LATENCY, WRITEBACK_LATENCY
    dut = PE(config=CONFIG, init={"bias": [0] * 9 + [5 << 8]})
    tile = {"bias_base": 7, "out_base": 4, "shift": 8}

    async def measure(ctx, delay):
        """Zero acc[2], set act1[6] = 111, preload acc[2] = 5 << 8 in cycle t, request its
        write-back in t + delay; return scan reads of act1[6] issued in t + delay + k."""
        ctx.set(dut.tile, dict(tile, bias_en=0))
        ctx.set(dut.preload_en, 1)
        ctx.set(dut.preload_row, 2)
        ctx.set(dut.host.en, 1)
        ctx.set(dut.host_sel, MemSel.ACT1)
        ctx.set(dut.host.addr, 6)
        ctx.set(dut.host.data, 111)
        await ctx.tick()
        ctx.set(dut.host.en, 0)
        ctx.set(dut.preload_en, 0)
        for _ in range(3):
            await ctx.tick()
        ctx.set(dut.tile, dict(tile, bias_en=1))
        ctx.set(dut.preload_en, 1)
        await ctx.tick()
        ctx.set(dut.preload_en, 0)
        for _ in range(delay - 1):
            await ctx.tick()
        ctx.set(dut.wb_en, 1)
        ctx.set(dut.wb_row, 2)
        ctx.set(dut.dst_bank, 1)
        ctx.set(dut.scan_bank, 1)
        ctx.set(dut.scan_addr, 6)
        seen = []
        for k in range(WRITEBACK_LATENCY + 2):
            await ctx.tick()
            if k == 0:
                ctx.set(dut.wb_en, 0)
                ctx.set(dut.dst_bank, 0)    # sampled with wb_en: changing it is harmless
            seen.append(ctx.get(dut.scan_data))
        return seen

    async def testbench(ctx):
        before = [111] * WRITEBACK_LATENCY
        # Write-back requested one cycle after the preload still reads the old 0.
        assert await measure(ctx, PRELOAD_LATENCY - 1) == before + [0, 0]
        # From PRELOAD_LATENCY on it reads the bias; the activation is visible to a scan
        # read issued WRITEBACK_LATENCY cycles after wb_en, not earlier.
        assert await measure(ctx, PRELOAD_LATENCY) == before + [5, 5]

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


def test_idle_after_reset_and_first_broadcast():
    # Column 0 of this PE has no entries (all pointers 0): d = 1.
    dut = PE(config=CONFIG)

    async def testbench(ctx):
        for cycle in range(IDLE_DELAY + 2):
            assert ctx.get(dut.idle) == (cycle >= IDLE_DELAY), cycle
            await ctx.tick()
        ctx.set(dut.act_in.valid, 1)                 # accepted in cycle b
        ctx.set(dut.act_in.payload, {"value": 3, "index": 0})
        assert ctx.get(dut.act_in.ready) == 1
        assert ctx.get(dut.idle) == 1                # registered: not affected by valid
        await ctx.tick()
        ctx.set(dut.act_in.valid, 0)
        for k in range(1, IDLE_DELAY + 4):
            # pointer stage in b + 1 (pending, not free); the empty column is dropped, so
            # the PE is free again from b + 2
            assert ctx.get(dut.idle) == (k >= 2 + IDLE_DELAY), k
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()

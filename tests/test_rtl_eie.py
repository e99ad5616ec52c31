# amaranth: UnusedElaboratable=no
"""Array top (rtl/eie.py) on Amaranth's simulator: host port, sequencer, counters.

The bit-exact system tests against golden with the real PE run under cocotb + Verilator
(sim_tests/). Here a small stand-in PE with the PE's port contract makes the top's own
behaviour (host decode, program walk, bank swap, scan/broadcast, counters) checkable
against an independent model in a fraction of a second.
"""

import random

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed
from amaranth.lib import memory, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

import golden
from compiler.pack import pack
from compiler.types import QuantLayer
from contract.config import ConfigError, EIEConfig
from contract.host_map import MemSel, Reg, Region, host_address
from contract.image import Descriptor, PackedImage
from golden import cycle_model
from rtl.common import HostWrite, act_layout, tile_layout
from rtl.eie import EIE
from rtl.host_map import READ_LATENCY
from rtl.pe import PE


class StandInPE(wiring.Component):
    """Stand-in with the PE ports: pops one broadcast per cycle and sums the values.

    Write-back of row ``r`` stores ``(sum of popped values + r)`` truncated to ``act_bits``;
    preload clears the sum. ``idle`` = queue empty (IDLE_DELAY = 0), write-back lands
    one cycle after ``wb_en`` (WRITEBACK_LATENCY = 1).
    """

    IDLE_DELAY = 0
    WRITEBACK_LATENCY = 1

    def __init__(self, *, config, init=None):
        self._config = config
        c = config
        super().__init__({
            "act_in": In(stream.Signature(act_layout(c))),
            "tile": In(tile_layout(c)),
            "preload_en": In(1), "preload_row": In(range(c.acc_depth)),
            "wb_en": In(1), "wb_row": In(range(c.acc_depth)), "dst_bank": In(1),
            "idle": Out(1),
            "scan_bank": In(1), "scan_addr": In(range(c.act_depth)),
            "scan_data": Out(signed(c.act_bits)),
            "host": In(HostWrite.Signature(17, 64)), "host_sel": In(MemSel),
        })

    def elaborate(self, platform):
        m = Module()
        c = self._config
        m.submodules.queue = q = SyncFIFO(width=len(self.act_in.payload.as_value()),
                                          depth=c.queue_depth)
        m.d.comb += [q.w_data.eq(self.act_in.payload.as_value()), q.w_en.eq(self.act_in.valid),
                     self.act_in.ready.eq(q.w_rdy), q.r_en.eq(1), self.idle.eq(~q.r_rdy)]
        total = Signal(c.acc_bits)
        popped = Signal(act_layout(c))
        m.d.comb += popped.eq(q.r_data)
        with m.If(self.preload_en):
            m.d.sync += total.eq(0)
        with m.Elif(q.r_rdy):
            m.d.sync += total.eq(total + popped.value)
        banks = []
        for b in range(2):
            mem = memory.Memory(shape=signed(c.act_bits), depth=c.act_depth, init=[])
            m.submodules[f"act{b}"] = mem
            wr, rd = mem.write_port(), mem.read_port()
            sel = MemSel.ACT0 if b == 0 else MemSel.ACT1
            with m.If(self.wb_en & (self.dst_bank == b)):
                m.d.comb += [wr.en.eq(1), wr.addr.eq(self.tile.out_base + self.wb_row),
                             wr.data.eq(total + self.wb_row)]
            with m.Elif(self.host.en & (self.host_sel == sel)):
                m.d.comb += [wr.en.eq(1), wr.addr.eq(self.host.addr),
                             wr.data.eq(self.host.data)]
            m.d.comb += rd.addr.eq(self.scan_addr)
            banks.append(rd.data)
        m.d.comb += self.scan_data.eq(banks[0])
        with m.If(self.scan_bank):
            m.d.comb += self.scan_data.eq(banks[1])
        return m


def small_config(**kw):
    base = dict(n_pes=3, queue_depth=2, act_depth=8, acc_depth=4, spmat_depth=16,
                ptr_depth=8, bias_depth=8, max_layers=4, max_tiles=8)
    base.update(kw)
    return EIEConfig(**base)


# ---- parameters ---------------------------------------------------------------------------


def test_bad_config():
    # The host address map's limits (n_pes, memory depths) are EIEConfig's own checks
    # (tests/test_config.py); the top checks its argument and the image's config.
    with pytest.raises(TypeError, match=r"^Config must be an EIEConfig, not 'cfg'$"):
        EIE("cfg")
    image = PackedImage.empty(small_config())
    with pytest.raises(ConfigError, match=r"^image was packed for a different config "
                                          r"\(config_id 0x[0-9a-f]{8}, design 0x[0-9a-f]{8}\)$"):
        EIE(small_config(n_pes=2), image=image)
    with pytest.raises(TypeError, match=r"^PE class must have an integer IDLE_DELAY "
                                        r"attribute, not <class 'object'>$"):
        EIE(small_config(), pe_class=object)


#: golden.cycle_model.PIPELINE, pinned: a change on either side must be deliberate.
PIPELINE = {"START": 0, "PRE": 2, "DRAIN": 5, "POST": 1}


@pytest.mark.parametrize("config", [
    EIEConfig(), EIEConfig(queue_depth=1), EIEConfig(queue_depth=2, n_pes=1),
    EIEConfig(queue_depth=16, n_pes=3), EIEConfig(n_pes=64, act_depth=64),
    EIEConfig.paper(), small_config()], ids=lambda c: f"N{c.n_pes}-D{c.queue_depth}")
def test_pipeline_constants_match_golden(config):
    """The RTL derives PRE, DRAIN and POST from the PE's latencies; golden states them as
    a literal. They must agree for every config (none of them depends on N or D)."""
    assert cycle_model.PIPELINE == PIPELINE
    assert EIE(config).pipeline == PIPELINE
    assert (PE.IDLE_DELAY, PE.PRELOAD_LATENCY, PE.WRITEBACK_LATENCY) == (4, 2, 3)


# ---- simulation ---------------------------------------------------------------------------


class HostModel:
    """Drives the host port in an Amaranth async testbench."""

    def __init__(self, ctx, dut, rng=None, idle=0.0):
        self.ctx, self.dut, self.rng, self.idle = ctx, dut, rng or random.Random(0), idle

    async def _gap(self):
        while self.rng.random() < self.idle:
            await self.ctx.tick()

    async def write(self, addr, data):
        await self._gap()
        h = self.dut.host
        self.ctx.set(h.addr, addr)
        self.ctx.set(h.wdata, data & (2**64 - 1))
        self.ctx.set(h.write, 1)
        await self.ctx.tick()
        self.ctx.set(h.write, 0)

    async def read(self, addr):
        await self._gap()
        h = self.dut.host
        self.ctx.set(h.addr, addr)
        self.ctx.set(h.read, 1)
        await self.ctx.tick()
        self.ctx.set(h.read, 0)
        for _ in range(READ_LATENCY - 1):
            assert not self.ctx.get(h.rvalid)
            await self.ctx.tick()
        assert self.ctx.get(h.rvalid)
        return self.ctx.get(h.rdata)


def model_run(config, program, x):
    """Independent model of the stand-in array: outputs per layer and cycles per layer."""
    n, depth = config.n_pes, config.queue_depth
    bits = config.act_bits
    acts = {0: list(x), 1: [0] * (n * config.act_depth)}
    src, layer_cycles, cycles = 0, [], 0
    for d in program:
        vec = acts[src][:d.in_local * n]
        # broadcast slots with the stand-in PE popping one entry per cycle (d = 1)
        b, pops = -1, []
        for l in range(d.in_local):
            nz = [vec[l * n + p] for p in range(n) if vec[l * n + p] != 0]
            if not nz:
                b += 1
                continue
            for _ in nz:
                t = b + 1
                m = len(pops)
                if m >= depth:
                    t = max(t, pops[m - depth] + 1)
                b = t
                pops.append(max(b + 1, pops[-1] + 1 if pops else 0))
        c_span = max(b + 1, pops[-1] + 1 if pops else 0)
        total = sum(vec) % 2**config.acc_bits
        for r in range(d.out_local):
            value = (total + r) % 2**bits
            value -= 2**bits if value >= 2**(bits - 1) else 0
            local = d.out_base + r
            for p in range(n):
                acts[1 - src][local * n + p] = value
        cycles += c_span + 2 * d.out_local
        if d.swap or d.last:
            layer_cycles.append(cycles)
            cycles = 0
        if d.swap:
            src = 1 - src
    return acts[src], layer_cycles, c_span


def make_program(config, in_local, out_rows):
    """Program of layers with ``out_rows[k]`` local output rows; tiles as the packer cuts them
    (full tiles of acc_depth rows, then the rest), each layer reading the previous output."""
    program = []
    for k, rows in enumerate(out_rows):
        tiles = -(-rows // config.acc_depth)
        for t in range(tiles):
            program.append(Descriptor(
                in_local=in_local, out_local=min(config.acc_depth, rows - t * config.acc_depth),
                out_base=t * config.acc_depth, ptr_base=0, spmat_base=0, bias_base=0,
                slot=k, shift=0, relu=False, bias_en=False, swap=(t == tiles - 1),
                last=(k == len(out_rows) - 1 and t == tiles - 1)))
        in_local = rows
    return program


WIDE = dict(act_depth=64, spmat_depth=2**14, ptr_depth=2**13, bias_depth=1024, max_layers=16)


@pytest.mark.parametrize("seed,wide", [(0, False), (1, False), (2, False), (3, True)])
def test_run_standin(seed, wide):
    rng = random.Random(seed)
    cfg = small_config(n_pes=rng.choice([1, 3, 4]), queue_depth=rng.choice([1, 2, 5]),
                       **(WIDE if wide else {}))
    assert (cfg.descriptor_bits > 64) == wide
    n = cfg.n_pes
    in_local = rng.randrange(1, min(cfg.act_depth, 12) + 1)
    out_rows = [rng.randrange(1, 4), rng.randrange(5, 8), rng.randrange(1, 4)]
    program = make_program(cfg, in_local, out_rows)
    layers = [(rows, -(-rows // cfg.acc_depth)) for rows in out_rows]
    x = [rng.choice([0, 0, rng.randrange(-300, 300)]) for _ in range(in_local * n)]
    x += [0] * (n * cfg.act_depth - len(x))
    want_out, want_layers, _ = model_run(cfg, program, x)
    dut = EIE(cfg, pe_class=StandInPE)
    p = dut.pipeline
    pre, post = p["PRE"], p["DRAIN"] + p["POST"]
    assert p == {"START": 0, "PRE": 2, "DRAIN": 1, "POST": 1}

    async def tb(ctx):
        host = HostModel(ctx, dut, rng, idle=0.3)
        assert await host.read(host_address(Region.REGS, Reg.CONFIG_ID)) == cfg.config_id
        assert await host.read(host_address(Region.REGS, Reg.N_PES)) == n
        for t, d in enumerate(program):
            word = d.encode(cfg)
            if cfg.descriptor_bits > 64:
                await host.write(host_address(Region.REGS, Reg.WDATA_HIGH), word >> 64)
            await host.write(host_address(Region.PROGRAM, t), word & (2**64 - 1))
        for _run in range(2):
            for j in range(in_local * n):
                await host.write(host_address(Region.PE, j // n, pe=j % n, sel=MemSel.ACT0),
                                 x[j])
            await host.write(host_address(Region.REGS, Reg.CTRL_STATUS), 1)
            await ctx.tick()
            assert ctx.get(dut.busy)
            assert await host.read(host_address(Region.REGS, Reg.CTRL_STATUS)) == 1
            # memory writes while busy are ignored: this would end the program early
            await host.write(host_address(Region.PROGRAM, len(program) - 1), 0)
            await host.write(host_address(Region.REGS, Reg.CTRL_STATUS), 1)  # no restart
            for _ in range(20_000):
                if ctx.get(dut.done):
                    break
                await ctx.tick()
            else:
                raise AssertionError("done never rose")
            status = await host.read(host_address(Region.REGS, Reg.CTRL_STATUS))
            assert status == 2
            out_bank = len(layers) % 2
            sel = MemSel.ACT1 if out_bank else MemSel.ACT0
            got = []
            for j in range(program[-1].out_local * n):
                word = await host.read(host_address(Region.PE, j // n, pe=j % n, sel=sel))
                got.append(word - 2**64 if word >= 2**63 else word)
            assert got == want_out[:len(got)]
            per_layer = [await host.read(host_address(Region.REGS, Reg.LAYER_CYCLES + k))
                         for k in range(len(layers))]
            overhead = [(pre + post) * t for _, t in layers]
            assert per_layer == [c + o for c, o in zip(want_layers, overhead, strict=True)]
            total = await host.read(host_address(Region.REGS, Reg.TOTAL_CYCLES))
            assert total == sum(per_layer)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()


def test_real_pe_against_golden():
    """Top + real PE on Amaranth's simulator: one small image, bit and cycle exact."""

    cfg = small_config(n_pes=2, queue_depth=2, act_depth=12, acc_depth=6, spmat_depth=64,
                       ptr_depth=32, bias_depth=32)
    rng = np.random.default_rng(4)
    layers = []
    for k, (n_out, n_in) in enumerate([(15, 9), (7, 15)]):
        idx = rng.integers(1, 16, (n_out, n_in)) * (rng.random((n_out, n_in)) < 0.4)
        layers.append(QuantLayer(f"fc{k}", idx.astype(np.uint8),
                                 np.concatenate([[0.0], rng.normal(0, 0.5, 15)]),
                                 rng.normal(size=n_out) if k == 0 else None, relu=k == 0))
    image = pack(layers, cfg)
    q = (rng.integers(-400, 400, 9) * (rng.random(9) < 0.6)).astype(np.int64)
    want = golden.run(image, q[None, :]).q[0].tolist()
    want_cycles = cycle_model.cycles(image, q)
    dut = EIE(cfg)
    n = cfg.n_pes

    async def tb(ctx):
        host = HostModel(ctx, dut)
        for p in range(n):
            for name, sel in (("spmat", MemSel.SPMAT), ("ptr_even", MemSel.PTR_EVEN),
                              ("ptr_odd", MemSel.PTR_ODD), ("bias", MemSel.BIAS)):
                words = getattr(image, name)[p]
                for a in np.flatnonzero(words):
                    await host.write(host_address(Region.PE, int(a), pe=p, sel=sel),
                                     int(words[a]))
        for a in np.flatnonzero(image.codebook):
            await host.write(host_address(Region.CODEBOOK, int(a)), int(image.codebook[a]))
        for t, d in enumerate(image.program):
            await host.write(host_address(Region.PROGRAM, t), d.encode(cfg))
        for j in range(image.program[0].in_local * n):
            value = int(q[j]) if j < len(q) else 0
            await host.write(host_address(Region.PE, j // n, pe=j % n, sel=MemSel.ACT0), value)
        await host.write(host_address(Region.REGS, Reg.CTRL_STATUS), 1)
        for _ in range(5000):
            if ctx.get(dut.done):
                break
            await ctx.tick()
        else:
            raise AssertionError("done never rose")
        sel = MemSel.ACT1 if image.output_bank else MemSel.ACT0
        got = []
        for i in range(image.n_out):
            word = await host.read(host_address(Region.PE, i // n, pe=i % n, sel=sel))
            got.append(word - 2**64 if word >= 2**63 else word)
        assert got == want and any(want), (got, want)
        assert await host.read(host_address(Region.REGS, Reg.TOTAL_CYCLES)) == \
            want_cycles.total
        per_layer = [await host.read(host_address(Region.REGS, Reg.LAYER_CYCLES + k))
                     for k in range(len(layers))]
        assert per_layer == [layer.cycles for layer in want_cycles.layers]

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(tb)
    sim.run()

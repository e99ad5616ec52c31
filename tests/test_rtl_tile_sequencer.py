# amaranth: UnusedElaboratable=no
"""TileSequencer: parameter checks, then a program walked against an emulated PE array
(scan of ``in_local`` rows, PEs idle ``idle_delay`` cycles after a chosen span), checked
phase by phase and against the tile formula of docs/architecture.md ("Total cycles")."""

import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import memory
from amaranth.sim import Simulator

from contract.config import EIEConfig
from contract.image import Descriptor
from rtl.tile_sequencer import TileSequencer, pipeline_constants

CONFIG = EIEConfig(n_pes=2, act_depth=16, acc_depth=6, max_layers=4, max_tiles=8)


def test_init():
    dut = TileSequencer(config=CONFIG, idle_delay=4, writeback_latency=3)
    assert dut.config is CONFIG and dut.idle_delay == 4 and dut.writeback_latency == 3
    assert dut.pipeline == {"START": 0, "PRE": 2, "DRAIN": 5, "POST": 1}
    assert dut.post_cycles == 1
    assert pipeline_constants(idle_delay=0, writeback_latency=6) == {
        "START": 0, "PRE": 2, "DRAIN": 1, "POST": 4}
    assert len(dut.pc) == 3 and len(dut.descriptor.as_value()) == CONFIG.descriptor_bits


def test_wrong_parameters():
    with pytest.raises(TypeError, match=r"^Config must be an EIEConfig, not None$"):
        TileSequencer(config=None, idle_delay=4, writeback_latency=3)
    with pytest.raises(TypeError, match=r"^Idle delay must be a non-negative integer, "
                                        r"not -1$"):
        TileSequencer(config=CONFIG, idle_delay=-1, writeback_latency=3)
    with pytest.raises(TypeError, match=r"^Write-back latency must be a positive integer, "
                                        r"not 0$"):
        TileSequencer(config=CONFIG, idle_delay=4, writeback_latency=0)


def make_program(rng):
    """Three layers: 2, 1 and 2 tiles."""
    program = []
    for layer, tiles in enumerate((2, 1, 2)):
        for t in range(tiles):
            program.append(Descriptor(
                in_local=rng.randrange(1, CONFIG.act_depth + 1),
                out_local=rng.randrange(1, CONFIG.acc_depth + 1), out_base=rng.randrange(8),
                ptr_base=rng.randrange(64), spmat_base=rng.randrange(64),
                bias_base=rng.randrange(64), slot=layer, shift=rng.randrange(64),
                relu=rng.random() < 0.5, bias_en=rng.random() < 0.5, swap=t == tiles - 1,
                last=layer == 2 and t == tiles - 1))
    return program


@pytest.mark.parametrize("idle_delay,writeback_latency", [(4, 3), (0, 1), (2, 6)])
def test_program_walk(idle_delay, writeback_latency):
    rng = random.Random(idle_delay)
    program = make_program(rng)
    # Compute span of each tile: at least the scan (one slot per row), sometimes longer.
    spans = [d.in_local + rng.choice([0, 0, rng.randrange(1, 9)]) for d in program]
    drain, post = idle_delay + 1, max(1, writeback_latency - 2)
    want_tiles = [2 + d.out_local + c + drain + d.out_local + post
                  for d, c in zip(program, spans, strict=True)]
    want_layers = [sum(want_tiles[:2]), want_tiles[2], sum(want_tiles[3:])]

    dut = TileSequencer(config=CONFIG, idle_delay=idle_delay,
                        writeback_latency=writeback_latency)
    m = Module()
    m.submodules.dut = dut
    m.submodules.program = program_memory = memory.Memory(
        shape=CONFIG.descriptor_bits, depth=CONFIG.max_tiles,
        init=[d.encode(CONFIG) for d in program])
    read = program_memory.read_port()
    m.d.comb += [read.addr.eq(dut.pc), dut.descriptor.eq(read.data)]
    tile_fields = [name for name, _ in dut.tile.shape()]

    async def testbench(ctx):
        ctx.set(dut.all_idle, 1)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        busy_cycles, tile, first_slot = 0, -1, None
        seen = {"preload": [], "wb": []}
        swaps = 0
        while ctx.get(dut.busy):
            cycle = busy_cycles
            # The emulated array: the scan runs in_local cycles from the slot after
            # scan_start; the PEs are busy from then until span + idle_delay.
            if first_slot is not None:
                rel = cycle - first_slot
                d = program[tile]
                ctx.set(dut.scan_running, 0 <= rel < d.in_local)
                ctx.set(dut.all_idle, not 0 <= rel < spans[tile] + idle_delay)
            if ctx.get(dut.start) == 0 and cycle == 3:
                ctx.set(dut.start, 1)                      # ignored while busy
            elif cycle == 4:
                ctx.set(dut.start, 0)
            if ctx.get(dut.preload_en):
                if ctx.get(dut.row) == 0:
                    tile += 1
                    first_slot = None
                    d = program[tile]
                    assert ctx.get(dut.src_bank) == swaps % 2
                    assert ctx.get(dut.pc) == tile
                    assert {name: int(ctx.get(getattr(dut.tile, name)))
                            for name in tile_fields} == {
                        name: int(getattr(d, name)) for name in tile_fields}
                seen["preload"].append((tile, ctx.get(dut.row)))
            if ctx.get(dut.scan_start):
                assert ctx.get(dut.row) == program[tile].out_local - 1
                assert ctx.get(dut.scan_rows) == program[tile].in_local
                first_slot = cycle + 1
            if ctx.get(dut.wb_en):
                seen["wb"].append((tile, ctx.get(dut.row)))
                if ctx.get(dut.row) == program[tile].out_local - 1 and program[tile].swap:
                    swaps += 1
            assert not ctx.get(dut.done)
            await ctx.tick()
            busy_cycles += 1
        assert ctx.get(dut.done) == 1
        assert busy_cycles == sum(want_tiles) == ctx.get(dut.total_cycles)
        assert [ctx.get(dut.layer_cycles[k]) for k in range(3)] == want_layers
        rows = [(t, r) for t, d in enumerate(program) for r in range(d.out_local)]
        assert seen == {"preload": rows, "wb": rows}
        # done stays until the next start, which clears the counters and runs again.
        for _ in range(3):
            await ctx.tick()
        assert ctx.get(dut.done) == 1 and ctx.get(dut.busy) == 0
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        assert ctx.get(dut.done) == 0 and ctx.get(dut.busy) == 1
        assert ctx.get(dut.total_cycles) == 0 and ctx.get(dut.src_bank) == 0

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()

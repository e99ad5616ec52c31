"""SpmatRead: parameter checks, then streaming across word boundaries, empty columns,
back-to-back columns from any offset (no bubble), the ready (next column) timing and the
SRAM read count."""

import random

import pytest
from amaranth.sim import Simulator

from contract.config import EIEConfig
from rtl.spmat_read import SpmatRead

CONFIG = EIEConfig(spmat_depth=64)
EPW = CONFIG.entries_per_word


def test_init():
    dut = SpmatRead(config=CONFIG, init=[1, 2, 3])
    dut._MustUse__silence = True
    assert dut.config is CONFIG
    with pytest.raises(AttributeError):
        dut.config = CONFIG


def test_wrong_parameters():
    with pytest.raises(TypeError, match=r"^Config must be an EIEConfig, not 'x'$"):
        SpmatRead(config="x")
    with pytest.raises(ValueError, match=r"^Initial contents of the sparse-matrix memory have "
                                         r"65 rows, more than its depth 64$"):
        SpmatRead(config=CONFIG, init=[0] * 65)


def make_memory(rng, words):
    """Random entries; returns (entries, words) with entry e at bits 8*(e%8) of word e//8."""
    entries = [(rng.randrange(16), rng.randrange(16)) for _ in range(words * EPW)]
    memory = []
    for w in range(words):
        word = 0
        for k in range(EPW):
            v, z = entries[w * EPW + k]
            word |= (v | z << 4) << (8 * k)
        memory.append(word)
    return entries, memory


def words_touched(start, length):
    return 0 if length == 0 else (start + length - 1) // EPW - start // EPW + 1


def window_reads(columns):
    """Word reads of a reader that keeps word w in register w % 2 and reads a word only
    when that register does not already hold it."""
    held, reads = [None, None], 0
    for start, length, _ in columns:
        if length:
            for word in range(start // EPW, (start + length - 1) // EPW + 1):
                if held[word % 2] != word:
                    held[word % 2] = word
                    reads += 1
    return reads


def run_columns(columns, gaps, entries, memory):
    """Issue columns as early as ready allows, plus a gap (next command max(L, 1) + gap
    cycles later; the PE never issues L = 0 but the reader takes and ignores it); check
    every output cycle and ``i.ready`` and return (cycles with output, SRAM word reads)."""
    dut = SpmatRead(config=CONFIG, init=memory)
    schedule, expected, not_ready, t = {}, {}, set(), 2
    for (start, length, act), gap in zip(columns, gaps, strict=True):
        schedule[t] = (start, length, act)
        for k in range(length):
            v, z = entries[start + k]
            expected[t + 1 + k] = (v, z, int(k == 0), act)
        not_ready.update(range(t + 1, t + length))      # ready again on the last entry
        t += max(length, 1) + gap
    end = t + 3
    counts = {"out": 0, "reads": 0}

    async def testbench(ctx):
        even_read, odd_read = dut._read_ports
        for cycle in range(end):
            if cycle in schedule:
                start, length, act = schedule[cycle]
                ctx.set(dut.i.payload, {"start": start, "length": length, "act": act})
                ctx.set(dut.i.valid, 1)
            else:
                ctx.set(dut.i.valid, 0)
            assert ctx.get(dut.i.ready) == (cycle not in not_ready), cycle
            if cycle in expected:
                assert ctx.get(dut.o.valid) == 1, cycle
                out = ctx.get(dut.o.payload)
                assert (out.v, out.z, out.first, out.act) == expected[cycle], cycle
                counts["out"] += 1
            else:
                assert ctx.get(dut.o.valid) == 0, cycle
            counts["reads"] += ctx.get(even_read.en) + ctx.get(odd_read.en)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return counts


def test_word_boundaries_and_read_count():
    rng = random.Random(2)
    entries, memory = make_memory(rng, 64)
    # (offset-in-word, length) pairs around word boundaries, including whole words.
    shapes = [(0, 8), (0, 16), (7, 1), (7, 2), (3, 5), (3, 6), (1, 23), (0, 1), (5, 40),
              (6, 10), (0, 9), (2, 0)]
    columns, word = [], 1
    for offset, length in shapes:
        columns.append((word * EPW + offset, length, rng.randrange(-2**15, 2**15)))
        word += 5
    counts = run_columns(columns, [0] * len(columns), entries, memory)
    assert counts["out"] == sum(length for _, length in shapes)
    assert counts["reads"] == window_reads(columns)
    # Only the long column ending in word 46 shares a word with the next one.
    assert counts["reads"] == sum(words_touched(s, n) for s, n, _ in columns) - 1
    # Steady state: a 40-entry column from offset 5 touches 6 words -> 6 reads, not 40.
    assert words_touched(8 * 50 + 5, 40) == 6


@pytest.mark.parametrize("seed", [3, 4])
def test_back_to_back_random(seed):
    rng = random.Random(seed)
    entries, memory = make_memory(rng, 64)
    columns, gaps = [], []
    for _ in range(40):
        length = rng.choice([0, 0, 1, 1, 2, 3, 7, 8, 9, 15, 16, 17, 30])
        start = rng.randrange(0, 64 * EPW - length)
        columns.append((start, length, rng.randrange(-2**15, 2**15)))
        gaps.append(0 if rng.random() < 0.7 else rng.randrange(1, 4))
    counts = run_columns(columns, gaps, entries, memory)
    assert counts["out"] == sum(length for _, length, _ in columns)
    assert counts["reads"] == window_reads(columns)
    assert counts["reads"] <= sum(words_touched(s, n) for s, n, _ in columns)


def test_consecutive_columns_share_words():
    # Columns following each other in memory, as the packer lays them out (the common case).
    rng = random.Random(5)
    entries, memory = make_memory(rng, 64)
    columns, start = [], 3
    for length in [5, 0, 0, 11, 1, 1, 0, 8, 24, 2, 0, 6]:
        columns.append((start, length, rng.randrange(-2**15, 2**15)))
        start += length
    counts = run_columns(columns, [0] * len(columns), entries, memory)
    assert counts["out"] == sum(length for _, length, _ in columns)
    # One read per word of the whole run, however short the columns are.
    assert counts["reads"] == words_touched(3, start - 3) == 8


def test_host_write_empties_window():
    rng = random.Random(6)
    entries, memory = make_memory(rng, 64)
    dut = SpmatRead(config=CONFIG, init=memory)

    async def stream(ctx, start, length):
        ctx.set(dut.i.payload, {"start": start, "length": length, "act": 1})
        ctx.set(dut.i.valid, 1)
        await ctx.tick()
        ctx.set(dut.i.valid, 0)
        got = []
        for _ in range(length):
            out = ctx.get(dut.o.payload)
            got.append((out.v, out.z))
            await ctx.tick()
        return got

    async def testbench(ctx):
        assert await stream(ctx, 8 * 10 + 2, 4) == entries[82:86]
        # Rewrite word 10 (held in the window) through the host port, then read it again.
        ctx.set(dut.host.en, 1)
        ctx.set(dut.host.addr, 10)
        ctx.set(dut.host.data, 0x0123456789abcdef)
        await ctx.tick()
        ctx.set(dut.host.en, 0)
        expected = [((0x0123456789abcdef >> (8 * k)) & 15, (0x0123456789abcdef >> (8 * k + 4))
                     & 15) for k in range(2, 6)]
        assert await stream(ctx, 8 * 10 + 2, 4) == expected

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


def test_command_waits_for_ready():
    # A command held valid while a column streams is taken on that column's last entry.
    rng = random.Random(7)
    entries, memory = make_memory(rng, 64)
    dut = SpmatRead(config=CONFIG, init=memory)

    async def testbench(ctx):
        ctx.set(dut.i.payload, {"start": 20, "length": 5, "act": 3})
        ctx.set(dut.i.valid, 1)
        assert ctx.get(dut.i.ready) == 1
        await ctx.tick()
        ctx.set(dut.i.payload, {"start": 90, "length": 2, "act": -4})   # held from here
        got, taken = [], []
        for cycle in range(1, 10):
            if ctx.get(dut.i.valid) and ctx.get(dut.i.ready):
                taken.append(cycle)
            if ctx.get(dut.o.valid):
                out = ctx.get(dut.o.payload)
                got.append((cycle, out.v, out.z, out.first, out.act))
            await ctx.tick()
            if taken:
                ctx.set(dut.i.valid, 0)
        assert taken == [5]
        want = [(1 + k, *entries[20 + k], int(k == 0), 3) for k in range(5)]
        want += [(6 + k, *entries[90 + k], int(k == 0), -4) for k in range(2)]
        assert got == want

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()

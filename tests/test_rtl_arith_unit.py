"""ArithUnit: parameter checks, then the write-back rule on edge values, preload, the
read-modify-write bypass (same row back to back, r / r+1 / r) and random streams with
accumulator wrap-around, all against a small independent Python model."""

import random

import pytest
from amaranth.sim import Simulator

from contract.config import EIEConfig
from rtl.arith_unit import ArithUnit

CONFIG = EIEConfig(acc_depth=16, bias_depth=64, max_layers=4)
ACC_MOD = 1 << CONFIG.acc_bits


def test_init():
    dut = ArithUnit(config=CONFIG, codebook_init=[0, 1, -1], bias_init=[5])
    dut._MustUse__silence = True
    assert dut.config is CONFIG
    with pytest.raises(AttributeError):
        dut.config = CONFIG


def test_wrong_parameters():
    with pytest.raises(TypeError, match=r"^Config must be an EIEConfig, not None$"):
        ArithUnit(config=None)
    with pytest.raises(ValueError, match=r"^Initial contents of the codebook have 65 rows, "
                                         r"more than its depth 64$"):
        ArithUnit(config=CONFIG, codebook_init=[0] * 65)
    with pytest.raises(TypeError, match=r"^Initial contents of the bias memory must be "
                                        r"integers, not True$"):
        ArithUnit(config=CONFIG, bias_init=[True])


# ---- independent reference of docs/numerics.md ------------------------------------------
def to_signed(value, bits):
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def write_back(acc, shift, relu, act_bits=CONFIG.act_bits):
    """Shift with round half up (exact integers), saturate, ReLU."""
    t = (acc + (1 << (shift - 1))) >> shift if shift > 0 else acc
    t = max(-(1 << (act_bits - 1)), min((1 << (act_bits - 1)) - 1, t))
    return max(t, 0) if relu else t


def test_reference_rule_examples():
    # Hand-checked values of the rule itself, so the reference is not just trusted.
    assert write_back(3, 1, False) == 2          # 1.5 -> 2 (half up)
    assert write_back(-3, 1, False) == -1        # -1.5 -> -1 (towards +inf)
    assert write_back(-5, 2, False) == -1        # -1.25 -> -1
    assert write_back(-6, 2, False) == -1        # -1.5 -> -1
    assert write_back(-7, 2, False) == -2        # -1.75 -> -2
    assert write_back(1 << 40, 8, False) == 32767
    assert write_back(-(1 << 40), 8, False) == -32768
    assert write_back(-(1 << 40), 8, True) == 0


def run(dut, testbench):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


def tile(**fields):
    base = {"ptr_base": 0, "spmat_base": 0, "bias_base": 0, "out_base": 0, "slot": 0,
            "shift": 0, "relu": 0, "bias_en": 1}
    base.update(fields)
    return base


async def preload(ctx, dut, rows):
    ctx.set(dut.preload_en, 1)
    for row in rows:
        ctx.set(dut.preload_row, row)
        await ctx.tick()
    ctx.set(dut.preload_en, 0)


async def write_back_rows(ctx, dut, rows):
    """Request write-back of rows back to back; collect wb outputs (2-cycle latency)."""
    out, requests = {}, list(rows)
    for cycle in range(len(requests) + 2):
        if cycle < len(requests):
            ctx.set(dut.wb_en, 1)
            ctx.set(dut.wb_row, requests[cycle])
        else:
            ctx.set(dut.wb_en, 0)
        if cycle >= 2:
            assert ctx.get(dut.wb.valid) == 1
            payload = ctx.get(dut.wb.payload)
            assert payload.row == requests[cycle - 2]
            out[payload.row] = payload.value
        else:
            assert ctx.get(dut.wb.valid) == 0
        await ctx.tick()
    assert ctx.get(dut.wb.valid) == 0
    return out


EDGE_ACC = sorted({0, 1, -1, 2, -2, 127, 128, -128, -129, 255, 256, -256, -257, 32767, 32768,
                   -32768, -32769, 2**23 - 1, 2**23, -2**23, -2**23 - 1, 2**23 + 2**7,
                   2**23 - 2**7, -2**23 + 2**7, 2**30, -2**30, 2**31 - 1, -2**31,
                   2**31 - 2**15, -2**31 + 2**15, 2**31 - 2**15 - 1, 3 << 7, -(3 << 7),
                   (5 << 13) - 1, -(5 << 13), 12345678, -12345678, 2**16 + 2**15,
                   -(2**16 + 2**15), 2**24 - 1})


@pytest.mark.parametrize("shift", [0, 1, 7, 8, 9, 15, 16, 23, 30, 31, 32, 33, 40, 63])
def test_write_back_rule_edges(shift):
    values = EDGE_ACC[:CONFIG.acc_depth * 3]
    dut = ArithUnit(config=CONFIG, bias_init=values)

    async def testbench(ctx):
        for relu in (0, 1):
            for base in range(0, len(values), CONFIG.acc_depth):
                chunk = values[base:base + CONFIG.acc_depth]
                ctx.set(dut.tile, tile(bias_base=base, shift=shift, relu=relu))
                await preload(ctx, dut, range(len(chunk)))
                got = await write_back_rows(ctx, dut, range(len(chunk)))
                for row, acc in enumerate(chunk):
                    assert got[row] == write_back(acc, shift, relu), (acc, shift, relu)

    run(dut, testbench)


def test_preload_latency_and_bias_enable():
    dut = ArithUnit(config=CONFIG, bias_init=list(range(100, 164)))

    async def testbench(ctx):
        ctx.set(dut.tile, tile(bias_base=7))
        # Preload row 3 in cycle t, write it back from t + 2: the new value is there.
        ctx.set(dut.preload_en, 1)
        ctx.set(dut.preload_row, 3)
        await ctx.tick()
        ctx.set(dut.preload_en, 0)
        assert ctx.get(dut.busy) == 1
        await ctx.tick()
        assert (await write_back_rows(ctx, dut, [3])) == {3: 110}
        ctx.set(dut.tile, tile(bias_base=7, bias_en=0))
        await preload(ctx, dut, [3, 4])
        assert (await write_back_rows(ctx, dut, [3, 4])) == {3: 0, 4: 0}

    run(dut, testbench)


def reference_accumulate(stream, codebook, slot, initial):
    acc = list(initial)
    row = -1
    for entry in stream:
        if entry is None:
            continue
        v, z, first, act = entry
        row = (-1 if first else row) + z + 1
        acc[row] = to_signed(acc[row] + codebook[slot * 16 + v] * act, CONFIG.acc_bits)
    return acc


def run_stream(stream, codebook, slot, shift, initial):
    """Preload ``initial`` (as bias), feed ``stream`` (None = idle cycle), write back with
    ``shift``; compare with the reference."""
    dut = ArithUnit(config=CONFIG, codebook_init=codebook, bias_init=initial)
    expected = reference_accumulate(stream, codebook, slot, initial)

    async def testbench(ctx):
        ctx.set(dut.tile, tile(slot=slot, shift=shift))
        await preload(ctx, dut, range(CONFIG.acc_depth))
        for entry in stream:
            if entry is None:
                ctx.set(dut.i.valid, 0)
            else:
                v, z, first, act = entry
                ctx.set(dut.i.valid, 1)
                ctx.set(dut.i.payload, {"v": v, "z": z, "first": first, "act": act})
            await ctx.tick()
        ctx.set(dut.i.valid, 0)
        for _ in range(3):
            await ctx.tick()
        assert ctx.get(dut.busy) == 0
        got = await write_back_rows(ctx, dut, range(CONFIG.acc_depth))
        for row in range(CONFIG.acc_depth):
            assert got[row] == write_back(expected[row], shift, False), row

    run(dut, testbench)


def small_codebook(rng):
    codebook = [rng.randrange(-40, 40) for _ in range(CONFIG.max_layers * 16)]
    for slot in range(CONFIG.max_layers):
        codebook[slot * 16] = 0
    return codebook


def test_bypass_same_row_back_to_back():
    rng = random.Random(7)
    codebook = small_codebook(rng)
    # Five single-entry columns all hitting row 5 in consecutive cycles, then row 0 twice.
    stream = [(rng.randrange(1, 16), 5, 1, rng.randrange(-50, 50)) for _ in range(5)]
    stream += [(3, 0, 1, 7), (4, 0, 1, -9)]
    run_stream(stream, codebook, slot=1, shift=0, initial=[10 * r for r in range(16)])


def test_bypass_r_r_plus_1_r():
    rng = random.Random(8)
    codebook = small_codebook(rng)
    stream = [
        (2, 4, 1, 11), (5, 0, 0, -13),      # column: rows 4, 5
        (7, 4, 1, 17),                      # next column starts at row 4 again
        (9, 5, 1, 3), (1, 0, 1, 5),         # row 5, then row 0
        (6, 5, 1, -21),                     # row 5 (distance 2)
        None,
        (6, 5, 1, 19), None, (8, 5, 1, 23), (8, 5, 1, 29),
    ]
    run_stream(stream, codebook, slot=3, shift=0, initial=[0] * 16)


@pytest.mark.parametrize("seed", [10, 11])
def test_random_stream_with_wrap(seed):
    rng = random.Random(seed)
    codebook = [rng.randrange(-2**15, 2**15) for _ in range(CONFIG.max_layers * 16)]
    for slot in range(CONFIG.max_layers):
        codebook[slot * 16] = 0
    stream = []
    for _ in range(60):
        rows = sorted(rng.sample(range(16), rng.choice([1, 1, 2, 3, 5, 16])))
        previous = -1
        for k, row in enumerate(rows):
            stream.append((rng.randrange(16), row - previous - 1, int(k == 0),
                           rng.choice([-2**15, 2**15 - 1, rng.randrange(-2**15, 2**15)])))
            previous = row
        if rng.random() < 0.2:
            stream.extend([None] * rng.randrange(1, 3))
    initial = [rng.randrange(-2**31, 2**31) for _ in range(16)]
    wrapped = reference_accumulate(stream, codebook, 2, initial)
    exact, row = list(initial), -1
    for entry in stream:
        if entry is not None:
            row = (-1 if entry[2] else row) + entry[1] + 1
            exact[row] += codebook[32 + entry[0]] * entry[3]
    assert wrapped != exact      # some accumulator wraps modulo 2**acc_bits
    run_stream(stream, codebook, slot=2, shift=16, initial=initial)

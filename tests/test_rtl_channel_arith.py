"""ChannelArith: parameter checks and ports, then cycle programs (random entry streams with
padding, same-row runs and gaps, preloads with bias on and off, channel-serial write-backs
of every (row, channel) in random order, back to back, with random shift and ReLU) checked
cycle for cycle against an independent NumPy model of docs/numerics.md and of the timing
contract, and for one channel against ArithUnit."""

import random

import numpy as np
import pytest
from amaranth.hdl import Module, signed, unsigned
from amaranth.lib import data
from amaranth.sim import Simulator

from contract.config import EIEConfig
from rtl.arith_unit import ArithUnit
from rtl.channel_arith import ChannelArith

SMALL = EIEConfig(acc_depth=16, bias_depth=64, max_layers=4)
NARROW = EIEConfig(weight_bits=3, index_bits=3, acc_depth=20, bias_depth=48, max_layers=3,
                   act_bits=11, act_frac=5, codebook_bits=9, acc_bits=23)
CONFIGS = {"default": EIEConfig(), "narrow": NARROW}


def test_init():
    dut = ChannelArith(config=SMALL, channels=3, codebook_init=[0, 1, -1], bias_init=[5])
    dut._MustUse__silence = True
    assert dut.config is SMALL and dut.channels == 3
    with pytest.raises(AttributeError):
        dut.channels = 2
    entry, wb = dut.i.payload.shape(), dut.wb.payload.shape()
    assert [name for name, _ in entry] == ["v", "z", "first", "acts"]
    assert (entry["v"].shape, entry["z"].shape, entry["first"].shape) == (
        unsigned(4), unsigned(4), unsigned(1))
    assert entry["acts"].shape == data.ArrayLayout(signed(16), 3)
    assert [name for name, _ in wb] == ["row", "channel", "value"]
    assert (wb["row"].shape, wb["channel"].shape, wb["value"].shape) == (
        unsigned(4), unsigned(2), signed(16))
    assert dut.wb_channel.shape() == unsigned(2)
    assert dut.i.signature.always_ready and dut.wb.signature.always_ready
    for channels, bits in ((1, 1), (2, 1), (4, 2), (5, 3), (32, 5)):
        other = ChannelArith(config=SMALL, channels=channels)
        other._MustUse__silence = True
        assert other.wb.payload.shape()["channel"].shape == unsigned(bits)
        assert other.wb_channel.shape() == unsigned(bits if channels > 1 else 0)
    unit = ArithUnit(config=SMALL)
    unit._MustUse__silence = True
    for name in ("tile", "preload_en", "preload_row", "wb_en", "wb_row", "busy",
                 "host_codebook", "host_bias"):
        assert dut.signature.members[name] == unit.signature.members[name], name


def test_wrong_parameters():
    with pytest.raises(TypeError, match=r"^Config must be an EIEConfig, not None$"):
        ChannelArith(config=None, channels=1)
    for channels in (0, -1, True, 2.0, None):
        with pytest.raises(TypeError, match=rf"^Channel count must be a positive integer, "
                                            rf"not {channels!r}$"):
            ChannelArith(config=SMALL, channels=channels)
    with pytest.raises(ValueError, match=r"^Initial contents of the codebook have 65 rows, "
                                         r"more than its depth 64$"):
        ChannelArith(config=SMALL, channels=2, codebook_init=[0] * 65)
    with pytest.raises(TypeError, match=r"^Initial contents of the bias memory must be "
                                        r"integers, not True$"):
        ChannelArith(config=SMALL, channels=2, bias_init=[True])


# ---- independent model of docs/numerics.md and of the timing contract ------------------
def wrap(values, bits):
    """Two's complement wrap of int64 values to signed ``bits``."""
    half = np.int64(1) << (bits - 1)
    return ((values + half) & ((half << 1) - 1)) - half


def write_back(acc, shift, relu, act_bits):
    """Shift with round half up, saturate, ReLU (int64 is exact: acc_bits <= 32 here)."""
    t = (acc + (np.int64(1) << (shift - 1))) >> shift if shift > 0 else acc.copy()
    t = np.clip(t, -(1 << (act_bits - 1)), (1 << (act_bits - 1)) - 1)
    return np.maximum(t, 0) if relu else t


def test_reference_rule_examples():
    acc = np.array([3, -3, -5, -6, -7, 1 << 30, -(1 << 30), 12345], dtype=np.int64)
    assert write_back(acc, 1, False, 16).tolist()[:2] == [2, -1]        # half up
    assert write_back(acc, 2, False, 16).tolist()[2:5] == [-1, -1, -2]
    assert write_back(acc, 8, False, 16).tolist()[5:7] == [32767, -32768]
    assert write_back(acc, 8, True, 16).tolist()[6] == 0
    assert write_back(acc, 63, False, 16).tolist() == [0] * 8
    assert wrap(np.array([1 << 31, -(1 << 31) - 1], dtype=np.int64), 32).tolist() == [
        -(1 << 31), (1 << 31) - 1]


def model(program, config, channels, codebook, bias):
    """Expected ``(wb.valid, (wb.row, wb.channel, wb.value), busy)`` per cycle of
    ``program``, and how many accumulator updates wrapped.

    An entry in ``t`` adds ``C[v] * a[c]`` at the end of ``t + 3`` (v = 0: nothing), a
    preload in ``t`` writes at the end of ``t + 1``, a write-back of ``(row, c)`` in ``t``
    reads ``acc[c][row]`` as it is at the start of ``t`` and shows it in ``t + 2``."""
    acc = np.zeros((channels, config.acc_depth), dtype=np.int64)
    writes, outputs, row, wraps = {}, {}, -1, 0
    cycles = len(program)
    for t, cycle in enumerate(program):
        tile = cycle["tile"]
        if cycle["wb"] is not None:
            wb_row, wb_channel = cycle["wb"]
            value = write_back(acc[wb_channel, wb_row], tile["shift"], tile["relu"],
                               config.act_bits)
            outputs[t + 2] = (wb_row, wb_channel, int(value))
        if cycle["entry"] is not None:
            v, z, first, acts = cycle["entry"]
            row = (-1 if first else row) + z + 1
            assert 0 <= row < config.acc_depth
            if v:
                product = codebook[tile["slot"] * config.codebook_size + v] * np.array(
                    acts, dtype=np.int64)
                writes.setdefault(t + 3, []).append(("add", row, product))
        if cycle["preload"] is not None:
            value = bias[tile["bias_base"] + cycle["preload"]] if tile["bias_en"] else 0
            writes.setdefault(t + 1, []).append(("set", cycle["preload"], value))
        assert len(writes.get(t, [])) <= 1         # the program never overlaps writes
        for kind, target, value in writes.pop(t, []):
            exact = (acc[:, target] + value if kind == "add" else
                     np.full(channels, value, dtype=np.int64))
            acc[:, target] = wrap(exact, config.acc_bits)
            wraps += int((acc[:, target] != exact).sum())
    assert not writes and all(t < cycles for t in outputs)
    def presented(t, k, key, writing=False):
        """Whether cycle ``t - k`` presented ``key`` (an entry with v != 0 if writing)."""
        if t < k or program[t - k][key] is None:
            return False
        return not writing or program[t - k]["entry"][0] != 0

    expected = []
    for t in range(cycles):
        # busy: an entry in t+1 (t+1..t+3 if it writes), a preload in t+1, a wb in t+1..t+2
        busy = (presented(t, 1, "entry") or presented(t, 2, "entry", True)
                or presented(t, 3, "entry", True) or presented(t, 1, "preload")
                or presented(t, 1, "wb") or presented(t, 2, "wb"))
        row_values = outputs.get(t)
        expected.append((row_values is not None, row_values, int(busy)))
    return expected, wraps


# ---- random cycle programs --------------------------------------------------------------
def idle(tile):
    return {"tile": tile, "entry": None, "preload": None, "wb": None}


def column_entries(rng, config, channels, rows, bound):
    """Entries of one column hitting ``rows`` (increasing), with padding for long gaps
    and random v = 0 entries; activations random per channel."""
    entries, previous = [], -1
    for row in rows:
        while row - previous - 1 > config.max_run:
            acts = [rng.randrange(-bound, bound) for _ in range(channels)]
            entries.append((0, config.max_run, int(not entries), acts))
            previous += config.max_run + 1
        v = 0 if rng.random() < 0.1 else rng.randrange(1, config.codebook_size)
        acts = [rng.choice([-bound, bound - 1, 0, rng.randrange(-bound, bound)])
                for _ in range(channels)]
        entries.append((v, row - previous - 1, int(not entries), acts))
        previous = row
    return entries


def random_program(rng, config, channels, rounds=6):
    program = []
    depth, bound = config.acc_depth, 1 << (config.act_bits - 1)
    for number in range(rounds):
        tile = {"ptr_base": 0, "spmat_base": 0, "out_base": 0,
                "bias_base": rng.randrange(config.bias_depth - depth + 1),
                "slot": rng.randrange(config.max_layers), "bias_en": int(number % 2 == 0 or
                                                                         rng.random() < .5),
                # Mostly shifts that keep sums of a few products inside act_bits.
                "shift": rng.choice([0, 1, config.max_shift, rng.randrange(config.max_shift + 1)]
                                    + [config.acc_bits - config.act_bits + k
                                       for k in (-1, 0, 1, 2)] * 2),
                "relu": rng.randrange(2)}
        preloads = list(range(depth)) if number == 0 else rng.sample(range(depth),
                                                                     rng.randrange(depth))
        program += [dict(idle(tile), preload=row) for row in preloads]
        program += [idle(tile) for _ in range(rng.choice([0, 0, 1, 2]))]
        for _ in range(rng.randrange(10, 25)):
            shape = rng.random()
            if shape < 0.3:         # a run of single-entry columns on one row (bypass)
                row = rng.randrange(depth)
                columns = [[row]] * rng.randrange(2, 6)
            elif shape < 0.4:       # r, r + 1 | r | ...
                row = rng.randrange(depth - 1)
                columns = [[row, row + 1], [row], [row + 1]]
            else:
                columns = [sorted(rng.sample(range(depth), rng.choice([1, 2, 3, depth])))]
            for rows in columns:
                for entry in column_entries(rng, config, channels, rows, bound):
                    program.append(dict(idle(tile), entry=entry))
            program += [idle(tile) for _ in range(rng.choice([0, 0, 0, 1, 2]))]
        program += [idle(tile) for _ in range(3 + rng.choice([0, 0, 1, 3]))]
        # Every (row, channel) once in random order, then a few repeats; mostly back to back.
        pairs = [(row, c) for row in range(depth) for c in range(channels)]
        requests = rng.sample(pairs, len(pairs)) + rng.choices(pairs, k=3)
        for request in requests:
            program.append(dict(idle(tile), wb=request))
            if rng.random() < 0.15:
                program.append(idle(tile))
        program += [idle(tile) for _ in range(3)]  # the tile changes only when all is idle
    return program + [idle(program[-1]["tile"]) for _ in range(4)]


def memories(rng, config):
    codebook_bound, acc_bound = 1 << (config.codebook_bits - 1), 1 << (config.acc_bits - 1)
    codebook = [rng.choice([-codebook_bound, codebook_bound - 1,
                            rng.randrange(-codebook_bound, codebook_bound)])
                for _ in range(config.max_layers * config.codebook_size)]
    bias = [rng.choice([-acc_bound, acc_bound - 1, rng.randrange(-acc_bound, acc_bound),
                        rng.randrange(-999, 999)]) for _ in range(config.bias_depth)]
    return codebook, bias      # C[slot * 2**weight_bits] != 0 too: padding must not write


def simulate(program, config, channels, codebook, bias, reference_unit=False):
    """Drive ``program`` into ChannelArith (and, with ``reference_unit``, an ArithUnit fed
    channel 0); return each cycle's outputs of both."""
    dut = ChannelArith(config=config, channels=channels, codebook_init=codebook,
                       bias_init=bias)
    unit = ArithUnit(config=config, codebook_init=codebook, bias_init=bias)
    top = Module()
    top.submodules.dut = dut
    if reference_unit:
        top.submodules.unit = unit
    else:
        unit._MustUse__silence = True
    got, got_unit = [], []

    def outputs(ctx, block):
        return (ctx.get(block.wb.valid), ctx.get(block.wb.payload.row),
                ctx.get(block.wb.payload.value), ctx.get(block.busy))

    async def testbench(ctx):
        for cycle in program:
            for block in (dut, unit) if reference_unit else (dut,):
                ctx.set(block.tile, cycle["tile"])
                ctx.set(block.preload_en, cycle["preload"] is not None)
                ctx.set(block.preload_row, cycle["preload"] or 0)
                ctx.set(block.wb_en, cycle["wb"] is not None)
                ctx.set(block.wb_row, cycle["wb"][0] if cycle["wb"] else 0)
                ctx.set(block.i.valid, cycle["entry"] is not None)
                if cycle["entry"] is not None:
                    v, z, first, acts = cycle["entry"]
                    payload = {"v": v, "z": z, "first": first}
                    payload.update({"acts": acts} if block is dut else {"act": acts[0]})
                    ctx.set(block.i.payload, payload)
            if channels > 1:
                ctx.set(dut.wb_channel, cycle["wb"][1] if cycle["wb"] else 0)
            got.append((outputs(ctx, dut), ctx.get(dut.wb.payload.channel)))
            if reference_unit:
                got_unit.append(outputs(ctx, unit))
            await ctx.tick()

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return got, got_unit


def check(program, config, channels, codebook, bias, reference_unit):
    got, got_unit = simulate(program, config, channels, codebook, bias, reference_unit)
    expected, wraps = model(program, config, channels, codebook, bias)
    for t, (((valid, row, value, busy), channel), (want_valid, want, want_busy)) in \
            enumerate(zip(got, expected, strict=True)):
        assert (valid, busy) == (want_valid, want_busy), t
        if want_valid:
            assert (row, channel, value) == want, t
    if reference_unit:                  # every output in every cycle, valid or not
        assert [outputs for outputs, _ in got] == got_unit
    return wraps


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("channels", [1, 3])
def test_random_programs(name, channels):
    config = CONFIGS[name]
    rng = random.Random(f"{name}-{channels}")
    codebook, bias = memories(rng, config)
    program = random_program(rng, config, channels)
    assert sum(c["wb"] is not None for c in program) > 6 * config.acc_depth * channels
    wraps = check(program, config, channels, codebook, bias, reference_unit=channels == 1)
    assert wraps > 0                    # some accumulator wraps modulo 2**acc_bits


@pytest.mark.parametrize("channels", [1, 2, 3])
def test_exact_latencies(channels):
    """A preload in t is seen by a write-back in t + 2, not t + 1; an entry in t by a
    write-back in t + 4, not t + 3; a write-back in t shows in t + 2 only, with the value
    of the channel it asked for, also when requests for other channels follow back to
    back."""
    config = SMALL
    codebook = [0, 3] + [0] * 62
    bias = [100 + k for k in range(64)]
    tile = {"ptr_base": 0, "spmat_base": 0, "out_base": 0, "bias_base": 5, "slot": 0,
            "bias_en": 1, "shift": 0, "relu": 0}
    last = channels - 1
    entry = (1, 7, 1, [11 * (c + 1) for c in range(channels)])
    program = [dict(idle(tile), preload=7), dict(idle(tile), wb=(7, last)),
               dict(idle(tile), wb=(7, 0)), dict(idle(tile), entry=entry), idle(tile),
               idle(tile), dict(idle(tile), wb=(7, last)), dict(idle(tile), wb=(7, last)),
               dict(idle(tile), wb=(6, 0))]
    program += [dict(idle(tile), wb=(7, c)) for c in reversed(range(channels))]
    program += [idle(tile)] * 3
    expected, _ = model(program, config, channels, codebook, bias)
    assert [e[0] for e in expected] == [0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 1] + [1] * channels + [0]
    assert [e[1] for e in expected if e[0]] == [
        (7, last, 0), (7, 0, 112), (7, last, 112), (7, last, 112 + 33 * channels),
        (6, 0, 0)] + [(7, c, 112 + 33 * (c + 1)) for c in reversed(range(channels))]
    assert [e[2] for e in expected] == [0, 1, 1, 1, 1, 1, 1, 1] + [1] * (3 + channels) + [0]
    check(program, config, channels, codebook, bias, reference_unit=channels == 1)

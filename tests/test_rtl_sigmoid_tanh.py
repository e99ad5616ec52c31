"""SigmoidTanh: parameter checks, then every input code of the default config against
``golden.lstm_model.table_lookup`` (tables from ``compiler.lstm_pack.make_tables``), and host
writes of random tables.

The exhaustive test drives all ``2**17`` codes of the default ``in_bits`` (``act_bits + 1``)
for each function, one per cycle, and checks every result in the cycle ``LATENCY`` after
its input; pysim runs it in about 25 s per function on a shared machine, under the 60 s
that would call for a smaller config.
"""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from compiler.lstm_pack import make_tables
from contract.lstm_config import ESEConfig
from golden.lstm_model import table_lookup
from rtl.common import HostWrite
from rtl.sigmoid_tanh import SigmoidTanh

CONFIG = ESEConfig()
SIGMOID, TANH = make_tables(CONFIG)


def test_init():
    dut = SigmoidTanh(config=CONFIG, sigmoid_init=SIGMOID, tanh_init=[1, 2])
    dut._MustUse__silence = True
    assert dut.config is CONFIG
    assert dut.in_bits == CONFIG.channel.act_bits + 1
    assert dut.host.signature == HostWrite.Signature(10, CONFIG.gate_bits).flip()
    assert SigmoidTanh.LATENCY == 2
    with pytest.raises(AttributeError):
        dut.config = CONFIG
    narrow = SigmoidTanh(config=CONFIG, in_bits=5)
    narrow._MustUse__silence = True
    assert narrow.in_bits == 5


def test_wrong_parameters():
    with pytest.raises(TypeError, match=r"^Config must be an ESEConfig, not None$"):
        SigmoidTanh(config=None)
    with pytest.raises(TypeError, match=r"^Input width must be a positive integer, not 0$"):
        SigmoidTanh(config=CONFIG, in_bits=0)
    with pytest.raises(TypeError, match=r"^Input width must be a positive integer, not True$"):
        SigmoidTanh(config=CONFIG, in_bits=True)
    with pytest.raises(ValueError, match=r"^Initial contents of the σ table have 258 rows, "
                                         r"more than its depth 257$"):
        SigmoidTanh(config=CONFIG, sigmoid_init=[0] * 258)
    with pytest.raises(ValueError, match=r"^Initial contents of the tanh table must fit "
                                         r"signed 16 bits, not 32768$"):
        SigmoidTanh(config=CONFIG, tanh_init=[1 << 15])
    with pytest.raises(TypeError, match=r"^Initial contents of the tanh table must be "
                                        r"integers, not 0.5$"):
        SigmoidTanh(config=CONFIG, tanh_init=[0.5])


def run_lookups(dut, inputs, writes=()):
    """Drive ``(u, func)`` pairs one per cycle (after the host ``writes``, one per cycle);
    return ``(y, saturated)`` per input, each read exactly ``LATENCY`` cycles after it and
    checking that ``o.valid`` is high only then."""
    out = []
    latency = SigmoidTanh.LATENCY

    async def testbench(ctx):
        for addr, value in writes:
            ctx.set(dut.host.en, 1)
            ctx.set(dut.host.addr, addr)
            ctx.set(dut.host.data, value)
            await ctx.tick()
        ctx.set(dut.host.en, 0)
        assert not ctx.get(dut.o.valid)
        for n in range(len(inputs) + latency):
            if n < len(inputs):
                ctx.set(dut.i.valid, 1)
                ctx.set(dut.i.payload.u, inputs[n][0])
                ctx.set(dut.i.payload.func, inputs[n][1])
            else:
                ctx.set(dut.i.valid, 0)
            await ctx.tick()
            # After this tick, the input of cycle n + 1 - latency is on o.
            if n + 1 >= latency:
                assert ctx.get(dut.o.valid) == (n + 1 - latency < len(inputs))
                if n + 1 - latency < len(inputs):
                    out.append((ctx.get(dut.o.payload.y), ctx.get(dut.o.payload.saturated)))
            else:
                assert not ctx.get(dut.o.valid)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return out


def expected(tables, inputs, config=CONFIG):
    u = np.array([x[0] for x in inputs], np.int64)
    func = np.array([x[1] for x in inputs])
    result = np.zeros((len(inputs), 2), np.int64)
    for f in (0, 1):
        y, s = table_lookup(np.asarray(tables[f], np.int64), u[func == f], config)
        result[func == f, 0], result[func == f, 1] = y, s
    return [tuple(map(int, r)) for r in result]


def test_reference_examples():
    # Hand-checked points of the rule, so the reference is not just trusted:
    # u = 0 is v = 2**14, s = 128, r = 0: T[128]; the top code clamps to s = 255, r = 127.
    assert expected((SIGMOID, TANH), [(0, 0), (0, 1)]) == [(8192, 0), (0, 0)]
    top = int(SIGMOID[255]) + ((int(SIGMOID[256] - SIGMOID[255]) * 127 + 64) >> 7)
    assert expected((SIGMOID, TANH), [((1 << 14) - 1, 0), (1 << 14, 0)]) == [(top, 0),
                                                                             (top, 1)]


@pytest.mark.parametrize("func", [0, 1], ids=["sigmoid", "tanh"])
def test_every_input_code(func):
    bits = CONFIG.channel.act_bits + 1
    dut = SigmoidTanh(config=CONFIG, sigmoid_init=SIGMOID, tanh_init=TANH)
    inputs = [(u, func) for u in range(-(1 << (bits - 1)), 1 << (bits - 1))]
    assert run_lookups(dut, inputs) == expected((SIGMOID, TANH), inputs)


def test_host_writes_random_tables():
    rng = random.Random(5)
    size, bits = CONFIG.table_size, CONFIG.gate_bits
    # Start from the real tables and overwrite every sample (both ends included) in a
    # random order with random full-range values, so no stale sample can pass.
    tables = [[rng.randrange(-(1 << (bits - 1)), 1 << (bits - 1)) for _ in range(size)]
              for _ in range(2)]
    order = [(f, s) for f in (0, 1) for s in range(size)]
    rng.shuffle(order)
    writes = [(f * size + s, tables[f][s] & ((1 << bits) - 1)) for f, s in order]
    writes.append((2 * size, 1234))         # past both tables: ignored
    dut = SigmoidTanh(config=CONFIG, sigmoid_init=SIGMOID, tanh_init=TANH)
    b = CONFIG.interpolation_bits
    half = 1 << (CONFIG.table_range_log2 + CONFIG.channel.act_frac)
    # Every segment at r = 0, r = 1 and r = 2**b - 1, both clamps, and random codes.
    codes = [-half + (s << b) + r for s in range(size - 1) for r in (0, 1, (1 << b) - 1)]
    codes += [-(1 << 16), (1 << 16) - 1, -half - 1, half]
    codes += [rng.randrange(-(1 << 16), 1 << 16) for _ in range(500)]
    inputs = [(u, rng.randrange(2)) for u in codes]
    assert run_lookups(dut, inputs, writes) == expected(tables, inputs)


def test_narrow_input_and_write_during_lookup():
    # An input narrower than the table range never clamps (act_bits 5 codes cover
    # [-16, 16) of the 2**15 offsets); a write in the cycle of a lookup is seen one cycle
    # later, not by that lookup.
    dut = SigmoidTanh(config=CONFIG, in_bits=5, sigmoid_init=SIGMOID, tanh_init=TANH)
    inputs = [(u, f) for f in (0, 1) for u in range(-16, 16)]
    assert run_lookups(dut, inputs) == expected((SIGMOID, TANH), inputs)

    dut = SigmoidTanh(config=CONFIG, sigmoid_init=SIGMOID, tanh_init=TANH)
    got = []

    async def testbench(ctx):
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.i.payload.u, 0)                 # s = 128, r = 0: reads T_tanh[128]
        ctx.set(dut.i.payload.func, 1)
        ctx.set(dut.host.en, 1)
        ctx.set(dut.host.addr, 257 + 128)
        ctx.set(dut.host.data, 777)
        await ctx.tick()
        ctx.set(dut.host.en, 0)
        await ctx.tick()
        got.append(ctx.get(dut.o.payload.y))
        await ctx.tick()
        got.append(ctx.get(dut.o.payload.y))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    assert got == [int(TANH[128]), 777]

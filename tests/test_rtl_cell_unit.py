"""CellUnit: parameter checks, then gate tiles of random pre-activations over several frames
(so the cell state carries), against a small NumPy reference of docs/ese.md "One step of
layer l" built on golden's ``table_lookup`` and ``_rshift``; every ``m`` is checked at its
exact cycle (o row + ``LATENCY``) and address.  C = 1 at the ESE size (tables from
``make_tables``, given as init) and C = 3 on a small config (random full-range tables and
peepholes written through the host ports, 18-bit cells, so cells saturate), peepholes
on and off, with large and saturating inputs, several tiles with different bases, back to
back cells, and ``clear``."""

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from compiler.lstm_pack import make_tables
from contract.config import EIEConfig
from contract.lstm_config import ESEConfig
from golden.lstm_model import _rshift, table_lookup
from rtl.cell_unit import CellUnit
from rtl.common import HostWrite

ESE1 = ESEConfig.ese(channels=1)
SMALL3 = ESEConfig(channel=EIEConfig(n_pes=2, act_frac=11, acc_depth=16, act_depth=32),
                   channels=3, cell_depth=16, cell_bits=18)    # 18: cells saturate often


def test_init():
    dut = CellUnit(config=SMALL3, peephole_init=[1, -2, 3])
    dut._MustUse__silence = True
    assert dut.config is SMALL3
    assert CellUnit.LATENCY == 11
    assert dut.host_table.signature == HostWrite.Signature(10, 16).flip()
    assert dut.host_peephole.signature == HostWrite.Signature(6, 16).flip()
    assert dut.wb.shape().size == 1 + 4 + 3 * 16
    assert dut.m.shape().size == 1 + 5 + 3 * 16
    with pytest.raises(AttributeError):
        dut.config = SMALL3


def test_wrong_parameters():
    with pytest.raises(TypeError, match=r"^Config must be an ESEConfig, not 3$"):
        CellUnit(config=3)
    with pytest.raises(ValueError, match=r"^Initial contents of the peephole memory have 49 "
                                         r"rows, more than its depth 48$"):
        CellUnit(config=SMALL3, peephole_init=[0] * 49)
    with pytest.raises(ValueError, match=r"^Initial contents of the peephole memory must fit "
                                         r"signed 16 bits, not -32769$"):
        CellUnit(config=SMALL3, peephole_init=[-32769])
    with pytest.raises(ValueError, match=r"^Initial contents of the σ table must fit signed "
                                         r"16 bits, not 40000$"):
        CellUnit(config=SMALL3, sigmoid_init=[40000])


# ---- reference: docs/ese.md "One step of layer l", on golden's table and rounding ----
def saturate(a, bits):
    return np.clip(a, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def reference_cell(config, tables, u, c_prev, peep, shift, stats=None):
    """One cell for every channel: ``u`` int [4, C] (i, f, g, o), ``c_prev`` [C], ``peep``
    (p_ci, p_cf, p_co) or zeros; returns ``(c, m)`` and counts table-range and cell
    saturations into ``stats``."""
    stats = {"table": 0, "cell": 0} if stats is None else stats
    sigmoid, tanh = (np.asarray(t, np.int64) for t in tables)
    y, f_act = config.gate_frac, config.channel.act_frac

    def lut(table, x):
        result, saturated = table_lookup(table, x, config)
        stats["table"] += int(saturated.sum())
        return result

    u = np.asarray(u, np.int64)
    i = lut(sigmoid, u[0] + _rshift(peep[0] * c_prev, shift))
    f = lut(sigmoid, u[1] + _rshift(peep[1] * c_prev, shift))
    g = lut(tanh, u[2])
    exact = _rshift(f * c_prev + i * g, y)
    c = saturate(exact, config.cell_bits)
    stats["cell"] += int((c != exact).sum())
    o = lut(sigmoid, u[3] + _rshift(peep[2] * c, shift))
    m = saturate(_rshift(o * lut(tanh, _rshift(c, y - f_act)), 2 * y - f_act),
                 config.channel.act_bits)
    return c, m


def test_reference_examples():
    # u = 0 everywhere from c_prev = 0: i = f = o = 1/2, g = 0, c = 0, m = 0; a hand-checked
    # cell: u_g = 2**14 (tanh(8)), u_i = u_o = 2**14 (σ(8)) gives c = T_σ[256] T_tanh[256]
    # >> 14, rounded.
    sigmoid, tanh = make_tables(ESE1)
    c, m = reference_cell(ESE1, (sigmoid, tanh), [[0], [0], [0], [0]], np.zeros(1, np.int64),
                          np.zeros(3, np.int64), 3)
    assert (c.tolist(), m.tolist()) == ([0], [0])
    big = 1 << 14
    c, _ = reference_cell(ESE1, (sigmoid, tanh), [[big], [0], [big], [big]],
                          np.zeros(1, np.int64), np.zeros(3, np.int64), 3)
    assert c.tolist() == [(int(sigmoid[256]) * int(tanh[256]) + (1 << 13)) >> 14]


def random_u(rng, config, shape):
    """Pre-activations: mostly inside the table range, some at the act_bits extremes."""
    bits, f_act = config.channel.act_bits, config.channel.act_frac
    u = np.clip(np.rint(rng.normal(0, 3 << f_act, shape)), -(1 << (bits - 1)),
                (1 << (bits - 1)) - 1).astype(np.int64)
    extremes = rng.random(shape) < 0.1
    u[extremes] = rng.choice([-(1 << (bits - 1)), (1 << (bits - 1)) - 1], extremes.sum())
    return u


def run(config, tables, peep, tiles, frames, seed, *, host=False, clear=()):
    """Run ``frames`` frames of ``tiles`` [(cell_base, m_base, peephole, shift, cells)];
    ``clear`` addresses are cleared before the last frame.  Returns (expected, got) lists
    of (cycle, addr, values) and the reference's saturation counts."""
    rng = np.random.default_rng(seed)
    gen = random.Random(seed)
    channels, latency = config.channels, CellUnit.LATENCY
    init = {} if host else dict(sigmoid_init=tables[0], tanh_init=tables[1],
                                peephole_init=peep)
    dut = CellUnit(config=config, **init)
    state = np.zeros((config.cell_depth, channels), np.int64)
    schedule, expected, got = [], [], []
    stats = {"table": 0, "cell": 0}
    for frame in range(frames):
        if frame == frames - 1:
            state[list(clear)] = 0
        for base, m_base, peephole, shift, cells in tiles:
            u = random_u(rng, config, (cells, 4, channels))
            schedule.append(((base, m_base, peephole, shift), u, frame == frames - 1))
            for k in range(cells):
                p = (np.array([peep[3 * (base + k) + q] for q in range(3)], np.int64)
                     if peephole else np.zeros(3, np.int64))
                c, m = reference_cell(config, tables, u[k], state[base + k], p, shift, stats)
                state[base + k] = c
                expected.append((m_base + k, m.tolist()))

    async def testbench(ctx):
        now = 0

        async def tick(n=1):
            nonlocal now
            for _ in range(n):
                if ctx.get(dut.m.valid):
                    got.append((now, ctx.get(dut.m.addr), list(ctx.get(dut.m.values))))
                await ctx.tick()
                now += 1

        if host:
            size = config.table_size
            writes = [(dut.host_table, f * size + s, int(tables[f][s])) for f in (0, 1)
                      for s in range(size)]
            writes += [(dut.host_peephole, a, int(v)) for a, v in enumerate(peep)]
            for port, addr, value in writes:
                ctx.set(port.en, 1)
                ctx.set(port.addr, addr)
                ctx.set(port.data, value)
                await tick()
                ctx.set(port.en, 0)
        o_rows, pending_clear = [], list(clear)
        for fields, u, last_frame in schedule:
            while last_frame and pending_clear:        # before the last frame's first tile
                ctx.set(dut.clear, {"en": 1, "addr": pending_clear.pop()})
                await tick()
            ctx.set(dut.clear, {"en": 0, "addr": 0})
            base, m_base, peephole, shift = fields
            ctx.set(dut.tile, {"cell_base": base, "m_base": m_base, "peephole": peephole,
                               "peep_shift": shift})
            for k in range(u.shape[0]):
                for q in range(4):
                    ctx.set(dut.wb, {"valid": 1, "row": 4 * k + q,
                                     "values": [int(x) for x in u[k, q]]})
                    if q == 3:
                        o_rows.append(now)
                    await tick()
            ctx.set(dut.wb, {"valid": 0, "row": gen.randrange(4 * u.shape[0]),
                             "values": [gen.randrange(-100, 100) for _ in range(channels)]})
            # The tile holds until its last m is out; the next one starts 0..5 cycles later.
            await tick(latency + gen.randint(0, 5))
        expected[:] = [(t + latency, *e) for t, e in zip(o_rows, expected, strict=True)]

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return expected, got, stats


def check(expected, got):
    assert len(got) == len(expected)
    for e, g in zip(expected, got, strict=True):
        assert g == e, (e, g)


def test_ese_size_one_channel():
    sigmoid, tanh = make_tables(ESE1)
    rng = np.random.default_rng(1)
    peep = rng.integers(-(1 << 15), 1 << 15, 3 * ESE1.cell_depth).tolist()
    # A full tile (32 cells = the whole cell memory), then the same cells again in tiles
    # of 12, 12 and 8 with other bases, peepholes on and off.
    tiles = [(0, 40, 1, 3, 32), (0, 0, 1, 3, 12), (12, 52, 1, 3, 12), (24, 64, 0, 5, 8)]
    expected, got, stats = run(ESE1, (sigmoid, tanh), peep, tiles, frames=3, seed=2)
    check(expected, got)
    assert stats["table"] > 100


@pytest.mark.parametrize("seed", [3, 4])
def test_three_channels_random_tables(seed):
    rng = np.random.default_rng(seed)
    bits = SMALL3.gate_bits
    # Random samples, half of them at the extremes (gates near ±2 grow the cells fast).
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    tables = [np.where(rng.random(SMALL3.table_size) < 0.5,
                       rng.choice([low, high], SMALL3.table_size),
                       rng.integers(low, high + 1, SMALL3.table_size)).tolist()
              for _ in range(2)]
    peep = rng.integers(-(1 << 15), 1 << 15, 3 * SMALL3.cell_depth).tolist()
    # Peephole shifts from 0 (p c is 2**38) to 63 (every term 0) and in between.
    tiles = [(0, 3, 1, 0, 4), (4, 9, 1, 17, 4), (8, 20, 0, 9, 3), (12, 0, 1, 63, 4)]
    expected, got, stats = run(SMALL3, tables, peep, tiles, frames=4, seed=seed, host=True,
                               clear=(1, 9, 15))
    check(expected, got)
    assert stats["table"] > 100 and stats["cell"] > 10

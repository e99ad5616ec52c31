"""CellUnit: parameter checks, then gate tiles of random pre-activations over several frames
(so each channel's cell state carries), against a small NumPy reference of docs/ese.md "One
step of layer l" built on golden's ``table_lookup`` and ``_rshift``.  A tile goes in as one
pass per channel (the channel's cells back to back), with 0, 1 or 3 idle cycles (or a random
mix, also between cells) between passes; every ``m`` is checked at its exact cycle (o row +
``LATENCY``), address and channel.  C = 1 at the ESE size (tables from ``make_tables``, given
as init) and C = 3 on a small config (random full-range tables and peepholes written
through the host ports, 18-bit cells, so cells saturate), peepholes on and off, with large
and saturating inputs, several tiles with different bases, and ``clear`` of words of
several channels.  Last, every PE's cell unit against ``golden.lstm_model.run_lstm`` itself
on a packed 2-layer peephole LSTM with projection (tests/lstm_models.py)."""

import random

import numpy as np
import pytest
from amaranth.hdl import unsigned
from amaranth.sim import Simulator

from compiler.lstm_pack import make_tables
from contract.config import EIEConfig
from contract.lstm_config import ESEConfig
from golden.lstm_model import _rshift, run_lstm, table_lookup
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
    assert dut.wb.shape().size == 1 + 4 + 2 + 16
    assert dut.m.shape().size == 1 + 5 + 2 + 16
    assert dut.clear.shape().size == 1 + 6            # 3 channels x 16 cells
    one = CellUnit(config=ESE1)
    one._MustUse__silence = True
    assert one.wb.channel.shape() == unsigned(1) and one.clear.addr.shape() == unsigned(5)
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


def drive(dut, schedule, *, writes=(), gaps=(0,), cell_gaps=(0,), seed=0):
    """Simulate ``dut``: the host ``writes`` [(port, addr, value)] one per cycle, then per
    ``schedule`` entry ``(clear, fields, u)`` the ``clear`` addresses one per cycle and
    a tile (``fields`` = cell_base, m_base, peephole, peep_shift; ``u`` int [C, cells, 4])
    as C passes in channel order, a pass's rows on consecutive cycles except for
    ``cell_gaps`` idle cycles between cells, ``gaps`` idle cycles between passes (random
    choices); the next tile starts 0..5 cycles after its last ``m``.  Returns every ``m`` as
    ``(cycle, addr, channel, value)`` and the cycle of every o row, in the order driven."""
    gen = random.Random(seed)
    got, o_rows = [], []
    latency = CellUnit.LATENCY
    channels = dut.config.channels

    async def testbench(ctx):
        now = 0

        async def tick(n=1):
            nonlocal now
            for _ in range(n):
                if ctx.get(dut.m.valid):
                    got.append((now, ctx.get(dut.m.addr), ctx.get(dut.m.channel),
                                ctx.get(dut.m.value)))
                await ctx.tick()
                now += 1

        async def idle(n, cells):
            # Idle cycles carry junk rows, channels and values (valid low).
            for _ in range(n):
                ctx.set(dut.wb, {"valid": 0, "row": gen.randrange(4 * cells),
                                 "channel": gen.randrange(channels),
                                 "value": gen.randrange(-100, 100)})
                await tick()

        for port, addr, value in writes:
            ctx.set(port.en, 1)
            ctx.set(port.addr, addr)
            ctx.set(port.data, value)
            await tick()
            ctx.set(port.en, 0)
        for clear, (base, m_base, peephole, shift), u in schedule:
            for addr in clear:
                ctx.set(dut.clear, {"en": 1, "addr": addr})
                await tick()
            ctx.set(dut.clear, {"en": 0, "addr": 0})
            ctx.set(dut.tile, {"cell_base": base, "m_base": m_base, "peephole": peephole,
                               "peep_shift": shift})
            cells = u.shape[1]
            for c in range(channels):
                if c:
                    await idle(gen.choice(gaps), cells)
                for k in range(cells):
                    if k:
                        await idle(gen.choice(cell_gaps), cells)
                    for q in range(4):
                        ctx.set(dut.wb, {"valid": 1, "row": 4 * k + q, "channel": c,
                                         "value": int(u[c, k, q])})
                        if q == 3:
                            o_rows.append(now)
                        await tick()
            # The tile holds until its last m is out; the next one starts 0..5 cycles later.
            await idle(latency + gen.randint(0, 5), cells)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return got, o_rows


def table_writes(dut, config, tables, peep):
    size = config.table_size
    writes = [(dut.host_table, f * size + s, int(tables[f][s])) for f in (0, 1)
              for s in range(size)]
    return writes + [(dut.host_peephole, a, int(v)) for a, v in enumerate(peep)]


def run(config, tables, peep, tiles, frames, seed, *, host=False, clear=(), gaps=(0,),
        cell_gaps=(0,)):
    """Run ``frames`` frames of ``tiles`` [(cell_base, m_base, peephole, shift, cells)];
    ``clear`` addresses (``channel * cell_depth + cell``) are cleared before the last frame.
    Returns (expected, got) lists of (cycle, addr, channel, value) and the reference's
    saturation counts."""
    rng = np.random.default_rng(seed)
    channels = config.channels
    init = {} if host else dict(sigmoid_init=tables[0], tanh_init=tables[1],
                                peephole_init=peep)
    dut = CellUnit(config=config, **init)
    state = np.zeros((channels, config.cell_depth), np.int64)   # flat: the DUT's address
    schedule, expected = [], []
    stats = {"table": 0, "cell": 0}
    for frame in range(frames):
        if frame == frames - 1:
            state.reshape(-1)[list(clear)] = 0
        for n, (base, m_base, peephole, shift, cells) in enumerate(tiles):
            u = random_u(rng, config, (channels, cells, 4))
            first_of_last = frame == frames - 1 and n == 0
            schedule.append((clear if first_of_last else (), (base, m_base, peephole, shift), u))
            ms = np.zeros((cells, channels), np.int64)
            for k in range(cells):
                p = (np.array([peep[3 * (base + k) + q] for q in range(3)], np.int64)
                     if peephole else np.zeros(3, np.int64))
                c, ms[k] = reference_cell(config, tables, u[:, k, :].T, state[:, base + k], p,
                                          shift, stats)
                state[:, base + k] = c
            expected += [(m_base + k, ch, int(ms[k, ch])) for ch in range(channels)
                         for k in range(cells)]
    got, o_rows = drive(dut, schedule, seed=seed, gaps=gaps, cell_gaps=cell_gaps,
                        writes=table_writes(dut, config, tables, peep) if host else ())
    expected = [(t + CellUnit.LATENCY, *e) for t, e in zip(o_rows, expected, strict=True)]
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
    expected, got, stats = run(ESE1, (sigmoid, tanh), peep, tiles, frames=3, seed=2,
                               clear=(3, 31))
    check(expected, got)
    assert stats["table"] > 100


@pytest.mark.parametrize("seed, gaps, cell_gaps", [(3, (0,), (0,)), (4, (1,), (0,)),
                                                   (7, (3,), (0,)),
                                                   (8, (0, 1, 2, 3, 7), (0, 0, 1, 2, 5))])
def test_three_channels_random_tables(seed, gaps, cell_gaps):
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
    # Clear words of every channel: cells 1 and 15 of channel 0, 9 of 1, 4 and 15 of 2.
    expected, got, stats = run(SMALL3, tables, peep, tiles, frames=4, seed=seed, host=True,
                               clear=(1, 15, 16 + 9, 32 + 4, 47), gaps=gaps,
                               cell_gaps=cell_gaps)
    check(expected, got)
    assert stats["table"] > 100 and stats["cell"] > 10
    # The channels' cell states differ (so a mixed-up channel would show).
    assert len({tuple(e[3] for e in expected if e[2] == ch) for ch in range(3)}) == 3


# ---- against golden.lstm_model.run_lstm on a packed peephole LSTM ------------------------
GOLDEN_CONFIG = ESEConfig(channel=EIEConfig(n_pes=3, act_frac=11, acc_depth=16, act_depth=64,
                                            spmat_depth=1024, ptr_depth=256, bias_depth=128,
                                            max_tiles=16),
                          channels=2, cell_depth=32)


def test_against_golden_run_lstm():
    """Every PE's cell unit on golden's own gate pre-activations: the raw write-back ``u``
    is golden's traced ``u + pk`` minus the peephole term; the DUT's ``m`` must be golden's
    ``m`` for every real cell, frame, layer and channel (two sequences on two channels, one
    pass each per tile, 1..3 idle cycles between passes), and the cell state carries in the
    DUT's own cell memory."""
    from compiler.lstm_pack import compress_lstm, pack_lstm
    from tests.lstm_models import lstm_model

    config = GOLDEN_CONFIG
    n, y, f_act = config.n_pes, config.gate_frac, config.channel.act_frac
    model = lstm_model(n_in=7, hidden=10, layers=2, proj=5, head=(4,), peephole=True,
                       scale=2.0)
    image = pack_lstm(compress_lstm(model, config, density=None, bits=4), config)
    steps = 6
    rng = np.random.default_rng(7)
    q_in = rng.integers(-(3 << f_act), 3 << f_act, (config.channels, steps, image.n_in))
    golden = run_lstm(image, q_in, trace=True)
    assert any(info.peephole for info in image.layers)
    for pe in range(n):
        schedule, expected = [], []
        for t in range(steps):
            for layer, info in enumerate(image.layers):
                trace, local = golden.trace[layer], -(-info.hidden // n)
                shift = info.peep_frac + y - f_act
                for first in range(0, local, config.cells_per_tile):
                    ks = range(first, min(local, first + config.cells_per_tile))
                    u = np.zeros((config.channels, len(ks), 4), np.int64)
                    cells = []                      # per cell: (addr, m per channel)
                    for j, k in enumerate(ks):
                        r = pe + n * k
                        if r >= info.hidden:
                            cells.append(None)      # padding cell (u = 0): not golden's
                            continue
                        p = image.peephole[pe, 3 * (info.cell_base + k) + np.arange(3)]
                        p = p if info.peephole else np.zeros(3, np.int64)
                        c = golden.c[layer][:, t, r]
                        c_prev = golden.c[layer][:, t - 1, r] if t else np.zeros_like(c)
                        u[:, j, 0] = trace["u_i"][:, t, r] - _rshift(p[0] * c_prev, shift)
                        u[:, j, 1] = trace["u_f"][:, t, r] - _rshift(p[1] * c_prev, shift)
                        u[:, j, 2] = trace["u_g"][:, t, r]
                        u[:, j, 3] = trace["u_o"][:, t, r] - _rshift(p[2] * c, shift)
                        cells.append((16 * layer + k, trace["m"][:, t, r].tolist()))
                    # One pass per channel, in channel order.
                    expected += [e and (e[0], ch, e[1][ch]) for ch in range(config.channels)
                                 for e in cells]
                    fields = (info.cell_base + first, 16 * layer + first, int(info.peephole),
                              shift)
                    schedule.append(((), fields, u))
        dut = CellUnit(config=config, sigmoid_init=image.sigmoid, tanh_init=image.tanh,
                       peephole_init=image.peephole[pe])
        got, o_rows = drive(dut, schedule, seed=pe, gaps=(1, 2, 3))
        assert [g[0] for g in got] == [t + CellUnit.LATENCY for t in o_rows]
        real = [g[1:] for g, e in zip(got, expected, strict=True) if e is not None]
        assert real == [e for e in expected if e is not None]

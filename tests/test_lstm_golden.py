"""The ESE golden model (docs/ese.md): tables, bit-exactness against an independent dense
fixed-point reference, and accuracy against float torch."""

import numpy as np
import pytest
import torch
from lstm_models import lstm_model

from compiler.fixed_point import choose_w_frac
from compiler.lstm_pack import compress_lstm, make_tables, pack_lstm
from contract.config import EIEConfig
from contract.lstm_config import ESEConfig
from contract.lstm_image import read_lstm_image, write_lstm_image
from golden.lstm_model import quantize_sequence, run_lstm, table_lookup

CONFIG = ESEConfig(channel=EIEConfig(n_pes=3, act_frac=11, acc_depth=16, act_depth=64,
                                     spmat_depth=1024, ptr_depth=256, bias_depth=128,
                                     max_tiles=16),
                   channels=2, cell_depth=32)


def model(seed=0, scale=2.0, **kwargs):
    return lstm_model(seed=seed, scale=scale, **kwargs)


# ---- the σ/tanh unit -------------------------------------------------------------------
def test_tables_over_every_input_code():
    sigmoid, tanh = make_tables(CONFIG)
    assert sigmoid.shape == tanh.shape == (257,)
    # hand-checked samples: s = 128 is input 0, s = 0 is input -8
    assert sigmoid[128] == 8192 and tanh[128] == 0 and tanh[0] == -16384
    assert sigmoid[0] == 5 and sigmoid[256] == 16379
    u = np.arange(-(1 << 15), 1 << 15)
    x = u / 2.0 ** 11
    s, sat = table_lookup(sigmoid, u, CONFIG)
    t, _ = table_lookup(tanh, u, CONFIG)
    inside = np.abs(x) < 8
    assert np.array_equal(sat, ~(x >= -8) | (x >= 8))
    sig_err = np.abs(s / 2.0 ** 14 - 1 / (1 + np.exp(-x)))
    tanh_err = np.abs(t / 2.0 ** 14 - np.tanh(x))
    # the figures docs/ese.md gives
    assert sig_err[inside].max() == pytest.approx(1.0605e-4, abs=5e-8)
    assert sig_err.max() == pytest.approx(3.0506e-4, abs=5e-8)
    assert tanh_err.max() == pytest.approx(4.1177e-4, abs=5e-8)
    # interpolation is exact at the samples
    k = np.arange(257)
    codes = np.clip(-(8 << 11) + k * 128, -(8 << 11), (8 << 11) - 1)
    assert np.array_equal(table_lookup(sigmoid, codes[:-1], CONFIG)[0], sigmoid[:-1])


# ---- bit-exactness against an independent dense reference ------------------------------
def _rshift(a, s):
    return (a + (1 << (s - 1))) >> s if s > 0 else a


def _dense_reference(compressed, config, q):
    """The rules of docs/ese.md on dense torch-order integer matrices: no image, no
    interleave, no tiles. Uses only the compressed model's shared weights."""
    ch, y_frac, f = config.channel, config.gate_frac, config.channel.act_frac
    spec = compressed.reference_spec()
    sigmoid, tanh = make_tables(config)

    def lut(table, u):
        half = 8 << f
        v = np.clip(u, -half, half - 1) + half
        b = config.interpolation_bits
        s, r = v >> b, v & ((1 << b) - 1)
        return table[s] + _rshift((table[s + 1] - table[s]) * r, b)

    def wb(acc, shift, relu=False):
        t = _rshift(acc, shift)
        t = np.clip(t, -(1 << 15), (1 << 15) - 1)
        return np.maximum(t, 0) if relu else t

    # each matrix's fraction bits follow from its codebook (docs/numerics.md)
    fracs = {role: choose_w_frac(layer.codebook, ch.codebook_bits)
             for layer, role in zip(compressed.layers, compressed.roles, strict=True)}

    def quant(w, role):
        return np.rint(w * 2.0 ** fracs[role]).astype(np.int64), fracs[role]

    batch, steps, _ = q.shape
    layers = []
    for k, layer in enumerate(spec.layers):
        w, wf = quant(np.concatenate([layer.w_ih, layer.w_hh], axis=1), ("gates", k))
        b = np.rint(layer.bias * 2.0 ** (wf + f)).astype(np.int64)
        p, pf = quant(layer.w_hr, ("proj", k)) if layer.w_hr is not None else (None, 0)
        layers.append((w, wf, b, p, pf))
    heads = []
    for j, dense in enumerate(spec.head):
        w, wf = quant(dense.weight, ("head", j))
        b = (np.zeros(dense.n_out, np.int64) if dense.bias is None else
             np.rint(dense.bias * 2.0 ** (wf + f)).astype(np.int64))
        heads.append((w, wf, b, dense.relu))
    h = [np.zeros((batch, layer.n_out), np.int64) for layer in spec.layers]
    c = [np.zeros((batch, layer.hidden), np.int64) for layer in spec.layers]
    out = []
    for t in range(steps):
        inp = q[:, t]
        for k, (w, wf, b, p, pf) in enumerate(layers):
            u = wb(np.concatenate([inp, h[k]], axis=1) @ w.T + b, wf)
            ui, uf, ug, uo = np.split(u, 4, axis=1)
            i, fg, g, o = lut(sigmoid, ui), lut(sigmoid, uf), lut(tanh, ug), lut(sigmoid, uo)
            c[k] = np.clip(_rshift(fg * c[k] + i * g, y_frac), -(1 << 23), (1 << 23) - 1)
            m = _rshift(o * lut(tanh, _rshift(c[k], y_frac - f)), 2 * y_frac - f)
            h[k] = wb(m @ p.T, pf) if p is not None else m
            inp = h[k]
        for w, wf, b, relu in heads:
            inp = wb(inp @ w.T + b, wf, relu)
        out.append(inp)
    return np.stack(out, axis=1)


@pytest.mark.parametrize("kwargs, density, balance", [
    (dict(), None, False),
    (dict(proj=0, head=()), 0.5, True),
    (dict(layers=1, n_in=5, hidden=7, proj=3, head=(6, 2)), 0.3, False),
    (dict(n_in=4, hidden=13, proj=0, head=(3,)), 0.6, True),
])
def test_golden_equals_dense_reference(kwargs, density, balance):
    m = model(**kwargs)
    compressed = compress_lstm(m, CONFIG, density=density, bits=4, balance=balance)
    image = pack_lstm(compressed, CONFIG)
    x = torch.randn(3, 9, m.lstm.input_size, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(1)).numpy()
    q = quantize_sequence(x, CONFIG)
    result = run_lstm(image, q)
    np.testing.assert_array_equal(result.q, _dense_reference(compressed, CONFIG, q))
    assert result.channel.tolist() == [0, 1, 0]
    # one sequence alone gives the same frames (state starts at zero per sequence)
    np.testing.assert_array_equal(run_lstm(image, q[1]).q, result.q[1])


def test_image_round_trip(tmp_path):
    m = model(peephole=True)
    image = pack_lstm(compress_lstm(m, CONFIG, density=0.4, balance=True), CONFIG)
    back = read_lstm_image(write_lstm_image(image, tmp_path / "img"))
    assert back.layers == image.layers and back.head == image.head
    assert back.memory == image.memory and back.config == image.config
    np.testing.assert_array_equal(back.peephole, image.peephole)
    np.testing.assert_array_equal(back.tanh, image.tanh)
    q = quantize_sequence(np.random.default_rng(0).normal(size=(2, 6, 7)), CONFIG)
    np.testing.assert_array_equal(run_lstm(back, q).q, run_lstm(image, q).q)


# ---- accuracy against float torch ------------------------------------------------------
@pytest.mark.parametrize("peephole", [False, True])
def test_tracks_float_within_two_percent(peephole):
    # docs/ese.md: 2-layer LSTM with projection and a Linear head, 40 steps
    m = model(n_in=12, hidden=24, proj=12, head=(6,), peephole=peephole, scale=2.0)
    compressed = compress_lstm(m, CONFIG, density=None, bits=4)
    image = pack_lstm(compressed, CONFIG)
    x = torch.randn(4, 40, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want = compressed.reference()(x).numpy()
    got = run_lstm(image, quantize_sequence(x.numpy(), CONFIG))
    scale = np.abs(want).max()
    assert np.abs(got.y - want).max() <= 0.02 * scale
    assert got.saturation["cell"].sum() == 0 and got.wraps.sum() == 0


@pytest.mark.parametrize("bad, message", [
    (np.zeros((0, 7), np.int64), r"no frames \(T = 0\)"),
    (np.zeros((3, 6), np.int64), "input frames have 6 values, the image's first layer takes 7"),
    (np.zeros(7, np.int64), r"input must be \[T, 7\] or \[batch, T, 7\]"),
    (np.zeros((2, 7)), "input must be integers"),
])
def test_bad_inputs(bad, message):
    image = pack_lstm(compress_lstm(model(), CONFIG), CONFIG)
    with pytest.raises(ValueError, match=message):
        run_lstm(image, bad)

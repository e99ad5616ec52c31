"""LSTM packing (compiler/lstm_pack.py, docs/ese.md "Layout" and "Compression"): unpacking
an image gives back the compressed model in torch order, the peephole memory gives back
the quantized peepholes, and load-balance-aware pruning evens every row tile's PEs."""

import logging

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler.fixed_point import choose_w_frac
from compiler.lstm_model import LSTMLayerWeights, LSTMSpec
from compiler.lstm_pack import compress_lstm, lstm_matrices, pack_lstm
from compiler.types import DenseLayer
from compiler.unpack import unpack, unpack_values
from contract.config import EIEConfig
from contract.lstm_config import ESEConfig
from contract.lstm_layout import gate_rows, padded
from golden.model import decode_tile

logging.getLogger("compiler.pack").setLevel(logging.ERROR)


@st.composite
def lstms(draw):
    """A random LSTM stack (sizes include non-powers of two) and a config for it."""
    n_pes = draw(st.integers(1, 8))
    acc_depth = draw(st.sampled_from([4, 8, 12]))
    n_layers = draw(st.integers(1, 2))
    n_in = draw(st.integers(1, 11))
    peephole = draw(st.booleans())
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    layers, width = [], n_in
    for k in range(n_layers):
        hidden = draw(st.integers(1, 10))
        proj = draw(st.one_of(st.just(0), st.integers(1, hidden)))
        out = proj or hidden
        layers.append(LSTMLayerWeights(
            f"l{k}", rng.normal(0, 0.4, (4 * hidden, width)), rng.normal(0, 0.4, (4 * hidden,
                                                                                 out)),
            rng.normal(0, 0.2, 4 * hidden),
            rng.normal(0, 0.4, (proj, hidden)) if proj else None,
            rng.normal(0, 0.3, (3, hidden)) if peephole else None))
        width = out
    head = []
    for j in range(draw(st.integers(0, 2))):
        n_out = draw(st.integers(1, 7))
        bias = rng.normal(0, 0.1, n_out) if draw(st.booleans()) else None
        head.append(DenseLayer(f"head{j}", rng.normal(0, 0.4, (n_out, width)), bias, True))
        width = n_out
    if head:
        head[-1].relu = False
    density = draw(st.one_of(st.just(1.0), st.floats(0.05, 1.0)))
    config = ESEConfig(channel=EIEConfig(n_pes=n_pes, act_frac=11, acc_depth=acc_depth,
                                         act_depth=128, spmat_depth=1024, ptr_depth=1024,
                                         bias_depth=256, max_tiles=128),
                       cell_depth=32)
    return LSTMSpec(layers, head), config, density


def _compress(spec, config, density):
    # A matrix pruned to nothing with a non-zero bias packs too (its w_frac follows the
    # bias, docs/numerics.md "Choice of w_frac").
    return compress_lstm(spec, config, density=density, balance=True)


def _shared(q, frac):
    """The integer codebook value of a shared float weight (docs/numerics.md)."""
    return np.rint(q * 2.0 ** frac).astype(np.int64)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lstms())
def test_unpack_gives_back_the_compressed_model(case):
    spec, config, density = case
    n = config.n_pes
    compressed = _compress(spec, config, density)
    image = pack_lstm(compressed, config)
    ref = compressed.reference_spec()
    values, biases = unpack_values(image.matrices)
    indices = unpack(image.matrices)
    mats = image.matrices.layers
    f_act = config.channel.act_frac

    def back(k):
        """Matrix k decoded: float weights through the manifest's codebook, integers."""
        return np.asarray(mats[k].codebook)[indices[k]], values[k], mats[k].w_frac

    width = spec.n_in
    for info, layer, ref_layer in zip(image.layers, spec.layers, ref.layers, strict=True):
        w, ints, frac = back(info.gates)
        rows = gate_rows(info.hidden, n)
        in_pad = padded(width, n)
        assert w.shape == (4 * padded(info.hidden, n), in_pad + padded(info.n_out, n))
        torch_w = w[rows]
        np.testing.assert_array_equal(torch_w[:, :width], ref_layer.w_ih)
        np.testing.assert_array_equal(torch_w[:, in_pad:in_pad + info.n_out], ref_layer.w_hh)
        np.testing.assert_array_equal(ints[rows][:, :width], _shared(ref_layer.w_ih, frac))
        # padding cells' rows and padding columns hold nothing
        assert np.count_nonzero(w) == np.count_nonzero(torch_w)
        assert not w[:, width:in_pad].any() and not w[:, in_pad + info.n_out:].any()
        np.testing.assert_array_equal(
            biases[info.gates][rows], np.rint(layer.bias * 2.0 ** (f_act + frac)))
        if info.proj:
            w, ints, frac = back(info.projection)
            np.testing.assert_array_equal(w[:, :info.hidden], ref_layer.w_hr)
            np.testing.assert_array_equal(ints[:, :info.hidden], _shared(ref_layer.w_hr, frac))
            assert not w[:, info.hidden:].any()
        # peephole memory: p of cell r at PE r mod N, word 3 (cell_base + r div N) + gate
        if layer.peephole is not None:
            frac = choose_w_frac(layer.peephole.ravel(), config.channel.codebook_bits)
            assert info.peep_frac == frac
            r = np.arange(info.hidden)
            for g in range(3):
                np.testing.assert_array_equal(
                    image.peephole[r % n, 3 * (info.cell_base + r // n) + g],
                    np.rint(layer.peephole[g] * 2.0 ** frac))
        width = info.n_out
    for k, dense in zip(image.head, ref.head, strict=True):
        w, ints, frac = back(k)
        np.testing.assert_array_equal(w, dense.weight)
        np.testing.assert_array_equal(ints, _shared(dense.weight, frac))
    used = {3 * (info.cell_base + c) + g for info in image.layers if info.peephole
            for c in range(padded(info.hidden, n) // n) for g in range(3)}
    unused = np.ones(image.peephole.shape[1], bool)
    unused[sorted(used)] = False
    assert not image.peephole[:, unused].any()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lstms())
def test_every_row_tile_is_balanced(case):
    # ESE's load-balance-aware pruning, per matrix and per row tile: in each tile every PE
    # keeps k = round(density * tile rows * columns / PEs owning rows) non-zeros, or all
    # of its weights where it has fewer (padding rows and columns are zero).
    spec, config, density = case
    n = config.n_pes
    image = pack_lstm(_compress(spec, config, density), config)
    before, _ = lstm_matrices(spec, n)
    per_tile = config.channel.rows_per_tile
    program = image.matrices
    for info, dense in zip(program.layers, before, strict=True):
        for t in range(info.n_tiles):
            tile = decode_tile(program, info.first_tile + t)
            rows = min(per_tile, info.n_out - t * per_tile)
            block = dense.weight[t * per_tile:t * per_tile + rows]
            k = round(density * block.size / min(n, rows))
            kept = np.bincount(tile.rows % n, minlength=n)
            have = np.array([np.count_nonzero(block[p::n]) for p in range(n)])
            np.testing.assert_array_equal(kept, np.minimum(k, have))

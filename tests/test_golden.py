"""Golden model: numerics by hand, decode of hand-built images, dense reference, float bound.

Expected values are computed independently of ``golden``: by hand, with Python integers,
from a literal loop encoder in this file (docs/image-format.md), from ``compiler.unpack_values``
and from float PyTorch.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import golden
from compiler import pack, unpack_values
from compiler.compress import compress
from compiler.fixed_point import quantize_bias, quantize_codebook
from compiler.types import QuantLayer
from contract.config import EIEConfig
from contract.image import Descriptor, LayerInfo, PackedImage
from golden.model import ImageDecodeError, decode_tile, wrap, write_back

CFG = EIEConfig()


# ---- a literal, loop-per-entry image builder (independent of compiler.pack) -------------

def hand_image(config: EIEConfig, layers) -> PackedImage:
    """Encode ``layers`` exactly as docs/image-format.md describes, one entry at a time.

    ``layers``: list of dicts with ``idx`` (int [n_out, n_in] codebook indices), ``cb``
    (int codebook of 2**weight_bits values, cb[0] == 0), ``bias`` (int [n_out] or None),
    ``shift`` and ``relu``.
    """
    n, depth = config.n_pes, config.acc_depth
    rpt = config.rows_per_tile
    epw, ebits = config.entries_per_word, config.entry_bits
    image = PackedImage.empty(config)
    spmat = [[0] * config.spmat_depth for _ in range(n)]
    ptr_next = spmat_next = bias_next = 0
    program, infos = [], []
    n_tiles_total = sum(-(-layer["idx"].shape[0] // rpt) for layer in layers)
    for k, layer in enumerate(layers):
        idx = layer["idx"]
        n_out, n_in = idx.shape
        n_tiles = -(-n_out // rpt)
        infos.append(LayerInfo(f"l{k}", n_in, n_out, k, layer["shift"], layer["relu"],
                               layer["bias"] is not None,
                               [c / 2.0 ** layer["shift"] for c in layer["cb"]],
                               len(program), n_tiles))
        for i, c in enumerate(layer["cb"]):
            image.codebook[k * config.codebook_size + i] = c
        for t in range(n_tiles):
            rows = min(rpt, n_out - t * rpt)
            out_local = -(-rows // n)
            words_used = 0
            for p in range(n):
                entries, ptrs = [], [0]
                for j in range(n_in):
                    prev = -1
                    for r in range(out_local):
                        i = t * rpt + r * n + p
                        if i < n_out and idx[i, j]:
                            gap = r - prev - 1
                            while gap > config.max_run:
                                entries.append((0, config.max_run))
                                gap -= config.max_run + 1
                            entries.append((int(idx[i, j]), gap))
                            prev = r
                    ptrs.append(len(entries))
                for e, (v, z) in enumerate(entries):
                    word = spmat_next + e // epw
                    spmat[p][word] |= (v | (z << config.weight_bits)) << (ebits * (e % epw))
                words_used = max(words_used, -(-len(entries) // epw))
                for j, ptr in enumerate(ptrs):
                    bank = image.ptr_even if j % 2 == 0 else image.ptr_odd
                    bank[p, ptr_next + j // 2] = ptr
                if layer["bias"] is not None:
                    for r in range(out_local):
                        i = t * rpt + r * n + p
                        image.bias[p, bias_next + r] = layer["bias"][i] if i < n_out else 0
            program.append(Descriptor(
                in_local=-(-n_in // n), out_local=out_local, out_base=t * depth,
                ptr_base=ptr_next, spmat_base=spmat_next,
                bias_base=bias_next if layer["bias"] is not None else 0, slot=k,
                shift=layer["shift"], relu=layer["relu"], bias_en=layer["bias"] is not None,
                swap=t == n_tiles - 1, last=len(program) == n_tiles_total - 1))
            ptr_next += (n_in + 2) // 2
            spmat_next += words_used
            if layer["bias"] is not None:
                bias_next += out_local
    image.spmat[:] = np.array(spmat, dtype=np.uint64)
    image.program = program
    image.layers = infos
    return image


def py_write_back(acc: int, shift: int, relu: bool, act_bits: int) -> int:
    """The write-back rule with Python integers (unbounded: no wrap possible)."""
    t = (acc + (1 << (shift - 1))) >> shift if shift else acc
    t = max(-(1 << (act_bits - 1)), min((1 << (act_bits - 1)) - 1, t))
    return max(t, 0) if relu else t


def py_wrap(x: int, bits: int) -> int:
    return ((x + (1 << (bits - 1))) % (1 << bits)) - (1 << (bits - 1))


def py_forward(values, biases, shifts, relus, q, config: EIEConfig, wraps=None):
    """Dense integer reference with Python ints; returns per-layer outputs.

    ``wraps`` (a list) receives per layer the number of accumulators that wrapped.
    """
    outs = []
    a = [int(v) for v in q]
    for w, b, s, r in zip(values, biases, shifts, relus, strict=True):
        w_obj = np.asarray(w, dtype=object)
        acc = w_obj.dot(np.array(a, dtype=object)) + np.asarray(b, dtype=object)
        if wraps is not None:
            wraps.append(sum(py_wrap(int(x), config.acc_bits) != x for x in acc))
        a = [py_write_back(py_wrap(int(x), config.acc_bits), s, r, config.act_bits)
             for x in acc]
        outs.append(a)
    return outs


# ---- numerics by hand -------------------------------------------------------------------

def test_quantize_input_by_hand():
    x = np.array([0.0, 1 / 512, 3 / 512, -1 / 512, -3 / 512, 1.0, 200.0, -200.0, 0.3])
    q = golden.quantize_input(x, CFG)
    # 0.5 LSB -> 0 and 1.5 LSB -> 2 (half to even); +-200 clip; 0.3*256 = 76.8 -> 77
    assert q.tolist() == [0, 0, 2, 0, -2, 256, 32767, -32768, 77]
    assert q.dtype == np.int64
    np.testing.assert_array_equal(golden.dequantize(q, CFG), q / 256.0)
    with pytest.raises(ValueError, match="NaN"):
        golden.quantize_input([np.nan], CFG)


@pytest.mark.parametrize("acc, shift, relu, expected, saturated", [
    (5, 0, False, 5, False),
    (-7, 0, False, -7, False),
    (-7, 0, True, 0, False),
    (40000, 0, False, 32767, True),
    (-40000, 0, False, -32768, True),
    (-40000, 0, True, 0, True),
    (3, 1, False, 2, False),        # 1.5 -> 2 (half up)
    (-3, 1, False, -1, False),      # -1.5 -> -1 (half up, towards +inf)
    (1, 1, False, 1, False),        # 0.5 -> 1
    (-1, 1, False, 0, False),       # -0.5 -> 0
    (4, 1, False, 2, False),
    (-5, 1, False, -2, False),      # -2.5 -> -2
    (384, 8, False, 2, False),      # 1.5 * 2^8
    (-384, 8, False, -1, False),
    (-385, 8, False, -2, False),
    (-384, 8, True, 0, False),
    (32767 * 4 + 1, 2, False, 32767, False),   # 32767.25 -> 32767
    (32767 * 4 + 2, 2, False, 32767, True),    # 32767.5 rounds up to 32768: saturates
    (-32768 * 4 - 2, 2, False, -32768, False),  # -32768.5 -> -32768 (half up)
    (-32768 * 4 - 3, 2, False, -32768, True),
    ((1 << 31) - 1, 1, False, 32767, True),    # rounding add carries past 2^31: no wrap
    ((1 << 31) - 1, 30, False, 2, False),      # (2^31 - 1 + 2^29) >> 30 = 2
    (-(1 << 31), 31, False, -1, False),
    ((1 << 31) - 1, 31, False, 1, False),      # 0.99999 -> 1
])
def test_write_back_by_hand(acc, shift, relu, expected, saturated):
    y, sat = write_back(np.array([acc]), shift, relu, CFG)
    assert int(y[0]) == expected
    assert bool(sat[0]) == saturated
    assert py_write_back(acc, shift, relu, CFG.act_bits) == expected


def test_wrap_by_hand():
    x = np.array([0, 1 << 31, (1 << 31) - 1, -(1 << 31) - 1, 3 << 32, -5], np.int64)
    assert wrap(x, 32).tolist() == [0, -(1 << 31), (1 << 31) - 1, (1 << 31) - 1, 0, -5]


def test_accumulator_wraps_modulo_acc_bits():
    # 8 products of 32767 * 32767 (~2^30 each) plus a bias: the exact sum is ~2^33, far
    # outside 32 bits; the hardware keeps it modulo 2^32.
    cfg = dataclasses.replace(CFG, n_pes=2, acc_depth=4)
    idx = np.array([[1] * 8, [2] * 8, [1, 2] * 4], np.int64)
    cb = [0, 32767, -32768] + [0] * 13
    bias = [123456789, -7, 0]
    image = hand_image(cfg, [dict(idx=idx, cb=cb, bias=bias, shift=0, relu=False)])
    q = np.array([32767, 32767, -32768, 32767, 32767, 1, -1, 32767])
    out = golden.run(image, q, trace=True)
    assert out.tile_acc[0].shape == (4,)        # out_local 2 x 2 PEs, row 3 is padding
    assert int(out.tile_acc[0][3]) == 0
    wrapped = 0
    for i in range(3):
        exact = bias[i] + sum(cb[idx[i, j]] * int(q[j]) for j in range(8))
        acc = ((exact + 2**31) % 2**32) - 2**31
        assert acc != exact or i == 2
        wrapped += acc != exact
        assert int(out.tile_acc[0][i]) == acc
        assert int(out.q[i]) == max(-32768, min(32767, acc))
    assert out.wraps.tolist() == [wrapped]
    assert golden.run(image, np.zeros(8, np.int64)).wraps.tolist() == [0]
    # With shift 16 the wrapped accumulator is visible in the result.
    image = hand_image(cfg, [dict(idx=idx, cb=cb, bias=bias, shift=16, relu=False)])
    out = golden.run(image, q)
    for i in range(3):
        exact = bias[i] + sum(cb[idx[i, j]] * int(q[j]) for j in range(8))
        acc = ((exact + 2**31) % 2**32) - 2**31
        assert int(out.q[i]) == max(-32768, min(32767, (acc + 2**15) >> 16))


def test_wide_accumulator_int64_overflow_path():
    # act_bits = codebook_bits = 30, acc_bits = 62: products reach 2^58 and sums of a few
    # of them pass 2^63, so the model must use wrapping (not float or int64) arithmetic.
    cfg = EIEConfig(n_pes=2, acc_depth=4, act_bits=30, act_frac=8, codebook_bits=30,
                    acc_bits=62)
    rng = np.random.default_rng(5)
    idx = rng.integers(0, 4, size=(5, 16))
    idx[0] = 1
    big = (1 << 29) - 1
    cb = [0, big, -(1 << 29), big - 12345] + [0] * 12
    image = hand_image(cfg, [dict(idx=idx, cb=cb, bias=None, shift=40, relu=False)])
    q = rng.choice([big, -(1 << 29), 77], size=(3, 16))
    q[0] = big                      # row 0 of sample 0: 16 * ~2^58 = ~2^62, wraps 62 bits
    out = golden.run(image, q)
    for b in range(3):
        wrapped = 0
        for i in range(5):
            exact = sum(cb[idx[i, j]] * int(q[b, j]) for j in range(16))
            acc = py_wrap(exact, 62)
            wrapped += acc != exact
            assert int(out.q[b, i]) == py_write_back(acc, 40, False, 30)
        assert int(out.wraps[b, 0]) == wrapped
        assert wrapped or b


# ---- decoding hand-built images ---------------------------------------------------------

def test_decode_tile_padding_and_empty_columns():
    # One PE, 40 rows: gaps of 15, 16, 17, 20 and 35 rows need 0, 1, 1, 1 and 2 paddings.
    cfg = dataclasses.replace(CFG, n_pes=1, acc_depth=40)
    idx = np.zeros((40, 6), np.int64)
    idx[15, 0] = 3                  # gap 15: fits one entry
    idx[16, 1] = 1                  # gap 16: one padding entry (v=0, z=15) then z=0
    idx[[0, 18, 39], 2] = [2, 5, 7]  # gaps 0, 17, 20: one padding each
    idx[35, 4] = 15                 # column 3 empty, gap 35: two paddings then z=3
    cb = list(range(0, -16, -1))
    image = hand_image(cfg, [dict(idx=idx, cb=cb, bias=None, shift=0, relu=False)])
    tile = decode_tile(image, 0)
    np.testing.assert_array_equal(tile.dense_indices(), idx)
    np.testing.assert_array_equal(tile.dense(), -idx)
    # entries per column, padding included: 1, 1 + 1, 3 + 2 (gaps 17, 20), 0, 1 + 2, 0
    assert tile.lengths.tolist() == [[1, 2, 5, 0, 3, 0]]
    # raw check of the first word: entries (3, 15), (0, 15), (1, 0), (2, 0), (0, 15)...
    first = int(image.spmat[0, 0])
    assert first & 0xFF == 0xF3 and (first >> 8) & 0xFF == 0xF0 and (first >> 16) & 0xFF == 1


def test_decode_multi_pe_multi_tile_against_hand_encoding():
    cfg = dataclasses.replace(CFG, n_pes=3, acc_depth=2)
    rng = np.random.default_rng(1)
    idx = rng.integers(0, 16, size=(14, 7)) * (rng.random((14, 7)) < 0.5)
    cb = [0] + rng.integers(-1000, 1000, size=15).tolist()
    bias = rng.integers(-5000, 5000, size=14).tolist()
    image = hand_image(cfg, [dict(idx=idx, cb=cb, bias=bias, shift=3, relu=True)])
    tiles = golden.decode_program(image)
    assert len(tiles) == 3              # 6 rows per tile
    for t, tile in enumerate(tiles):
        rows = idx[t * 6:(t + 1) * 6]
        expect = np.zeros((tile.n_rows, 7), np.int64)
        expect[:rows.shape[0]] = rows
        np.testing.assert_array_equal(tile.dense_indices(), expect)
        b = np.zeros(tile.n_rows, np.int64)
        b[:rows.shape[0]] = bias[t * 6:(t + 1) * 6]
        np.testing.assert_array_equal(tile.bias, b)


def test_run_hand_image_against_python_ints():
    cfg = dataclasses.replace(CFG, n_pes=3, acc_depth=2)
    rng = np.random.default_rng(2)
    layers = []
    sizes = [10, 14, 5, 4]
    for k in range(3):
        idx = rng.integers(0, 16, size=(sizes[k + 1], sizes[k])) * \
            (rng.random((sizes[k + 1], sizes[k])) < 0.6)
        cb = [0] + rng.integers(-3000, 3000, size=15).tolist()
        bias = rng.integers(-40000, 40000, size=sizes[k + 1]).tolist() if k != 1 else None
        layers.append(dict(idx=idx, cb=cb, bias=bias, shift=[9, 10, 4][k], relu=k < 2))
    image = hand_image(cfg, layers)
    q = rng.integers(-600, 600, size=(6, 10))
    out = golden.run(image, q)
    for b in range(6):
        expect = py_forward([np.array(L["cb"])[L["idx"]] for L in layers],
                            [L["bias"] or [0] * L["idx"].shape[0] for L in layers],
                            [L["shift"] for L in layers], [L["relu"] for L in layers],
                            q[b], cfg)
        assert out.q[b].tolist() == expect[-1]
        for k in range(3):
            assert out.layer_q[k][b].tolist() == expect[k]
    assert out.q.shape == (6, 4) and out.saturation.shape == (6, 3)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(n_pes=st.integers(1, 4), acc_depth=st.integers(1, 20), seed=st.integers(0, 2**31),
       sizes=st.lists(st.integers(1, 12), min_size=2, max_size=4),
       density=st.floats(0.0, 1.0), shift=st.integers(0, 20))
def test_run_matches_python_ints_property(n_pes, acc_depth, seed, sizes, density, shift):
    cfg = dataclasses.replace(CFG, n_pes=n_pes, acc_depth=acc_depth)
    rng = np.random.default_rng(seed)
    layers = []
    for k in range(len(sizes) - 1):
        shape = (sizes[k + 1], sizes[k])
        idx = rng.integers(0, 16, size=shape) * (rng.random(shape) < density)
        cb = [0] + rng.integers(-32768, 32768, size=15).tolist()
        bias = rng.integers(-2**31, 2**31, size=shape[0]).tolist() if k % 2 == 0 else None
        layers.append(dict(idx=idx, cb=cb, bias=bias, shift=shift, relu=bool(k % 2)))
    image = hand_image(cfg, layers)
    q = rng.integers(-32768, 32768, size=(3, sizes[0]))
    out = golden.run(image, q)
    for b in range(3):
        wraps = []
        expect = py_forward([np.array(L["cb"])[L["idx"]] for L in layers],
                            [L["bias"] or [0] * L["idx"].shape[0] for L in layers],
                            [L["shift"] for L in layers], [L["relu"] for L in layers],
                            q[b], cfg, wraps)
        assert [x[b].tolist() for x in out.layer_q] == expect
        assert out.wraps[b].tolist() == wraps


def test_image_errors():
    cfg = dataclasses.replace(CFG, n_pes=2, acc_depth=4)
    idx = np.array([[1, 2], [0, 1]])
    image = hand_image(cfg, [dict(idx=idx, cb=[0, 1, 2] + [0] * 13, bias=None, shift=0,
                                  relu=False)])
    q = np.array([1, 2])
    assert golden.run(image, q).q.tolist() == [5, 2]
    broken = dataclasses.replace(image, program=[dataclasses.replace(image.program[0],
                                                                      last=False)])
    with pytest.raises(ImageDecodeError, match="last=1"):
        golden.run(broken, q)
    bad_cb = dataclasses.replace(image, codebook=image.codebook.copy())
    bad_cb.codebook[0] = 9
    with pytest.raises(ImageDecodeError, match="reserved"):
        golden.run(bad_cb, q)
    with pytest.raises(ValueError, match="range|signed"):
        golden.run(image, np.array([1, 40000]))
    with pytest.raises(ValueError, match="values"):
        golden.run(image, np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="integers"):
        golden.run(image, np.array([1.0, 2.0]))


def test_nonzero_activation_past_n_in_is_an_error():
    # Layer 0 has 3 outputs on 2 PEs, so PE 1's local row 1 (activation 3) is padding; a
    # corrupt bias word there makes it non-zero, and layer 1 (n_in = 3) would then
    # broadcast column 3, which has no pointers.
    cfg = dataclasses.replace(CFG, n_pes=2, acc_depth=4)
    cb = [0, 1, 2] + [0] * 13
    layers = [dict(idx=np.ones((3, 2), np.int64), cb=cb, bias=[0, 0, 0], shift=0, relu=True),
              dict(idx=np.ones((2, 3), np.int64), cb=cb, bias=None, shift=0, relu=False)]
    image = hand_image(cfg, layers)
    q = np.array([1, 2])
    out = golden.run(image, q)
    assert out.layer_q[0].tolist() == [3, 3, 3] and out.q.tolist() == [9, 9]
    assert out.layer_inputs[1].tolist() == [3, 3, 3, 0]
    image.bias[1, image.program[0].bias_base + 1] = 5
    with pytest.raises(ImageDecodeError, match="j >= n_in"):
        golden.run(image, q)


# ---- against the packer's decode, random models -----------------------------------------

def random_quant_layers(rng, sizes, density, bias_flags):
    layers = []
    for k in range(len(sizes) - 1):
        shape = (sizes[k + 1], sizes[k])
        idx = (rng.integers(1, 16, size=shape) * (rng.random(shape) < density)).astype(np.uint8)
        cb = np.concatenate(([0.0], rng.normal(0, 0.3, size=15)))
        bias = rng.normal(0, 0.5, size=sizes[k + 1]) if bias_flags[k] else None
        layers.append(QuantLayer(f"fc{k}", idx, cb, bias, k < len(sizes) - 2))
    return layers


@pytest.mark.parametrize("n_pes, acc_depth, sizes, density, bias_flags", [
    (4, 32, [64, 32, 10], 0.3, [True, True]),
    (3, 4, [17, 29, 13, 5], 0.5, [True, False, True]),   # multi-tile, ragged
    (1, 8, [9, 20, 3], 0.9, [False, True]),
    (5, 2, [23, 31, 7], 0.05, [True, True]),              # very sparse, empty columns
])
def test_golden_matches_dense_reference(n_pes, acc_depth, sizes, density, bias_flags):
    cfg = dataclasses.replace(CFG, n_pes=n_pes, acc_depth=acc_depth)
    rng = np.random.default_rng(n_pes * 100 + acc_depth)
    layers = random_quant_layers(rng, sizes, density, bias_flags)
    image = pack(layers, cfg)
    shifts = [info.w_frac for info in image.layers]
    relus = [info.relu for info in image.layers]
    # The expected integers come from the layers themselves, not from any decode of the
    # image (golden and the unpacker share contract.decode); the unpacker must agree.
    values = [quantize_codebook(np.pad(layer.codebook, (0, cfg.codebook_size
                                                         - len(layer.codebook))),
                                shift, cfg.codebook_bits)[layer.indices.astype(np.int64)]
              for layer, shift in zip(layers, shifts, strict=True)]
    biases = [quantize_bias(layer.name, layer.bias, layer.n_out, shift, cfg)
              for layer, shift in zip(layers, shifts, strict=True)]
    unpacked_values, unpacked_biases = unpack_values(image)
    for k in range(len(layers)):
        np.testing.assert_array_equal(unpacked_values[k], values[k])
        np.testing.assert_array_equal(unpacked_biases[k], biases[k])
    x = rng.normal(0, 1.5, size=(7, sizes[0]))
    q = golden.quantize_input(x, cfg)
    out = golden.run(image, q)
    for b in range(len(q)):
        expect = py_forward(values, biases, shifts, relus, q[b], cfg)
        for k in range(len(layers)):
            assert out.layer_q[k][b].tolist() == expect[k]
        assert out.q[b].tolist() == expect[-1]
        single = golden.run(image, q[b])
        np.testing.assert_array_equal(single.q, out.q[b])
    np.testing.assert_array_equal(out.y, out.q / 2.0 ** cfg.act_frac)
    np.testing.assert_array_equal(golden.infer(image, x), out.y)
    # golden's own decode agrees with the packer's decode
    for k in range(len(layers)):
        tiles = [t for t in golden.decode_program(image) if t.layer == k]
        dense = np.concatenate([t.dense() for t in tiles])[:sizes[k + 1]]
        np.testing.assert_array_equal(dense, values[k])


# ---- against float PyTorch on a trained MLP ---------------------------------------------

def test_golden_within_bound_of_float_on_digits():
    from eie import digits

    data = digits.load_data(seed=0)
    model = digits.train_mlp(data, hidden=(64,), epochs=15, seed=0)
    comp = compress(model, density=0.5, bits=4)
    image = pack(comp.layers, CFG)
    small = comp.to_torch().double()
    with torch.no_grad():
        ref = small(torch.from_numpy(data.x_test.astype(np.float64))).numpy()
    q = golden.quantize_input(data.x_test, CFG)
    result = golden.run(image, q)
    bound = golden.error_bound(image, data.x_test)
    per_out = golden.error_bound(image, data.x_test, per_output=True)
    error = np.abs(result.y - ref)
    assert bound.shape == (len(data.x_test),)
    assert np.all(result.saturation == 0) and np.all(result.wraps == 0)
    assert np.all(np.isfinite(bound))
    assert np.all(error <= per_out)
    assert np.all(error.max(axis=1) <= bound)
    np.testing.assert_array_equal(per_out.max(axis=1), bound)
    acc_float = digits.accuracy(ref, data.y_test)
    acc_golden = digits.accuracy(result.y, data.y_test)
    print(f"\ncompressed float accuracy {acc_float:.4f}, golden accuracy {acc_golden:.4f}, "
          f"max |error| {error.max():.5f}, max bound {bound.max():.5f}")
    assert abs(acc_float - acc_golden) <= 0.01
    assert acc_golden > 0.9
    # the bound is a few LSB per layer, not vacuous
    assert bound.max() < 0.5


def test_error_bound_exact_on_hand_built_two_layer_image():
    # Two layers with biases, every value a short binary fraction, so each term of the
    # docs/numerics.md bound is exact in float64 and the bound can be written down.
    l1 = QuantLayer("l1", np.array([[1, 2, 0], [3, 0, 1]], np.uint8),
                    np.array([0.0, 0.5, -0.25, 0.75]), np.array([0.125, -0.0625]), True)
    l2 = QuantLayer("l2", np.array([[1, 2], [0, 1]], np.uint8),
                    np.array([0.0, 1.0, -0.5]), np.array([0.25, -0.125]), False)
    cfg = dataclasses.replace(CFG, n_pes=2)
    image = pack([l1, l2], cfg)
    # "Choice of w_frac": 0.75 * 2^15 = 24576 fits 16 bits, 0.75 * 2^16 does not -> 15;
    # 1.0 * 2^14 = 16384 fits, 1.0 * 2^15 = 32768 does not -> 14.
    assert [info.w_frac for info in image.layers] == [15, 14]
    x = np.array([0.5 + 2.0**-10, 1.25 - 2.0**-11, -0.375 + 2.0**-12])
    # Input rounding (act_frac 8): q = [128, 320, -96], x̂ = [0.5, 1.25, -0.375],
    # e_in = max(2^-10, 2^-11, 2^-12) = 2^-10.
    # Layer 1 (f = 15), in units of u = 2^-24: output rounding 2^-9 = 32768 u,
    # codebook term 2^-16 * sum |x̂_j| (256 u per unit), carried error sum |w| * 2^-10
    # (16384 u per unit), bias term 2^-24 = 1 u:
    #   row 0 (w = 0.5, -0.25 on x0, x1): 32768 + 256*1.75 + 16384*0.75 + 1 = 45505 u
    #   row 1 (w = 0.75, 0.5 on x0, x2):  32768 + 256*0.875 + 16384*1.25 + 1 = 53473 u
    # so e_in of layer 2 is 53473 u. Golden's layer-1 outputs (raw ints, by hand):
    #   row 0: 2^20 + 16384*128 - 8192*320 = 2^19 -> (2^19 + 2^14) >> 15 = 16
    #   row 1: -2^19 + 24576*128 + 16384*(-96) = 2^20 -> (2^20 + 2^14) >> 15 = 32
    # i.e. x̂ = [0.0625, 0.125]. Layer 2 (f = 14): codebook term 2^-15 * sum |x̂_j|
    # (512 u per unit), bias term 2^-23 = 2 u:
    #   row 0 (w = 1, -0.5): 32768 + 512*0.1875 + 1.5*53473 + 2 = 113075.5 u
    #   row 1 (w = 1 on x1): 32768 + 512*0.125 + 1.0*53473 + 2 = 86307 u
    per_output = np.array([226151 * 2.0**-25, 86307 * 2.0**-24])
    bound = 226151 * 2.0**-25                                    # 0.006739825010299683
    assert golden.error_bound(image, x) == bound
    np.testing.assert_array_equal(golden.error_bound(image, x, per_output=True), per_output)
    np.testing.assert_array_equal(golden.error_bound(image, np.stack([x, x])), [bound, bound])
    # golden by hand: row 0: 2^20 + 16384*16 - 8192*32 = 2^20 -> (2^20 + 2^13) >> 14 = 64;
    # row 1: -2^19 + 16384*32 = 0 -> 0
    result = golden.run(image, golden.quantize_input(x, cfg))
    assert result.layer_q[0].tolist() == [16, 32] and result.q.tolist() == [64, 0]
    # the float reference, straight from the hand-built weights in float64
    w1 = np.array([[0.5, -0.25, 0.0], [0.75, 0.0, 0.5]])
    w2 = np.array([[1.0, -0.5], [0.0, 1.0]])
    hidden = np.maximum(w1 @ x + np.array([0.125, -0.0625]), 0.0)
    ref = w2 @ hidden + np.array([0.25, -0.125])
    error = np.abs(result.y - ref)
    assert np.all(error > 0) and np.all(error <= per_output)


def test_bound_is_inf_when_saturating():
    idx = np.ones((2, 3), np.uint8)
    layer = QuantLayer("big", idx, np.array([0.0, 100.0]), None, False)
    image = pack([layer], CFG)
    bound = golden.error_bound(image, np.array([[1.0, 1.0, 1.0], [0.01, 0.0, 0.0]]))
    assert np.isinf(bound[0]) and np.isfinite(bound[1])
    # exact value for the second sample: input exact (0.01 -> 3/256 error 0.0017...)
    e_in = abs(3 / 256 - 0.01)
    f = image.layers[0].w_frac
    expect = 2.0 ** -9 + 2.0 ** -(f + 1) * (3 / 256) + 300.0 * e_in
    assert bound[1] == pytest.approx(expect, rel=1e-12)

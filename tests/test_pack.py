"""Packer tests: hand-checked encodings, pack/unpack identity, pack == pack_reference,
capacity errors. Expected values come from docs/image-format.md, not from the packer."""

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler.errors import CapacityError, ModelError
from compiler.pack import pack
from compiler.pack_reference import pack_reference
from compiler.types import QuantLayer
from compiler.unpack import unpack, unpack_values
from contract.config import EIEConfig

# Roomy small config for property tests: any 1..70 x 1..70 stack of up to 3 layers fits.
ROOMY = EIEConfig(n_pes=1, acc_depth=4, act_depth=128, spmat_depth=4096, ptr_depth=8192,
                  bias_depth=1024, max_tiles=256, max_layers=4)


def codebook(rng, size=16, scale=0.3):
    cb = rng.normal(0.0, scale, size)
    cb[0] = 0.0
    return cb


def layer(indices, cb=None, bias=None, relu=True, name="fc"):
    if cb is None:
        cb = np.linspace(-1.0, 1.0, 16)
        cb[0] = 0.0
    return QuantLayer(name, np.asarray(indices, np.uint8), np.asarray(cb, np.float64),
                      None if bias is None else np.asarray(bias, np.float64), relu)


def random_stack(rng, dims, density, n_levels=16, bias=True):
    layers = []
    for k in range(len(dims) - 1):
        n_in, n_out = dims[k], dims[k + 1]
        mask = rng.random((n_out, n_in)) < density
        idx = np.where(mask, rng.integers(1, n_levels, (n_out, n_in)), 0)
        b = rng.normal(0, 1, n_out) if (bias and k % 2 == 0) else None
        layers.append(layer(idx, codebook(rng), b, relu=k + 1 < len(dims) - 1, name=f"fc{k}"))
    return layers


def spec_decode(image, k):
    """Independent decoder written from docs/image-format.md with plain loops."""
    cfg = image.config
    info = image.layers[k]
    n = cfg.n_pes
    out = np.zeros((info.n_out, info.n_in), np.uint8)
    for t in range(info.n_tiles):
        d = image.program[info.first_tile + t]
        for p in range(n):
            def ptr(j, p=p, d=d):
                bank = image.ptr_even if j % 2 == 0 else image.ptr_odd
                return int(bank[p, d.ptr_base + j // 2])

            def entry(e, p=p):
                word = int(image.spmat[p, e // 8])
                return (word >> (8 * (e % 8))) & 0xFF

            for j in range(info.n_in):
                r = -1
                for e in range(d.spmat_base * 8 + ptr(j), d.spmat_base * 8 + ptr(j + 1)):
                    v, z = entry(e) & 0xF, entry(e) >> 4
                    r = r + z + 1
                    if v:
                        out[t * n * cfg.acc_depth + r * n + p, j] = v
    return out


# ---- hand-checked examples ---------------------------------------------------------------------
def test_padding_entry_hand_checked():
    # 1 PE, one column of 20 rows, non-zeros at rows 0 (index 3) and 18 (index 5).
    # Row 0: r_0 = z_0 = 0 -> entry (3, 0) = 0x03.
    # Row 18: 17 zero rows (1..17) precede it; 17 > 15 so a padding (0, 15) = 0xf0 moves
    # r to 0 + 15 + 1 = 16, then (5, z) with 16 + z + 1 = 18 -> z = 1 -> 0x15.
    idx = np.zeros((20, 1), np.uint8)
    idx[0, 0], idx[18, 0] = 3, 5
    cfg = EIEConfig(n_pes=1)
    image = pack([layer(idx, bias=np.zeros(20))], cfg)
    assert int(image.spmat[0, 0]) == 0x15F003       # entry e at bits 8*(e%8): LSB first
    assert not image.spmat[0, 1:].any()
    assert int(image.ptr_even[0, 0]) == 0           # P_0
    assert int(image.ptr_odd[0, 0]) == 3            # P_1: three entries
    assert image.layers[0].nnz == 2 and image.layers[0].padding == 1
    assert image.stats["pes"][0]["entries"] == 3 and image.stats["pes"][0]["padding"] == 1
    (d,) = image.program
    assert (d.in_local, d.out_local, d.out_base, d.ptr_base, d.spmat_base, d.bias_base) == \
        (1, 20, 0, 0, 0, 0)
    assert d.swap and d.last and d.bias_en and d.relu and d.slot == 0


def test_gap_of_exactly_16_and_32():
    # gap 15 fits one entry; gap 16 needs one padding and z = 0; gap 32 needs two paddings.
    idx = np.zeros((50, 1), np.uint8)
    idx[15, 0] = 1            # 15 zeros before: (1, 15) = 0xf1
    idx[32, 0] = 2            # 16 zeros (16..31): pad 0xf0, then (2, 0) = 0x02
    idx[49, 0] = 7            # 16 zeros (33..48): pad 0xf0, then 0x07
    image = pack([layer(idx)], EIEConfig(n_pes=1, acc_depth=64))
    assert int(image.spmat[0, 0]) == 0x07F002F0F1
    assert int(image.ptr_odd[0, 0]) == 5
    idx = np.zeros((40, 1), np.uint8)
    idx[32, 0] = 9            # 32 zeros: two paddings then (9, 0)
    image = pack([layer(idx)], EIEConfig(n_pes=1, acc_depth=64))
    assert int(image.spmat[0, 0]) == 0x09F0F0


def test_two_pe_interleave_and_pointer_banks():
    # 4 rows x 3 columns over 2 PEs: PE 0 owns rows 0, 2 (local 0, 1); PE 1 rows 1, 3.
    idx = np.array([[1, 0, 2],
                    [0, 3, 0],
                    [4, 0, 5],
                    [0, 0, 6]], np.uint8)
    image = pack([layer(idx)], EIEConfig(n_pes=2))
    # PE 0: col 0 -> (1,0),(4,0); col 1 empty; col 2 -> (2,0),(5,0). P = 0,2,2,4
    assert int(image.spmat[0, 0]) == 0x05020401
    assert list(image.ptr_even[0, :2]) == [0, 2] and list(image.ptr_odd[0, :2]) == [2, 4]
    # PE 1: col 0 empty; col 1 -> (3,0); col 2 -> local row 1 only: (6, 1) = 0x16. P = 0,0,1,2
    assert int(image.spmat[1, 0]) == 0x1603
    assert list(image.ptr_even[1, :2]) == [0, 1] and list(image.ptr_odd[1, :2]) == [0, 2]
    assert image.program[0].in_local == 2 and image.program[0].out_local == 2


def test_multi_tile_layout_and_descriptors():
    # 2 PEs x acc_depth 2 -> 4 rows per tile; 10 rows -> tiles of 4, 4, 2 rows.
    cfg = EIEConfig(n_pes=2, acc_depth=2, act_depth=16)
    idx = np.ones((10, 5), np.uint8)
    l1 = layer(idx, bias=np.arange(10) / 4)
    l2 = layer(np.ones((3, 10), np.uint8), relu=False)
    image = pack([l1, l2], cfg)
    prog = image.program
    assert [d.out_base for d in prog] == [0, 2, 4, 0]
    assert [d.out_local for d in prog] == [2, 2, 1, 2]
    assert [d.in_local for d in prog] == [3, 3, 3, 5]
    assert [d.ptr_base for d in prog] == [0, 3, 6, 9]            # ceil(6/2) = 3 per tile
    # every PE has 2 local rows x 5 dense columns = 10 entries = 2 words per full tile,
    # 1 row x 5 = 5 entries = 1 word in the last tile of layer 1.
    assert [d.spmat_base for d in prog] == [0, 2, 4, 5]
    assert [d.bias_base for d in prog] == [0, 2, 4, 0]            # layer 2 has no bias
    assert [d.swap for d in prog] == [False, False, True, True]
    assert [d.last for d in prog] == [False, False, False, True]
    assert [d.slot for d in prog] == [0, 0, 0, 1]
    assert [d.bias_en for d in prog] == [True, True, True, False]
    assert image.output_bank == 0
    # bias of row i sits in PE i%2 at bias_base(tile) + local row; rows past n_out hold 0
    w_frac = image.layers[0].w_frac
    scale = 2 ** (8 + w_frac)
    assert image.bias[0, 4] == 8 / 4 * scale and image.bias[1, 4] == 9 / 4 * scale
    assert image.bias[1, 1] == 3 / 4 * scale and image.bias[0, 5] == 0


def test_w_frac_codebook_and_bias_quantization():
    # max |c| = 1.0: 2**15 = 32768 > 32767, so w_frac = 14 ...
    cb = np.zeros(16)
    cb[1], cb[2], cb[3] = 1.0, 2.5 / 2**14, 3.5 / 2**14       # x.5 rounds half to even
    image = pack([layer(np.ones((2, 2)), cb, bias=[0.75, -3 / 2**23])], EIEConfig(n_pes=1))
    assert image.layers[0].w_frac == 14 and image.program[0].shift == 14
    assert list(image.codebook[:4]) == [0, 16384, 2, 4]
    # bias: rint(b * 2**(8+14)): 0.75 * 2**22 = 3145728; -3/2**23 * 2**22 = -1.5 -> -2
    assert list(image.bias[0, :2]) == [3145728, -2]
    # ... but -1.0 fits at 15 fraction bits (-32768)
    cb[1] = -1.0
    assert pack([layer(np.ones((2, 2)), cb)], EIEConfig(n_pes=1)).layers[0].w_frac == 15
    # tiny centroids get w_frac = 30
    cb = np.zeros(16)
    cb[1] = 2.0**-16
    image = pack([layer(np.ones((1, 1)), cb)], EIEConfig(n_pes=1))
    assert image.layers[0].w_frac == 30 and image.codebook[1] == 2**14


def test_codebook_slots_and_unpack_values():
    rng = np.random.default_rng(5)
    layers = random_stack(rng, [9, 7, 5], 0.5)
    cfg = EIEConfig(n_pes=3, acc_depth=2)
    image = pack(layers, cfg)
    values, biases = unpack_values(image)
    for k, lay in enumerate(layers):
        q = np.rint(lay.codebook * 2.0 ** image.layers[k].w_frac).astype(np.int64)
        assert list(image.codebook[k * 16:(k + 1) * 16]) == list(q)
        assert np.array_equal(values[k], q[lay.indices])
        qb = (np.zeros(lay.n_out) if lay.bias is None
              else np.rint(lay.bias * 2.0 ** (8 + image.layers[k].w_frac)))
        assert np.array_equal(biases[k], qb.astype(np.int64))
    assert not image.codebook[2 * 16:].any()


# ---- properties --------------------------------------------------------------------------------
@st.composite
def stacks(draw):
    n_layers = draw(st.integers(1, 3))
    dims = draw(st.lists(st.integers(1, 70), min_size=n_layers + 1, max_size=n_layers + 1))
    density = draw(st.one_of(st.sampled_from([0.0, 1.0, 0.02]), st.floats(0.0, 1.0)))
    n_pes = draw(st.one_of(st.sampled_from([1, 2, 3, 256]), st.integers(1, 256)))
    # small acc_depth -> many tiles; large -> long columns with zero runs > 15
    acc_depth = draw(st.one_of(st.integers(1, 8), st.integers(16, 80)))
    seed = draw(st.integers(0, 2**32 - 1))
    return dims, density, n_pes, acc_depth, seed


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stacks())
def test_pack_unpack_identity(case):
    dims, density, n_pes, acc_depth, seed = case
    rng = np.random.default_rng(seed)
    layers = random_stack(rng, dims, density)
    if dims[1] > 20:
        # columns with one non-zero at the very end / two far apart: long zero runs
        layers[0].indices[:, 0] = 0
        layers[0].indices[-1, 0] = 15
        layers[0].indices[:, -1] = 0
        layers[0].indices[[0, -1], -1] = 1
    cfg = dataclasses.replace(ROOMY, n_pes=n_pes, acc_depth=acc_depth)
    image = pack(layers, cfg)
    decoded = unpack(image)
    for lay, got in zip(layers, decoded, strict=True):
        assert got.dtype == np.uint8
        assert np.array_equal(got, lay.indices)
    total = sum(int(np.count_nonzero(lay.indices)) for lay in layers)
    assert sum(info.nnz for info in image.layers) == total
    assert sum(pe["entries"] - pe["padding"] for pe in image.stats["pes"]) == total


@pytest.mark.parametrize("seed", range(12))
def test_pack_equals_reference(seed):
    rng = np.random.default_rng(100 + seed)
    dims = list(rng.integers(1, 50, rng.integers(2, 5)))
    density = [0.0, 0.05, 0.3, 1.0][seed % 4]
    n_pes = int(rng.choice([1, 1, 2, 3, 4, 7, 64]))
    acc_depth = int(rng.choice([1, 3, 5, 32, 64]))
    cfg = dataclasses.replace(ROOMY, n_pes=n_pes, acc_depth=acc_depth)
    layers = random_stack(rng, dims, density)
    fast, ref = pack(layers, cfg), pack_reference(layers, cfg)
    for name in ("spmat", "ptr_even", "ptr_odd", "bias", "codebook"):
        assert np.array_equal(getattr(fast, name), getattr(ref, name)), name
    assert fast.program == ref.program
    assert fast.layers == ref.layers
    assert fast.stats == ref.stats
    for k in range(len(layers)):
        assert np.array_equal(spec_decode(fast, k), layers[k].indices)


# ---- errors ------------------------------------------------------------------------------------
def test_capacity_spmat_names_memory_pe_and_bytes():
    # PE 1 owns the odd rows; make them dense: 2 local rows x 40 cols = 80 entries = 10 words
    # against spmat_depth 4 words. PE 0 has nothing.
    idx = np.zeros((4, 40), np.uint8)
    idx[1::2] = 1
    cfg = EIEConfig(n_pes=2, spmat_depth=4)
    with pytest.raises(CapacityError, match=r"pe_spmat of PE 1 \(layer fc tile 0\): "
                                            r"--spmat-depth 10 needed, 4 configured$"):
        pack([layer(idx)], cfg)
    with pytest.raises(CapacityError, match="pe_spmat of PE 1"):
        pack_reference([layer(idx)], cfg)


def test_capacity_other_memories():
    ones = np.ones((4, 20), np.uint8)
    # pointers: 1 tile x ceil(21/2) = 11 addresses > 8
    with pytest.raises(CapacityError, match=r"pe_ptr_even of PE 0 \(layer fc tile 0\): "
                                            r"--ptr-depth 11 needed, 8 configured$"):
        pack([layer(ones)], EIEConfig(n_pes=2, ptr_depth=8))
    # pointer values: 20 entries in one tile of PE 0 do not fit 4-bit pointers
    # (20 = 0b10100 needs 5 bits)
    with pytest.raises(CapacityError, match=r"pe_ptr_even of PE 0.*20 entries.*"
                                            r"--pointer-bits 5 needed, 4 configured$"):
        pack([layer(ones)], EIEConfig(n_pes=4, pointer_bits=4))
    # bias: 10 rows over 1 PE with acc_depth 4 -> 3 tiles, 4+4+2 = 10 entries > 8
    with pytest.raises(CapacityError, match=r"pe_bias of PE 0 \(layer fc tile 2\): "
                                            r"--bias-depth 10 needed, 8 configured$"):
        pack([layer(np.ones((10, 2)), bias=np.zeros(10))],
             EIEConfig(n_pes=1, acc_depth=4, bias_depth=8))
    with pytest.raises(CapacityError, match=r"program needs 3 tile descriptors: "
                                            r"--max-tiles 3 needed, 2 configured$"):
        pack([layer(np.ones((10, 2)))], EIEConfig(n_pes=1, acc_depth=4, max_tiles=2))
    with pytest.raises(CapacityError, match=r"codebook needs 3 layer slots: "
                                            r"--max-layers 3 needed, 2 configured$"):
        pack([layer(np.ones((2, 2)))] * 3, EIEConfig(n_pes=1, max_layers=2))
    # 17 inputs over 2 PEs: ceil(17/2) = 9 words per PE > 8
    with pytest.raises(CapacityError, match=r"activation buffer of PE 0 \(layer fc input of "
                                            r"17 values over 2 PEs\): --act-depth 9 needed, "
                                            r"8 configured$"):
        pack([layer(np.ones((2, 17)))], EIEConfig(n_pes=2, act_depth=8))
    with pytest.raises(CapacityError, match="bias of layer fc row 1"):
        pack([layer(np.ones((2, 2)), bias=[0.0, 1e9])], EIEConfig(n_pes=1))
    big = np.zeros(16)
    big[1] = 40000.0
    with pytest.raises(CapacityError, match="codebook"):
        pack([layer(np.ones((2, 2)), big)], EIEConfig(n_pes=1))


def test_model_errors():
    cfg = EIEConfig(n_pes=2)
    with pytest.raises(ModelError, match="does not match"):
        pack([layer(np.ones((3, 4))), layer(np.ones((2, 5)))], cfg)
    with pytest.raises(ModelError):
        pack([], cfg)
    bad = np.zeros(16)
    bad[1] = np.nan
    with pytest.raises(ModelError, match="NaN"):
        pack([layer(np.ones((2, 2)), bad)], cfg)
    with pytest.raises(ModelError, match=r"codebook\[0\]"):
        pack([layer(np.ones((2, 2)), np.ones(16))], cfg)
    with pytest.raises(ModelError, match="indices"):
        pack([QuantLayer("fc", np.full((2, 2), 5, np.uint8), np.zeros(4), None, True)], cfg)
    with pytest.raises(ModelError, match="bias shape"):
        pack([layer(np.ones((2, 2)), bias=[1.0])], cfg)


def test_medium_layer_equals_reference():
    # bigger than the property cases: many words per PE, several tiles, 16 PEs
    rng = np.random.default_rng(42)
    layers = random_stack(rng, [300, 700, 90], 0.11)
    cfg = EIEConfig(n_pes=16, acc_depth=16, act_depth=64, spmat_depth=4096, ptr_depth=4096)
    fast, ref = pack(layers, cfg), pack_reference(layers, cfg)
    for name in ("spmat", "ptr_even", "ptr_odd", "bias", "codebook"):
        assert np.array_equal(getattr(fast, name), getattr(ref, name)), name
    assert fast.program == ref.program and len(fast.program) == 4
    for lay, got in zip(layers, unpack(fast), strict=True):
        assert np.array_equal(got, lay.indices)


def test_unpack_rejects_corrupt_pointers():
    from contract.image_read import ImageError

    idx = np.ones((4, 6), np.uint8)
    image = pack([layer(idx)], EIEConfig(n_pes=2))
    image.ptr_even[0, 1] = 0                 # P_2 < P_1
    with pytest.raises(ImageError, match="column pointers"):
        unpack(image)
    image = pack([layer(idx)], EIEConfig(n_pes=2))
    image.spmat[1, 0] = 0xF0F0F0F0F0F0F0F0   # padding runs rows past the tile ...
    image.spmat[1, 0] |= 0x01                # ... ending in a real entry
    with pytest.raises(ImageError, match="past the tile"):
        unpack(image)
    # 3 rows on 2 PEs: PE 1 holds only row 1 (local row 0) but has 2 accumulators; moving
    # its entry to local row 1 stays in the tile and lands on row 3, past the layer.
    image = pack([layer(np.ones((3, 1), np.uint8))], EIEConfig(n_pes=2))
    assert int(image.spmat[1, 0]) == 0x01
    image.spmat[1, 0] = 0x11
    with pytest.raises(ImageError, match=r"PE 1 has a non-zero entry at row 3, past the "
                                         r"layer's 3 rows"):
        unpack(image)


def test_wrap_warning(caplog):
    # 1 weight of value 1.0 (w_frac 14 -> 16384) times a full-scale input 2**15 = 2**29:
    # no wrap with 32-bit accumulators; 8 such weights reach 2**32 > 2**31 -> warning.
    cb = np.zeros(16)
    cb[1] = 1.0
    # The bound is logged at INFO only: it is not an observed wrap (eie pack --data counts).
    with caplog.at_level("INFO", logger="compiler.pack"):
        pack([layer(np.ones((1, 1)), cb)], EIEConfig(n_pes=1))
    assert not caplog.records
    with caplog.at_level("INFO", logger="compiler.pack"):
        pack([layer(np.ones((1, 8)), cb, name="big")], EIEConfig(n_pes=1))
    assert "layer big" in caplog.text and "wrap" in caplog.text
    assert {record.levelname for record in caplog.records} == {"INFO"}


@pytest.mark.parametrize("weight_bits, index_bits, per_word",
                         [(3, 3, 4), (2, 2, 16), (5, 4, 2), (2, 5, 1)])
def test_other_entry_formats(weight_bits, index_bits, per_word):
    # entries of weight_bits + index_bits bits, per_word to a word: padding every 2**index_bits
    cfg = dataclasses.replace(ROOMY, n_pes=2, acc_depth=40, weight_bits=weight_bits,
                              index_bits=index_bits, entries_per_word=per_word)
    rng = np.random.default_rng(weight_bits)
    size = 1 << weight_bits
    layers = []
    for k, (n_in, n_out) in enumerate([(30, 70), (70, 20)]):
        idx = np.where(rng.random((n_out, n_in)) < 0.1, rng.integers(1, size, (n_out, n_in)), 0)
        layers.append(layer(idx, codebook(rng, size), name=f"fc{k}"))
    fast, ref = pack(layers, cfg), pack_reference(layers, cfg)
    for name in ("spmat", "ptr_even", "ptr_odd", "bias", "codebook"):
        assert np.array_equal(getattr(fast, name), getattr(ref, name)), name
    for lay, got in zip(layers, unpack(fast), strict=True):
        assert np.array_equal(got, lay.indices)
    # a lone non-zero at local row 34 of PE 0 (row 68): 34 zeros -> 34 // 2**ib paddings
    one = np.zeros((70, 1), np.uint8)
    one[68, 0] = 1
    image = pack([layer(one, codebook(rng, size))], cfg)
    step = 1 << index_bits
    n_pad, z = divmod(34, step)
    eb = weight_bits + index_bits
    expect = [(step - 1) << weight_bits] * n_pad + [1 | (z << weight_bits)]
    word = 0
    for e, value in enumerate(expect[:per_word]):
        word |= value << (eb * e)
    assert int(image.spmat[0, 0]) == word
    assert int(image.ptr_odd[0, 0]) == len(expect)


def test_all_zero_weights_with_a_bias_pack():
    # Pruned to nothing: the codebook alone would give w_frac 30, which leaves the bias no
    # room in a 32-bit accumulator; the bias decides (docs/numerics.md, "Choice of w_frac").
    import golden

    cfg = EIEConfig(n_pes=2)
    cb = np.zeros(16)
    bias = np.array([3.25, -1.5, 0.0])
    image = pack([QuantLayer("dead", np.zeros((3, 4), np.uint8), cb, bias, False)], cfg)
    # the largest w_frac with 3.25 * 2**(8 + w_frac) < 2**31: 8 + w_frac <= 29
    assert image.layers[0].w_frac == 21
    q = golden.run(image, np.zeros(4, np.int64)).q
    assert q.tolist() == [3.25 * 256, -1.5 * 256, 0]

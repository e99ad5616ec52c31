"""Huffman storage figure for the packed entry streams."""

import numpy as np
import pytest

from compiler.huffman import canonical_codes, huffman_bits, huffman_code_lengths, huffman_report

TABLE_4BIT = 16 * 4  # one 4-bit code length per symbol of the 16-symbol alphabet


def test_known_code_lengths():
    assert huffman_code_lengths({"a": 1, "b": 1, "c": 2, "d": 4}) == {"a": 3, "b": 3, "c": 2,
                                                                      "d": 1}


def test_known_bits():
    symbols = np.array([7, 9, 3, 3, 5, 5, 5, 5])  # frequencies 1, 1, 2, 4
    payload = 1 * 3 + 1 * 3 + 2 * 2 + 4 * 1
    assert huffman_bits(symbols, table=False) == payload == 14
    assert huffman_bits(symbols) == payload + TABLE_4BIT


def test_uniform_distribution_is_flat():
    symbols = np.repeat(np.arange(16), 10)  # 16 equally likely symbols -> 4 bits each
    assert huffman_bits(symbols, table=False) == 160 * 4


def test_single_symbol_and_empty():
    assert huffman_bits(np.zeros(10, int), table=False) == 10
    assert huffman_bits(np.array([], int)) == 0


def test_out_of_range():
    with pytest.raises(ValueError):
        huffman_bits(np.array([16]))
    with pytest.raises(ValueError):
        huffman_bits(np.array([-1]))


def test_codes_are_prefix_free_and_optimal():
    rng = np.random.default_rng(0)
    counts = {s: int(c) for s, c in enumerate(rng.integers(1, 1000, 16))}
    lengths = huffman_code_lengths(counts)
    assert sum(2.0 ** -n for n in lengths.values()) == 1.0  # complete code (Kraft)
    codes = canonical_codes(lengths)
    words = sorted(codes.values())
    for a, b in zip(words, words[1:], strict=False):
        assert not b.startswith(a)
    assert all(len(codes[s]) == lengths[s] for s in counts)
    # optimal: never worse than the entropy + 1 bit per symbol, never below the entropy
    total = sum(counts.values())
    p = np.array(list(counts.values())) / total
    entropy = -(p * np.log2(p)).sum() * total
    payload = sum(counts[s] * lengths[s] for s in counts)
    assert entropy <= payload < entropy + total


def test_report():
    v = np.array([1, 1, 1, 1, 2, 2, 3, 0])
    z = np.array([0, 0, 0, 0, 0, 0, 0, 0])
    r = huffman_report(v, z)
    assert r["entries"] == 8 and r["raw_bits"] == 64
    assert r["huffman_v_bits"] == 4 * 1 + 2 * 2 + 1 * 3 + 1 * 3 + TABLE_4BIT
    assert r["huffman_z_bits"] == 8 + TABLE_4BIT
    assert r["huffman_bits"] == r["huffman_v_bits"] + r["huffman_z_bits"]
    assert r["ratio"] == pytest.approx(64 / r["huffman_bits"])
    with pytest.raises(ValueError):
        huffman_report(v, z[:3])


def test_inspect_codes_padding_entries():
    # docs/image-format.md's example column: v=3 at row 0 and v=5 at row 18 are stored as
    # (3,0), (0,15), (5,1). The storage figure codes all three stored entries: v = 3, 0, 5
    # and z = 0, 15, 1, three distinct symbols each (code lengths 1, 2, 2 -> 5 bits).
    from contract.config import EIEConfig
    from contract.image import Descriptor, LayerInfo, PackedImage
    from eie.inspect import image_stats, tile_entries

    cfg = EIEConfig(n_pes=1, acc_depth=32, act_depth=16, spmat_depth=8, ptr_depth=8,
                    bias_depth=8, max_layers=2, max_tiles=4)
    image = PackedImage.empty(cfg, [LayerInfo("fc", 1, 19, 0, 0, False, False, [0.0] * 16,
                                              0, 1)],
                              [Descriptor(1, 19, 0, 0, 0, 0, 0, 0, False, False, True, True)])
    image.spmat[0, 0] = 0x15_F0_03
    image.ptr_odd[0, 0] = 3
    assert tile_entries(image, 0, 0, 1).tolist() == [0x03, 0xF0, 0x15]
    stats = image_stats(image)
    assert stats.layers[0]["nnz"] == 2 and stats.layers[0]["padding"] == 1
    assert stats.totals["huffman_v_bits"] == 5 + TABLE_4BIT
    assert stats.totals["huffman_z_bits"] == 5 + TABLE_4BIT

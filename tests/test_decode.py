"""The image-format decoder (contract/decode.py) on literal memories written from
docs/image-format.md, and every range check it promises. Expected values are worked out by
hand from the format page, never taken from the packer or the decoder."""

import numpy as np
import pytest

import golden
from contract.config import EIEConfig
from contract.decode import (
    PEEntries,
    column_pointers,
    decode_pe,
    entry_positions,
    raw_entries,
    split_entries,
)
from contract.errors import ImageDecodeError, ImageError
from contract.image import Descriptor, PackedImage

# Default entry format: 4-bit v, 4-bit z, 8 entries to a 64-bit word, 16-bit pointers.
CFG = EIEConfig(n_pes=2, acc_depth=32, act_depth=16, spmat_depth=8, ptr_depth=8,
                bias_depth=8, max_layers=2, max_tiles=4)


def desc(**fields) -> Descriptor:
    base = dict(in_local=2, out_local=20, out_base=0, ptr_base=1, spmat_base=2, bias_base=0,
                slot=0, shift=0, relu=False, bias_en=False, swap=True, last=True)
    return Descriptor(**{**base, **fields})


def doc_image() -> PackedImage:
    """PE 0: column 0 holds the doc's example (v=3 at local row 0, v=5 at row 18: entries
    (3,0), (0,15), (5,1) = bytes 03 f0 15), column 1 is empty, column 2 holds v=7 at row 2
    and v=1 at row 3: (7,2), (1,0) = bytes 27 01. PE 1 has no entries.
    Pointers at ptr_base 1: P = 0, 3, 3, 5 -> even bank [1]=0, [2]=3; odd bank [1]=3, [2]=5.
    """
    image = PackedImage.empty(CFG)
    # entry e in bits [8e+7 : 8e] of word spmat_base + e div 8; spmat_base = 2
    image.spmat[0, 2] = 0x01_27_15_F0_03
    image.ptr_even[0, 1:3] = [0, 3]
    image.ptr_odd[0, 1:3] = [3, 5]
    image.spmat[1, 2] = 0xFF          # beyond PE 1's pointers (all 0): never read
    return image


def test_error_types():
    assert issubclass(ImageDecodeError, ImageError) and issubclass(ImageDecodeError, ValueError)
    assert golden.ImageDecodeError is ImageDecodeError


def test_doc_example_step_by_step():
    image, d = doc_image(), desc()
    pointers = column_pointers(image, d, 3)
    assert pointers.dtype == np.int64
    assert pointers.tolist() == [[0, 3, 3, 5], [0, 0, 0, 0]]
    raw = raw_entries(image, d, 0, 5)
    assert raw.tolist() == [0x03, 0xF0, 0x15, 0x27, 0x01]
    v, z = split_entries(raw, CFG)
    assert v.tolist() == [3, 0, 5, 7, 1] and z.tolist() == [0, 15, 1, 2, 0]
    rows, cols = entry_positions(z, pointers[0])
    # r_k = r_{k-1} + z_k + 1 from r_{-1} = -1: 0, 16, 18 in column 0; 2, 3 in column 2
    assert rows.tolist() == [0, 16, 18, 2, 3] and cols.tolist() == [0, 0, 0, 2, 2]
    assert raw_entries(image, d, 1, 0).size == 0


def test_decode_pe_keeps_padding_and_z():
    image, d = doc_image(), desc()
    entries = decode_pe(image, d, 0, column_pointers(image, d, 3)[0])
    assert isinstance(entries, PEEntries)
    assert entries.v.tolist() == [3, 0, 5, 7, 1]
    assert entries.z.tolist() == [0, 15, 1, 2, 0]
    assert entries.rows.tolist() == [0, 16, 18, 2, 3]
    assert entries.cols.tolist() == [0, 0, 0, 2, 2]
    empty = decode_pe(image, d, 1, column_pointers(image, d, 3)[1])
    assert all(a.size == 0 for a in empty)


def test_entries_span_words_first_in_lsbs():
    # 10 entries (v = 1..10 mod 16, z = 0) in one column: word 0 holds entries 0..7, word 1
    # entries 8, 9 in its two lowest bytes.
    image = PackedImage.empty(CFG)
    image.spmat[0, 0] = 0x08_07_06_05_04_03_02_01
    image.spmat[0, 1] = 0x0A_09
    image.ptr_even[0, 0] = 0
    image.ptr_odd[0, 0] = 10
    d = desc(ptr_base=0, spmat_base=0)
    entries = decode_pe(image, d, 0, column_pointers(image, d, 1)[0])
    assert entries.v.tolist() == list(range(1, 11))
    assert entries.rows.tolist() == list(range(10))


def test_other_entry_format():
    # 3-bit v, 3-bit z, 4 entries of 6 bits in a 24-bit word.
    cfg = EIEConfig(n_pes=1, weight_bits=3, index_bits=3, entries_per_word=4, acc_depth=32,
                    act_depth=16, spmat_depth=8, ptr_depth=8, bias_depth=8, max_layers=2,
                    max_tiles=4)
    image = PackedImage.empty(cfg)
    # entries (5, 7), (0, 7), (2, 1): rows 7, 15, 17
    image.spmat[0, 0] = (5 | 7 << 3) | (0 | 7 << 3) << 6 | (2 | 1 << 3) << 12
    image.ptr_odd[0, 0] = 3
    d = desc(ptr_base=0, spmat_base=0)
    entries = decode_pe(image, d, 0, column_pointers(image, d, 1)[0])
    assert entries.v.tolist() == [5, 0, 2] and entries.z.tolist() == [7, 7, 1]
    assert entries.rows.tolist() == [7, 15, 17]


def test_pointer_address_past_ptr_depth():
    image = doc_image()
    # 7 columns: P_7 in the odd bank at ptr_base + 3 = 8 = ptr_depth
    with pytest.raises(ImageDecodeError, match=r"^here: pointer address 8 is past ptr_depth 8$"):
        column_pointers(image, desc(ptr_base=5), 7, where="here")
    column_pointers(image, desc(ptr_base=4), 7)       # P_7 at address 7: fits


def test_decreasing_pointers_name_the_lowest_pe():
    image = doc_image()
    image.ptr_odd[1, 1] = 4            # PE 1: P = 0, 4, 0, 0
    image.ptr_even[0, 2] = 1           # PE 0: P = 0, 3, 1, 5
    with pytest.raises(ImageDecodeError, match=r"^t: PE 0 column pointers decrease$"):
        column_pointers(image, desc(), 3, where="t")


def test_first_pointer_not_zero():
    image = doc_image()
    image.ptr_even[1, 1:3] = [2, 2]
    image.ptr_odd[1, 1:3] = [2, 2]
    with pytest.raises(ImageDecodeError, match=r"^t: PE 1 first pointer P_0 is 2, not 0$"):
        column_pointers(image, desc(), 3, where="t")


def test_entries_past_spmat_depth():
    image = doc_image()
    # 5 entries need one word: at spmat_base 7 it is the last word, at 8 past the end
    raw_entries(image, desc(spmat_base=7), 0, 5)
    image.ptr_odd[0, 2] = 9                              # 9 entries: two words from base 7
    pointers = column_pointers(image, desc(spmat_base=7), 3)
    with pytest.raises(ImageDecodeError, match=r"^t: PE 0 entries run past spmat_depth 8$"):
        decode_pe(image, desc(spmat_base=7), 0, pointers[0], where="t")


def test_nonzero_entry_past_out_local():
    image, d = doc_image(), desc(out_local=18)           # row 18 holds v=5
    pointers = column_pointers(image, d, 3)
    with pytest.raises(ImageDecodeError,
                       match=r"^t: PE 0 has a non-zero entry at local row 18, past the tile "
                             r"\(out_local 18\)$"):
        decode_pe(image, d, 0, pointers[0], where="t")
    decode_pe(image, desc(out_local=19), 0, pointers[0])
    # A padding entry past out_local adds nothing and is not an error.
    image.spmat[0, 2] = 0xF0_F0_F0_F0_01               # v=1 at row 0, then padding to 64
    image.ptr_odd[0, 1:3] = [5, 5]
    image.ptr_even[0, 2] = 5
    entries = decode_pe(image, desc(out_local=1), 0, column_pointers(image, d, 3)[0])
    assert entries.rows.tolist() == [0, 16, 32, 48, 64]

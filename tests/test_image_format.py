"""The tile-descriptor bit layout against docs/image-format.md ("Program"), by hand.

Every expected word here is written out bit by bit from the doc's table, never produced by
``Descriptor.encode``: encode and decode invert each other, so a round trip alone cannot
see two fields trade places. The config ``DISTINCT`` gives every multi-bit field its own
width, so each field sits at a position no other field could take.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from compiler.pack import pack
from compiler.types import QuantLayer
from contract.config import EIEConfig
from contract.image import Descriptor
from contract.image_read import read_image
from contract.image_write import write_image

DOC = Path(__file__).resolve().parents[1] / "docs" / "image-format.md"

# in_local bits(128) = 8, out_local bits(8) = 4, out_base clog2(128) = 7,
# ptr_base clog2(512) = 9, spmat_base clog2(1024) = 10, bias_base clog2(32) = 5,
# slot clog2(4) = 2, shift 6, four 1-bit flags: 55 bits.
DISTINCT = EIEConfig(n_pes=2, act_depth=128, acc_depth=8, ptr_depth=512, spmat_depth=1024,
                     bias_depth=32, max_layers=4)

# The doc's table evaluated by hand for DISTINCT: (field, width, lowest bit).
DISTINCT_LAYOUT = [
    ("in_local", 8, 0), ("out_local", 4, 8), ("out_base", 7, 12), ("ptr_base", 9, 19),
    ("spmat_base", 10, 28), ("bias_base", 5, 38), ("slot", 2, 43), ("shift", 6, 45),
    ("relu", 1, 51), ("bias_en", 1, 52), ("swap", 1, 53), ("last", 1, 54),
]
# ... and for the default config (the doc's bracketed widths and bit ranges).
DEFAULT_LAYOUT = [
    ("in_local", 9, 0), ("out_local", 6, 9), ("out_base", 8, 15), ("ptr_base", 10, 23),
    ("spmat_base", 11, 33), ("bias_base", 8, 44), ("slot", 3, 52), ("shift", 6, 55),
    ("relu", 1, 61), ("bias_en", 1, 62), ("swap", 1, 63), ("last", 1, 64),
]


def _doc_table():
    """Rows of the Program table: (field, kind, argument, default width, default bits)."""
    section = DOC.read_text().split("## Program (`program`)", 1)[1]
    rows = []
    pattern = (r"\| `(\w+)` \| (?:(bits|clog2)\((\w+)\) \[(\d+)\]|(\d+)) "
               r"\| \[(\d+)(?::(\d+))?\] \| [^|]+ \|")
    for line in section.splitlines():
        match = re.fullmatch(pattern, line)
        if match:
            name, kind, arg, bracket, fixed, high, low = match.groups()
            width = int(bracket or fixed)
            low = int(high) if low is None else int(low)
            rows.append((name, kind, arg, width, (int(high), low)))
        elif rows:
            break
    assert len(rows) == 12, "docs/image-format.md's Program table did not parse"
    return rows


def _doc_widths(config: EIEConfig) -> list[tuple[str, int]]:
    """The doc's width formulas, evaluated as the doc defines bits() and clog2()."""
    out = []
    for name, kind, arg, width, _bits in _doc_table():
        if kind == "bits":
            width = getattr(config, arg).bit_length()
        elif kind == "clog2":
            width = max(1, math.ceil(math.log2(getattr(config, arg))))
        out.append((name, width))
    return out


def test_doc_table_is_self_consistent():
    # the bracketed default widths, the bit ranges and the formulas agree with each other
    rows = _doc_table()
    low = 0
    for (name, _kind, _arg, width, (high, lo)), (doc_name, doc_width) in zip(
            rows, _doc_widths(EIEConfig()), strict=True):
        assert name == doc_name and width == doc_width, name
        assert (lo, high) == (low, low + width - 1), name
        low += width
    assert low == 65
    assert [(name, width, lo) for name, _k, _a, width, (_h, lo) in rows] == DEFAULT_LAYOUT


@pytest.mark.parametrize("config, layout", [(EIEConfig(), DEFAULT_LAYOUT),
                                            (DISTINCT, DISTINCT_LAYOUT)],
                         ids=["default", "distinct"])
def test_descriptor_layout_is_the_doc_table(config, layout):
    expect = [(name, width) for name, width, _low in layout]
    assert _doc_widths(config) == expect
    # order and widths, not just the set of fields
    assert list(config.descriptor_layout().items()) == expect
    assert config.descriptor_bits == sum(width for _name, width, _low in layout)


def test_widths_are_distinct_in_the_distinct_config():
    widths = [w for _name, w, _low in DISTINCT_LAYOUT if w > 1]
    assert len(set(widths)) == len(widths)


# Field values chosen so each has its top bit set and a pattern no other field shares.
HAND = Descriptor(in_local=0b10010110, out_local=0b1011, out_base=0b1100101,
                  ptr_base=0b101101001, spmat_base=0b1100111010, bias_base=0b10111,
                  slot=0b10, shift=0b101101, relu=True, bias_en=False, swap=True, last=True)
# MSB first, one group per field:
#   last swap bias_en relu shift   slot bias_base spmat_base  ptr_base  out_base out_local in_local
#   [54] [53] [52]   [51] [50:45] [44:43] [42:38] [37:28]    [27:19]   [18:12]  [11:8]    [7:0]
HAND_WORD = 0b1_1_0_1_101101_10_10111_1100111010_101101001_1100101_1011_10010110

# The same descriptor in the default config (fields as in docs/image-format.md's bracketed
# ranges), each value zero-extended to its wider default field:
#   last, swap, bias_en, relu [64:61] | shift [60:55] | slot [54:52] | bias_base [51:44] |
#   spmat_base [43:33] | ptr_base [32:23] | out_base [22:15] | out_local [14:9] | in_local [8:0]
HAND_WORD_DEFAULT = 0b1_1_0_1_101101_010_00010111_01100111010_0101101001_01100101_001011_010010110


def test_encode_gives_the_hand_encoded_word():
    # the binary literals above, in hex (55 and 65 bits)
    assert HAND_WORD == 0x6DB5F3AB4E5B96
    assert HAND_WORD_DEFAULT == 0x1B6A17674B4B29696
    assert HAND.encode(DISTINCT) == HAND_WORD
    assert HAND.encode(EIEConfig()) == HAND_WORD_DEFAULT


def test_decode_inverts_the_hand_encoded_word():
    assert Descriptor.decode(HAND_WORD, DISTINCT) == HAND
    assert Descriptor.decode(HAND_WORD_DEFAULT, EIEConfig()) == HAND
    # one bit per field: each field decodes from its own lowest bit only
    for name, width, low in DISTINCT_LAYOUT:
        fields = Descriptor.decode(1 << low, DISTINCT)
        assert [n for n in DISTINCT_LAYOUT if getattr(fields, n[0])] == [(name, width, low)]


def test_encode_rejects_a_value_wider_than_its_field():
    with pytest.raises(ValueError, match="ptr_base=512 does not fit 9 bits"):
        dataclasses.replace(HAND, ptr_base=512).encode(DISTINCT)


# ---- a real image: compiler.pack on a tiny model, then its program memory --------------

def _tiny_model():
    """fc_a 5 -> 20 (dense, bias, ReLU) and fc_b 20 -> 3 (sparse, no bias)."""
    a = QuantLayer("fc_a", np.ones((20, 5), np.uint8), np.array([0.0, 0.5]),
                   np.full(20, 0.25), True)
    b_idx = np.array([[1 if j % 3 == i else 0 for j in range(20)] for i in range(3)],
                     np.uint8)
    b = QuantLayer("fc_b", b_idx, np.array([0.0, 1.5]), None, False)
    return [a, b]


# By hand from docs/image-format.md ("Allocation rules") for DISTINCT (2 PEs, 8
# accumulators, so 16 rows per tile) and docs/numerics.md ("Choice of w_frac"):
# - fc_a has 20 rows -> tiles of 16 and 4 rows: out_local 8 and 2, out_base 0 and 8;
#   in_local = ceil(5/2) = 3. w_frac: 0.5 * 2^15 = 16384 fits 16 bits, 0.5 * 2^16 does not
#   -> shift 15. ptr_base 0, then ceil((5+1)/2) = 3. Every weight is non-zero, so tile 0
#   gives each PE 8 rows x 5 columns = 40 entries = 5 words (spmat_base of tile 1 = 5)
#   and tile 1 gives 2 x 5 = 10 entries = 2 words. bias_base 0, then 8.
# - fc_b: one tile, in_local = ceil(20/2) = 10, out_local = ceil(3/2) = 2; ptr_base 3 + 3;
#   spmat_base 5 + 2; no bias -> bias_base 0, bias_en 0; slot 1; w_frac 14 (1.5 * 2^14 =
#   24576 fits, 1.5 * 2^15 does not); last tile of the program.
TINY_PROGRAM = [
    Descriptor(in_local=3, out_local=8, out_base=0, ptr_base=0, spmat_base=0, bias_base=0,
               slot=0, shift=15, relu=True, bias_en=True, swap=False, last=False),
    Descriptor(in_local=3, out_local=2, out_base=8, ptr_base=3, spmat_base=5, bias_base=8,
               slot=0, shift=15, relu=True, bias_en=True, swap=True, last=False),
    Descriptor(in_local=10, out_local=2, out_base=0, ptr_base=6, spmat_base=7, bias_base=0,
               slot=1, shift=14, relu=False, bias_en=False, swap=True, last=True),
]
# The three words, MSB first in the field groups of DISTINCT_LAYOUT:
#    last swap bias_en relu shift  slot bias_base spmat_base ptr_base out_base out_local in_local
TINY_WORDS = [
    0b0_0_1_1_001111_00_00000_0000000000_000000000_0000000_1000_00000011,
    0b0_1_1_1_001111_00_01000_0000000101_000000011_0001000_0010_00000011,
    0b1_1_0_0_001110_01_00000_0000000111_000000110_0000000_0010_00001010,
]
# ... as the 14-digit lines of program.mem (55 bits -> ceil(55/4) = 14 hex digits)
TINY_MEM_LINES = ["19e00000000803", "39e20050188203", "61c8007030020a"]


def test_packed_image_descriptor_words(tmp_path):
    image = pack(_tiny_model(), DISTINCT)
    assert image.program == TINY_PROGRAM
    assert [d.encode(DISTINCT) for d in image.program] == TINY_WORDS
    assert [int(line, 16) for line in TINY_MEM_LINES] == TINY_WORDS
    assert [Descriptor.decode(w, DISTINCT) for w in TINY_WORDS] == TINY_PROGRAM
    # on disk: the program memory file and the manifest's `word`
    write_image(image, tmp_path / "img", formats=("mem", "bin"))
    lines = (tmp_path / "img" / "program.mem").read_text().splitlines()
    assert lines[:3] == TINY_MEM_LINES
    assert lines[3:] == ["0" * 14] * (DISTINCT.max_tiles - 3)
    raw = (tmp_path / "img" / "program.bin").read_bytes()
    # .bin: 7 bytes per 55-bit word, little-endian
    assert raw[7:14] == bytes.fromhex("39e20050188203")[::-1]
    manifest = json.loads((tmp_path / "img" / "manifest.json").read_text())
    assert [entry["word"] for entry in manifest["program"]] == [
        "0x" + line for line in TINY_MEM_LINES]
    assert read_image(tmp_path / "img").program == TINY_PROGRAM

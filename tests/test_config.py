import dataclasses
import json

import pytest

from contract.config import ConfigError, EIEConfig
from contract.image import Descriptor


def test_defaults_are_paper_pe_parameters():
    c = EIEConfig()
    assert (c.weight_bits, c.index_bits, c.entries_per_word, c.word_bits) == (4, 4, 8, 64)
    assert c.queue_depth == 8 and c.pointer_bits == 16 and c.codebook_size == 16
    assert c.max_run == 15
    p = EIEConfig.paper()
    assert p.n_pes == 64 and p.spmat_depth * p.word_bits // 8 == 131072
    assert 2 * p.ptr_depth * p.pointer_bits // 8 == 32768
    assert p.act_depth * p.act_bits // 8 == 2048 and p.acc_depth == 64


@pytest.mark.parametrize("field,value,message", [
    ("n_pes", 0, "n_pes must be a positive integer, not 0"),
    ("queue_depth", -1, "queue_depth must be a positive integer, not -1"),
    ("act_frac", 16, "act_frac must be in [0, act_bits)"),
    ("acc_bits", 24, "must hold a full product"),
    ("weight_bits", 1, "at least 2"),
    ("n_pes", 2.5, "n_pes must be an integer, not 2.5"),
    ("n_pes", True, "n_pes must be an integer, not True"),
    # rules the RTL relies on (docs/layers.md, "Config rules")
    ("entries_per_word", 6, "entries_per_word must be a power of two (the spmat reader "
                            "splits an entry address into word and lane), not 6"),
    ("entries_per_word", 16, "an spmat word (16 entries of 8 bits = 128 bits) must fit the "
                             "64-bit host data port"),
    ("n_pes", 257, "n_pes must be at most 256 (the host address map's PE field), not 257"),
    ("spmat_depth", 1 << 18, "spmat_depth must be at most 2**17 (the host address map's "
                             "offset field), not 262144"),
    ("act_depth", (1 << 17) + 1, "act_depth must be at most 2**17"),
    ("max_layers", 1 << 14, "max_layers * 2**weight_bits must be at most 2**17"),
    ("broadcast_width", 0, "broadcast_width must be a positive integer, not 0"),
    ("broadcast_width", 9, "broadcast_width must be at most 8, not 9"),
    ("broadcast_width", 5, "broadcast_width (5) must not exceed n_pes (4) or queue_depth (8)"),
    ("broadcast_width", 3, "queue_depth (8) must be a multiple of broadcast_width (3)"),
])
def test_invalid_fields(field, value, message):
    with pytest.raises(ConfigError) as info:
        EIEConfig(**{field: value})
    assert message in str(info.value)


def test_roundtrip_and_id(tmp_path):
    c = EIEConfig(n_pes=3, queue_depth=5)
    path = tmp_path / "c.json"
    path.write_text(json.dumps(c.to_dict()))
    assert EIEConfig.load(path) == c
    assert EIEConfig.load(path).config_id == c.config_id
    assert dataclasses.replace(c, queue_depth=6).config_id != c.config_id
    with pytest.raises(ConfigError, match="unknown config field"):
        EIEConfig.from_dict({"n_pes": 2, "bogus": 1})
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        EIEConfig.load(path)


def test_broadcast_width_keeps_eie_ids():
    # config_id of the default and paper configs before broadcast_width existed (computed
    # at f32e3bb): images packed then still load.
    assert (EIEConfig().config_id, EIEConfig.paper().config_id) == (3679259727, 175707497)
    assert "broadcast_width" not in EIEConfig().to_dict()
    wide = EIEConfig(broadcast_width=2)
    assert wide.to_dict()["broadcast_width"] == 2 and wide.config_id != 3679259727
    assert EIEConfig.from_dict(wide.to_dict()) == wide


def test_descriptor_roundtrip_and_overflow():
    c = EIEConfig()
    d = Descriptor(in_local=256, out_local=32, out_base=255, ptr_base=1023,
                   spmat_base=2047, bias_base=7, slot=7, shift=63, relu=True,
                   bias_en=False, swap=True, last=True)
    word = d.encode(c)
    assert word < (1 << c.descriptor_bits)
    assert Descriptor.decode(word, c) == d
    # LSB-first order from docs/image-format.md: in_local occupies the lowest bits
    assert word & ((1 << c.descriptor_layout()["in_local"]) - 1) == 256
    assert word >> (c.descriptor_bits - 1) == 1  # `last` is the top bit
    with pytest.raises(ValueError, match="in_local=512 does not fit 9 bits"):
        dataclasses.replace(d, in_local=512).encode(c)


# The CLI's --config FILE / per-field flags are tested from the command line in
# tests/test_cli.py (test_config_file_and_flags, test_build_without_image_takes_the_flags).


def test_ese_channels_keep_one_broadcast():
    from contract.lstm_config import DEFAULT_CHANNEL, ESEConfig
    channel = dataclasses.replace(DEFAULT_CHANNEL, broadcast_width=2)
    with pytest.raises(ConfigError, match=r"^channel broadcast_width must be 1 \(the ESE "
                                          r"array broadcasts one column per cycle\), not 2$"):
        ESEConfig(channel=channel)

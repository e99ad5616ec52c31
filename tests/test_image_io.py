"""Image files: exact .mem/.coe/.bin encodings, write/read round trip, atomic writes and
every ImageError the reader promises (docs/image-format.md)."""

import dataclasses
import hashlib
import json

import numpy as np
import pytest

from compiler.pack import pack
from compiler.types import QuantLayer
from contract import image_write as writers
from contract.config import EIEConfig
from contract.image_read import ImageError, check_config, decode_bin, decode_mem, read_image
from contract.image_write import encode_bin, encode_coe, encode_mem, write_image

CFG = EIEConfig(n_pes=3, acc_depth=4, spmat_depth=64, ptr_depth=64, act_depth=32,
                bias_depth=32, max_tiles=8, max_layers=2)


def small_image(config=CFG, seed=0):
    rng = np.random.default_rng(seed)
    layers = []
    for k, (n_in, n_out) in enumerate([(10, 14), (14, 5)]):
        idx = np.where(rng.random((n_out, n_in)) < 0.4, rng.integers(1, 16, (n_out, n_in)), 0)
        cb = rng.normal(0, 0.4, 16)
        cb[0] = 0.0
        bias = rng.normal(0, 1, n_out) if k == 0 else None
        layers.append(QuantLayer(f"fc{k}", idx.astype(np.uint8), cb, bias, k == 0))
    return pack(layers, config)


def assert_same(a, b):
    for name in ("spmat", "ptr_even", "ptr_odd", "bias", "codebook"):
        got, want = getattr(b, name), getattr(a, name)
        assert got.dtype == want.dtype and np.array_equal(got, want), name
    assert a.program == b.program
    assert a.layers == b.layers
    assert a.config == b.config
    assert a.stats == b.stats


# ---- single-memory encodings -------------------------------------------------------------------
def test_mem_coe_bin_exact():
    words = np.array([0, 1, 0xABC], np.uint32)
    assert encode_mem(words, 12) == b"000\n001\nabc\n"
    assert encode_coe(words, 12) == (b"memory_initialization_radix=16;\n"
                                     b"memory_initialization_vector=\n"
                                     b"000,\n001,\nabc;\n")
    assert encode_bin(words, 12) == b"\x00\x00\x01\x00\xbc\x0a"
    # signed: two's complement in the memory width
    signed = np.array([-1, 5, -2048], np.int64)
    assert encode_mem(signed, 12, signed=True) == b"fff\n005\n800\n"
    assert encode_bin(signed, 12, signed=True) == b"\xff\x0f\x05\x00\x00\x08"
    # widths that are not a multiple of 4 / 8: 5 bits -> 2 hex digits, 1 byte
    assert encode_mem(np.array([31]), 5) == b"1f\n"
    assert encode_bin(np.array([31]), 5) == b"\x1f"
    # 64-bit words with the top bit set
    top = np.array([0x8000000000000001], np.uint64)
    assert encode_mem(top, 64) == b"8000000000000001\n"
    assert encode_bin(top, 64) == b"\x01" + b"\x00" * 6 + b"\x80"


def test_wide_words_use_python_ints():
    words = [(1 << 64) | 5, 0, (1 << 65) - 1]
    assert encode_mem(words, 65) == b"10000000000000005\n00000000000000000\n1ffffffffffffffff\n"
    assert encode_bin(words, 65)[:9] == b"\x05" + b"\x00" * 7 + b"\x01"
    assert len(encode_bin(words, 65)) == 27
    assert decode_mem(encode_mem(words, 65), 65, 3) == words
    assert decode_bin(encode_bin(words, 65), 65, 3) == words


def test_values_must_fit_width():
    with pytest.raises(ValueError, match="does not fit"):
        encode_mem(np.array([16]), 4)
    with pytest.raises(ValueError, match="does not fit"):
        encode_mem(np.array([8]), 4, signed=True)
    with pytest.raises(ValueError, match="does not fit"):
        encode_bin([1 << 65], 65)
    with pytest.raises(ValueError, match="does not fit"):
        encode_mem(np.array([-1]), 8)


def test_decoders_reject_garbage():
    with pytest.raises(ImageError, match="expected depth 3"):
        decode_mem(b"00\n01\n", 8, 3)
    with pytest.raises(ImageError, match="hex digits"):
        decode_mem(b"00\nzz\n", 8, 2)
    with pytest.raises(ImageError, match="does not fit"):
        decode_mem(b"3f\n", 5, 1)
    with pytest.raises(ImageError, match="bytes"):
        decode_bin(b"\x00" * 3, 16, 2)


# ---- whole image -------------------------------------------------------------------------------
def test_round_trip_all_formats(tmp_path):
    image = small_image()
    out = write_image(image, tmp_path / "img")
    names = {p.name for p in out.iterdir()}
    assert "manifest.json" in names and "pe002_ptr_odd.coe" in names and "program.bin" in names
    assert len(names) == 1 + 3 * (4 * CFG.n_pes + 2)
    # full depth, one word per line
    assert (out / "pe000_spmat.mem").read_text().count("\n") == CFG.spmat_depth
    assert len((out / "program.bin").read_bytes()) == CFG.max_tiles * -(-CFG.descriptor_bits // 8)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "eie-image" and manifest["version"] == 1
    assert manifest["config_id"] == CFG.config_id and manifest["config"] == CFG.to_dict()
    sha = hashlib.sha256((out / "codebook.bin").read_bytes()).hexdigest()
    assert manifest["memories"]["codebook"]["sha256"]["bin"] == sha
    digits = -(-CFG.descriptor_bits // 4)
    assert manifest["program"][0]["word"] == f"0x{image.program[0].encode(CFG):0{digits}x}"
    assert_same(image, read_image(out))


@pytest.mark.parametrize("formats", [("mem",), ("bin",), ("coe",), ("bin", "coe")])
def test_round_trip_single_format(tmp_path, formats):
    image = small_image(seed=3)
    out = write_image(image, tmp_path / "img", formats=formats)
    assert {p.suffix for p in out.iterdir()} == {".json"} | {f".{f}" for f in formats}
    assert_same(image, read_image(out))


def test_round_trip_wide_descriptors(tmp_path):
    # the default config's descriptors are 65 bits wide
    cfg = EIEConfig(n_pes=2)
    assert cfg.descriptor_bits > 64
    image = small_image(cfg, seed=1)
    out = write_image(image, tmp_path / "img", formats=("mem", "bin"))
    line = (out / "program.mem").read_text().splitlines()[0]
    assert len(line) == 17 and int(line, 16) == image.program[0].encode(cfg)
    assert_same(image, read_image(out))


def test_replace_existing_image_and_failure_keeps_old(tmp_path, monkeypatch):
    first, second = small_image(seed=1), small_image(seed=2)
    target = tmp_path / "img"
    write_image(first, target)
    write_image(second, target)                         # replaces an earlier image
    assert_same(second, read_image(target))

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setitem(writers._ENCODERS, "bin", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        write_image(first, target)
    assert_same(second, read_image(target))             # old image intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img"]   # no temporaries left
    with pytest.raises(RuntimeError):
        write_image(first, tmp_path / "new")
    assert not (tmp_path / "new").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img"]


def test_refuses_to_replace_foreign_directory(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        write_image(small_image(), tmp_path / "src")
    assert (tmp_path / "src" / "notes.txt").read_text() == "keep me"


# ---- reader errors ------------------------------------------------------------------------------
@pytest.fixture
def image_dir(tmp_path):
    return write_image(small_image(), tmp_path / "img", formats=("mem", "bin"))


def edit_manifest(path, change):
    manifest = json.loads((path / "manifest.json").read_text())
    change(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_tampered_file(image_dir):
    f = image_dir / "pe001_spmat.mem"
    text = f.read_text()
    f.write_text(("1" if text[0] == "0" else "0") + text[1:])
    with pytest.raises(ImageError, match=r"pe001_spmat.mem: SHA-256 does not match"):
        read_image(image_dir)


def test_tampered_unused_format_is_detected(image_dir):
    f = image_dir / "codebook.bin"
    f.write_bytes(b"\x01" + f.read_bytes()[1:])
    with pytest.raises(ImageError, match="codebook.bin: SHA-256"):
        read_image(image_dir)


def test_missing_file(image_dir):
    (image_dir / "pe002_bias.bin").unlink()
    with pytest.raises(ImageError, match=r"pe002_bias.bin: file missing"):
        read_image(image_dir)


def test_missing_manifest_and_directory(tmp_path, image_dir):
    with pytest.raises(ImageError, match="not an image directory"):
        read_image(tmp_path / "nope")
    (image_dir / "manifest.json").unlink()
    with pytest.raises(ImageError, match="manifest.json missing"):
        read_image(image_dir)


@pytest.mark.parametrize("name", ["../pe000_spmat.mem", "/etc/passwd", "sub/pe000_spmat.mem",
                                  "..", "", "a\\b.mem"])
def test_unsafe_paths(image_dir, name):
    (image_dir.parent / "pe000_spmat.mem").write_bytes((image_dir / "pe000_spmat.mem")
                                                       .read_bytes())

    def change(m):
        m["memories"]["pe000_spmat"]["files"]["mem"] = name

    edit_manifest(image_dir, change)
    with pytest.raises(ImageError, match="manifest.json: memory pe000_spmat"):
        read_image(image_dir)


def test_symlink_escaping_directory(image_dir):
    outside = image_dir.parent / "outside.mem"
    outside.write_bytes((image_dir / "pe000_spmat.mem").read_bytes())
    (image_dir / "link.mem").symlink_to(outside)
    edit_manifest(image_dir,
                  lambda m: m["memories"]["pe000_spmat"]["files"].__setitem__("mem", "link.mem"))
    with pytest.raises(ImageError, match="outside the image directory"):
        read_image(image_dir)


@pytest.mark.parametrize("change, message", [
    (lambda m: m.__setitem__("version", 2), "version 2 is not supported"),
    (lambda m: m.__setitem__("format", "other"), "format is 'other'"),
    (lambda m: m.__setitem__("config_id", 1), "config_id 1 does not match"),
    (lambda m: m["config"].__setitem__("n_pes", "x"), "bad config"),
    (lambda m: m["config"].__setitem__("bogus", 1), "bad config"),
    (lambda m: m["program"][0].__setitem__("word", "0x1"), "do not decode to the recorded word"),
    (lambda m: m["program"][0].__setitem__("ptr_base", 1), "do not decode to the recorded word"),
    (lambda m: m["memories"]["pe000_bias"].__setitem__("depth", 7), "memory pe000_bias is"),
    (lambda m: m["memories"].pop("codebook"), "memory codebook missing"),
    (lambda m: m["layers"][1].__setitem__("n_in", 3), "n_in does not match"),
    (lambda m: m["layers"][0].__setitem__("codebook", [0.0]), "codebook must hold 16"),
])
def test_bad_manifest(image_dir, change, message):
    edit_manifest(image_dir, change)
    with pytest.raises(ImageError, match=message):
        read_image(image_dir)


def test_bad_json(image_dir):
    (image_dir / "manifest.json").write_text("{not json")
    with pytest.raises(ImageError, match="not valid JSON"):
        read_image(image_dir)
    (image_dir / "manifest.json").write_text("[1, 2]")
    with pytest.raises(ImageError, match="not a JSON object"):
        read_image(image_dir)


def test_program_memory_must_match_manifest(tmp_path):
    image = small_image()
    out = write_image(image, tmp_path / "img", formats=("mem",))
    prog = out / "program.mem"
    lines = prog.read_text().splitlines()
    lines[0] = f"{int(lines[0], 16) ^ 1:0{len(lines[0])}x}"
    prog.write_text("\n".join(lines) + "\n")
    edit_manifest(out, lambda m: m["memories"]["program"]["sha256"].__setitem__(
        "mem", hashlib.sha256(prog.read_bytes()).hexdigest()))
    with pytest.raises(ImageError, match="program.mem: word 0"):
        read_image(out)


def test_check_config_names_fields():
    image = small_image()
    check_config(image, CFG)
    other = dataclasses.replace(CFG, n_pes=4, spmat_depth=128)
    with pytest.raises(ImageError, match=r"n_pes=3 \(image\) vs 4 \(design\).*spmat_depth"):
        check_config(image, other)


def test_round_trip_odd_widths(tmp_path):
    # 24-bit spmat words, 11-bit pointers, 40-bit accumulators, 13-bit codebook values
    cfg = dataclasses.replace(CFG, weight_bits=3, index_bits=3, entries_per_word=4,
                              pointer_bits=11, acc_bits=40, codebook_bits=13, act_bits=16)
    rng = np.random.default_rng(9)
    idx = np.where(rng.random((14, 10)) < 0.5, rng.integers(1, 8, (14, 10)), 0)
    cb = rng.normal(0, 0.4, 8)
    cb[0] = 0.0
    image = pack([QuantLayer("fc", idx.astype(np.uint8), cb, -rng.random(14), True)], cfg)
    assert (image.bias[:, :4] < 0).any()
    for formats in (("mem",), ("bin",), ("coe",)):
        out = write_image(image, tmp_path / "img", formats=formats)
        assert_same(image, read_image(out))
    assert len((tmp_path / "img" / "pe000_spmat.coe").read_text().splitlines()[2]) == 7

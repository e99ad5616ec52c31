"""Image extensions: the sections an engine built on the EIE array adds to an image
(docs/image-format.md, "Extensions")."""

import json

import numpy as np
import pytest

from compiler.pack import pack
from compiler.types import QuantLayer
from contract.config import EIEConfig
from contract.image import ImageExtension
from contract.image_read import ImageError, read_image, read_image_extension
from contract.image_write import write_image

CFG = EIEConfig(n_pes=2, acc_depth=4, spmat_depth=32, ptr_depth=32, act_depth=16,
                bias_depth=16, max_tiles=8, max_layers=2)


def image():
    idx = np.zeros((6, 5), np.uint8)
    idx[1, 2], idx[4, 0] = 3, 1
    cb = np.linspace(-1, 1, 16)
    cb[0] = 0.0
    return pack([QuantLayer("m", idx, cb, None, False)], CFG)


def extension():
    table = np.array([0, 1, 2, 3, 70000, 5], np.int64)
    return ImageExtension(kind="lstm", data={"layers": [{"hidden": 3}]},
                          memories={"sigmoid": (17, 6, table, False),
                                    "pe000_peephole": (16, 4, np.array([-1, 2, -3, 4]), True)})


def test_round_trip(tmp_path):
    img = image()
    write_image(img, tmp_path / "img", extension=extension())
    back, ext = read_image_extension(tmp_path / "img", "lstm")
    assert ext.kind == "lstm" and ext.data == {"layers": [{"hidden": 3}]} and ext.chained
    width, depth, words, signed = ext.memories["sigmoid"]
    assert (width, depth, signed) == (17, 6, False)
    np.testing.assert_array_equal(words, [0, 1, 2, 3, 70000, 5])
    # signed words come back as their two's-complement bit patterns; the engine converts
    np.testing.assert_array_equal(ext.memories["pe000_peephole"][2],
                                  [0xFFFF, 2, 0xFFFD, 4])
    np.testing.assert_array_equal(back.spmat, img.spmat)
    assert back.program == img.program
    assert (tmp_path / "img" / "sigmoid.mem").read_text().splitlines()[4] == "11170"


def test_plain_reader_refuses_an_extension(tmp_path):
    write_image(image(), tmp_path / "img", extension=extension())
    with pytest.raises(ImageError, match=r"^manifest.json: this is an 'lstm' image, not a "
                                         r"plain EIE image; read it with that engine's reader$"):
        read_image(tmp_path / "img")
    write_image(image(), tmp_path / "plain")
    with pytest.raises(ImageError, match=r"not an 'lstm' image \(extension None\)"):
        read_image_extension(tmp_path / "plain", "lstm")
    # an EIE image without an extension has no 'extension' key (images stay byte-identical)
    assert "extension" not in json.loads((tmp_path / "plain" / "manifest.json").read_text())


def test_extension_memories_are_checked(tmp_path):
    out = write_image(image(), tmp_path / "img", extension=extension())
    (out / "sigmoid.mem").write_text((out / "sigmoid.mem").read_text().replace("11170", "11171"))
    with pytest.raises(ImageError, match=r"^sigmoid.mem: SHA-256 does not match"):
        read_image_extension(out, "lstm")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["memories"]["sigmoid"]["depth"] = 1 << 30
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ImageError, match=r"extension memory sigmoid needs a width in \[1, 256\] "
                                         r"and a depth in \[1, 1048576\]"):
        read_image_extension(out, "lstm")
    del manifest["extension"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ImageError, match=r"unknown memories \['pe000_peephole', 'sigmoid'\]"):
        read_image(out)


def test_writer_refuses_bad_extensions(tmp_path):
    ext = extension()
    ext.memories["codebook"] = (16, 2, [0, 0], True)
    with pytest.raises(ValueError, match=r"extension memories \['codebook'\] clash"):
        write_image(image(), tmp_path / "a", extension=ext)
    ext = extension()
    ext.memories["sigmoid"] = (17, 7, np.zeros(6, np.int64), False)
    with pytest.raises(ValueError, match="sigmoid: 6 words, memory depth is 7"):
        write_image(image(), tmp_path / "b", extension=ext)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()

"""The Python API facade (``eie.pack``, ``eie.golden``, ...) and the package layering."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import compiler
import eie
import golden
from contract.config import EIEConfig
from contract.image_read import read_image

ROOT = Path(__file__).resolve().parent.parent
CONFIG = EIEConfig(n_pes=3, acc_depth=8, act_depth=32, spmat_depth=256, ptr_depth=128,
                   bias_depth=32, max_tiles=8)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 5))


def test_pack_equals_compiler_pipeline(model, tmp_path):
    image = eie.pack(model, tmp_path / "img", config=CONFIG, density=0.5, bits=3)
    expected = compiler.pack(
        compiler.compress(model, density=0.5, bits=3).layers,
        dataclasses.replace(CONFIG, weight_bits=3))
    assert image.config.weight_bits == 3
    for name in ("spmat", "ptr_even", "ptr_odd", "bias", "codebook"):
        np.testing.assert_array_equal(getattr(image, name), getattr(expected, name))
    assert image.program == expected.program
    back = read_image(tmp_path / "img")
    np.testing.assert_array_equal(back.spmat, image.spmat)
    # without an output nothing is written
    eie.pack(model, config=CONFIG, density=0.5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img"]


def test_golden_from_array_path_or_image(model, tmp_path):
    image = eie.pack(model, tmp_path / "img", config=CONFIG, density=0.5)
    x = np.random.default_rng(0).uniform(-1, 1, (4, 12))
    q = golden.run(image, golden.quantize_input(x, CONFIG)).q
    by_image = eie.golden(image, x)
    np.save(tmp_path / "x.npy", x)
    by_path = eie.golden(tmp_path / "img", tmp_path / "x.npy", tmp_path / "y.npz")
    np.testing.assert_array_equal(by_image["q"], q)
    np.testing.assert_array_equal(by_path["q"], q)
    saved = np.load(tmp_path / "y.npz")
    assert sorted(saved.files) == ["cycles", "cycles_per_layer", "layers", "q",
                                   "saturation", "wraps", "y"]
    cycles = [golden.cycles(image, row).total for row in golden.quantize_input(x, CONFIG)]
    np.testing.assert_array_equal(saved["cycles"], cycles)
    assert eie.golden(image, x[0])["q"].shape == (5,)


@pytest.mark.parametrize("x, message", [
    (np.zeros((2, 11)), r"^input: input must have shape \[12\] or \[batch, 12\], got \[2, 11\]$"),
    (np.array([[np.nan] * 12]), r"^input: input holds 12 NaN/Inf values$"),
    (np.array(["a"] * 12), r"^input: input must be numeric, got dtype <U1$"),
])
def test_bad_inputs(x, message):
    with pytest.raises(ValueError, match=message):
        eie.load_input(x, 12)


def test_design_takes_the_image_config(model, tmp_path):
    eie.pack(model, tmp_path / "img", config=CONFIG, density=0.5)
    paths = eie.verilog(tmp_path / "v", image=tmp_path / "img")
    assert any(p.suffix == ".v" for p in map(Path, paths))
    with pytest.raises(ValueError, match=r"n_pes=3 \(image\) vs 5 \(design\)"):
        eie.verilog(tmp_path / "w", dataclasses.replace(CONFIG, n_pes=5), tmp_path / "img")
    with pytest.raises(ValueError, match="board must be 'ku060'"):
        eie.build(tmp_path / "b", board="zcu104")


def test_help_does_not_import_torch_or_matplotlib():
    # eie/api.py and eie/bench.py keep these imports lazy so that `eie --help` is fast.
    code = ("import sys, eie.cli; "
            "print(sorted(m for m in ('torch', 'matplotlib', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "[]"



def test_rtl_files_are_units():
    # One hardware unit per file (docs/architecture.md, "Layers").
    long = {p.name: n for p in (ROOT / "rtl").glob("*.py")
            if (n := len(p.read_text().splitlines())) > 300}
    assert long == {}

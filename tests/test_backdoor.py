"""The simulation's backdoor load (sim_tests/runner.py): the design and side files it
derives from the unbaked Verilog equal what ``rtl.verilog.convert`` emits for a baked image.
No Verilator here; the RTL runs on the backdoor build are in sim_tests/test_eie.py."""

import numpy as np
import pytest

from compiler.pack import pack
from compiler.types import QuantLayer
from contract.config import EIEConfig
from rtl.verilog import convert
from sim_tests import runner

CONFIGS = [
    EIEConfig(n_pes=2, queue_depth=2, spmat_depth=64, ptr_depth=64, bias_depth=16,
              act_depth=16, acc_depth=8, max_layers=2, max_tiles=4),
    EIEConfig(n_pes=3, queue_depth=3, spmat_depth=64, ptr_depth=128, bias_depth=16,
              act_depth=16, acc_depth=8, max_layers=4, max_tiles=8),
]


def _image(config, seed):
    rng = np.random.default_rng(seed)
    layers = []
    for n_out, n_in in ((20, 12), (7, 20)):
        idx = ((rng.random((n_out, n_in)) < 0.4) * rng.integers(1, 16, (n_out, n_in)))
        codebook = np.concatenate(([0.0], np.linspace(-1, 1, 15)))
        layers.append(QuantLayer(f"fc{n_out}", idx.astype(np.uint8), codebook,
                                 rng.normal(0, 1, n_out), True))
    return pack(layers, config)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.n_pes}pe")
def test_backdoor_design_and_files_equal_the_baked_emission(config):
    image = _image(config, config.n_pes)
    text, files = convert(config, image=image, name=runner.TOPLEVEL)
    derived, meta = runner._backdoor_verilog(config)
    # Same statements; Yosys orders a few always blocks differently with initial contents.
    assert sorted(derived.splitlines()) == sorted(text.splitlines())
    assert [name for name, _, _ in meta] == list(files)
    # The backdoor files are the baked ones up to their last non-zero word (the rest
    # stays at the simulator's initial zero); an all-zero memory gets one zero word.
    backdoor = runner.backdoor_files(config, image)
    assert list(backdoor) == list(files)
    for name, baked in files.items():
        short, full = backdoor[name].splitlines(), baked.splitlines()
        assert full[:len(short)] == short and not any(int(w, 16) for w in full[len(short):])
        assert int(short[-1], 16) != 0 or len(short) == 1, name
    assert sum(len(v) for v in backdoor.values()) < sum(len(v) for v in files.values()) / 2
    # Negative biases are written as two's complement of the memory's width.
    assert any(int(line, 16) >> 31 for line in files["pe0_arith_unit_bias.mem"].split())


def test_host_load_starts_from_zero_files():
    config = CONFIGS[0]
    files = runner.backdoor_files(config, None)
    assert set(files) == {name for name, _, _ in runner._backdoor_verilog(config)[1]}
    for contents in files.values():
        assert set(contents) <= {"0", "\n"}


def test_backdoor_build_has_its_own_key_and_directory(tmp_path):
    plain = runner._plan(CONFIGS[0], build_dir=tmp_path, waves=None, opt="-O0",
                         bake_image=None, threads=1)
    back = runner._plan(CONFIGS[0], build_dir=tmp_path, waves=None, opt="-O0",
                        bake_image=None, threads=1, backdoor=True)
    assert back.out.name.endswith("_backdoor") and back.out != plain.out
    assert back.key != plain.key and back.side_files == {}


def test_unknown_load_is_refused():
    with pytest.raises(ValueError, match="load must be one of"):
        runner.simulate(_image(CONFIGS[0], 0), np.zeros(12, np.int64), load="dma")

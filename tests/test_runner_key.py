"""Key of the cached Verilator builds (sim_tests/runner.py): it follows the emitted Verilog
and the build flags, so an edit anywhere that changes the design rebuilds, and the same
design and flags reuse the build. No Verilator run: the key is computed without building."""

import dataclasses

import numpy as np
import pytest

from compiler.pack import pack
from compiler.types import QuantLayer
from contract.config import EIEConfig
from sim_tests import runner

CONFIG = EIEConfig(n_pes=1, queue_depth=1, acc_depth=4, act_depth=8, spmat_depth=16,
                   ptr_depth=16, bias_depth=8, max_layers=2, max_tiles=2)


@pytest.fixture(autouse=True)
def fresh_emission():
    # The runner emits each unbaked config once per process; a patched emitter must not
    # leak into (or out of) the cache.
    runner._unbaked_verilog.cache_clear()
    yield
    runner._unbaked_verilog.cache_clear()


def test_build_key_hashes_its_inputs():
    flags = {"opt": "-O1", "threads": 1, "build_args": ["-Wno-fatal"]}
    key = runner.build_key("module m; endmodule\n", "`verilator_config\n", flags)
    assert len(key) == 64 and int(key, 16) >= 0                       # full SHA-256
    assert key == runner.build_key("module m; endmodule\n", "`verilator_config\n",
                                   dict(reversed(flags.items())))
    assert key != runner.build_key("module n; endmodule\n", "`verilator_config\n", flags)
    assert key != runner.build_key("module m; endmodule\n", "`verilator_config\n// x\n",
                                   flags)
    assert key != runner.build_key("module m; endmodule\n", "`verilator_config\n",
                                   {**flags, "opt": "-O0"})
    # parts are length-prefixed: moving text from one part to the next changes the key
    assert (runner.build_key("ab", "c", {}) != runner.build_key("a", "bc", {}))


def test_same_design_and_flags_same_key(tmp_path):
    key = runner.design_key(CONFIG, build_dir=tmp_path, opt="-O0")
    runner._unbaked_verilog.cache_clear()                               # emit again
    assert runner.design_key(CONFIG, build_dir=tmp_path, opt="-O0") == key
    assert runner.design_key(EIEConfig(**CONFIG.to_dict()), build_dir=tmp_path,
                             opt="-O0") == key


@pytest.mark.parametrize("flags", [dict(opt="-O1"), dict(threads=2),
                                   dict(waves="w.vcd")])
def test_flags_change_the_key(tmp_path, flags):
    base = dict(build_dir=tmp_path, opt="-O0")
    assert (runner.design_key(CONFIG, **{**base, **flags})
            != runner.design_key(CONFIG, **base))


def test_build_args_change_the_key(tmp_path, monkeypatch):
    key = runner.design_key(CONFIG, build_dir=tmp_path, opt="-O0")
    monkeypatch.setattr(runner, "BUILD_ARGS", (*runner.BUILD_ARGS, "--x-initial", "fast"))
    assert runner.design_key(CONFIG, build_dir=tmp_path, opt="-O0") != key


def test_config_field_changes_the_key(tmp_path):
    key = runner.design_key(CONFIG, build_dir=tmp_path, opt="-O0")
    deeper = dataclasses.replace(CONFIG, queue_depth=2)
    assert runner.design_key(deeper, build_dir=tmp_path, opt="-O0") != key


def test_contract_edit_outside_rtl_changes_the_key(tmp_path, monkeypatch):
    # descriptor_layout lives in contract/config.py, not rtl/, and shapes the sequencer's
    # descriptor decode: the old source-hash key missed such an edit.
    key = runner.design_key(CONFIG, build_dir=tmp_path, opt="-O0")
    original = EIEConfig.descriptor_layout

    def reordered(self):
        layout = original(self)
        return {"last": layout.pop("last"), **layout}     # `last` moves to bit 0

    monkeypatch.setattr(EIEConfig, "descriptor_layout", reordered)
    runner._unbaked_verilog.cache_clear()
    patched = runner.design_key(CONFIG, build_dir=tmp_path, opt="-O0")
    assert patched != key
    monkeypatch.undo()
    runner._unbaked_verilog.cache_clear()
    assert runner.design_key(CONFIG, build_dir=tmp_path, opt="-O0") == key


def test_one_baked_build_serves_every_image(tmp_path):
    # Which image a baked design loads is decided by its $readmemh files at run time.
    rng = np.random.default_rng(0)
    keys = []
    for density in (0.2, 0.9):
        idx = ((rng.random((4, 5)) < density) * rng.integers(1, 16, (4, 5))).astype(np.uint8)
        cb = np.concatenate(([0.0], np.linspace(-1, 1, 15)))
        image = pack([QuantLayer("fc", idx, cb, None, False)], CONFIG)
        keys.append(runner.design_key(CONFIG, build_dir=tmp_path, opt="-O0",
                                      bake_image=image))
    assert keys[0] == keys[1]
    assert keys[0] != runner.design_key(CONFIG, build_dir=tmp_path, opt="-O0")

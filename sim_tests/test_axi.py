"""System test of the AXI4-Lite wrapper (rtl/axi_host.py) under cocotb + Verilator.

A cocotbext-axi AxiLiteMaster with random stalls on all five channels loads a packed image
through the register map (docs/register-map.md), runs two inputs, reads the outputs back
and compares them bit for bit with the golden model; the same inputs then go through the
AXI4-Stream ports (AxiStreamSource/Sink, also throttled). Then it reloads a *different*
model (other layer sizes, one more layer, multi-tile) over the first at run time and
repeats. Cycle counters read over AXI must equal the golden cycle model.
"""

from __future__ import annotations

import fcntl
import hashlib
from pathlib import Path

import numpy as np
import pytest

from contract.config import EIEConfig
from sim_tests import jobs

CONFIG = EIEConfig(n_pes=3, queue_depth=4, spmat_depth=128, ptr_depth=64, act_depth=16,
                   acc_depth=4, bias_depth=32, max_layers=4, max_tiles=16)
TOPLEVEL = "axi_host"
ROOT = Path(__file__).resolve().parent.parent


def _quant_layers(rng, sizes, density, relu_last=False):
    from compiler.types import QuantLayer

    layers = []
    for k in range(len(sizes) - 1):
        shape = (sizes[k + 1], sizes[k])
        idx = (rng.integers(1, 16, size=shape) * (rng.random(shape) < density)).astype(np.uint8)
        codebook = np.concatenate(([0.0], rng.normal(0, 0.4, size=15)))
        bias = rng.normal(0, 0.5, size=sizes[k + 1])
        relu = k < len(sizes) - 2 or relu_last
        layers.append(QuantLayer(f"fc{k}", idx, codebook, bias, relu))
    return layers


def _inputs(rng, n_in, batch=2):
    q = rng.integers(-600, 600, size=(batch, n_in))
    q[rng.random((batch, n_in)) < 0.4] = 0  # sparse activations: empty LNZD rows
    return q.astype(np.int64)


def _build(config: EIEConfig) -> Path:
    """Verilate AxiHost for ``config`` once (cached by config and rtl/ sources)."""
    from amaranth.back import verilog
    from cocotb_tools.runner import get_runner

    from rtl.axi_host import AxiHost
    from sim_tests.runner import SIM_BUILD, verilator_env

    key = hashlib.sha256(repr(sorted(config.to_dict().items())).encode())
    for path in sorted((ROOT / "rtl").glob("*.py")):
        key.update(path.read_bytes())
    out = (SIM_BUILD / f"axi_{config.config_id:08x}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    stamp = out / "stamp"
    # pytest -n 2 runs both parametrizations at once: one builds, the other waits.
    with open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (stamp.exists() and stamp.read_text() == key.hexdigest()
                and (out / TOPLEVEL).exists()):
            return out
        verilator_env()
        source = out / f"{TOPLEVEL}.v"
        source.write_text(verilog.convert(AxiHost(config, streams=True), name=TOPLEVEL,
                                          emit_src=False))
        runner = get_runner("verilator")
        runner.build(sources=[str(source)], hdl_toplevel=TOPLEVEL, build_dir=out,
                     timescale=("1ns", "1ps"), build_args=["-Wno-fatal", "-O1"],
                     log_file=out / "build.log")
        stamp.write_text(key.hexdigest())
    return out


@pytest.mark.parametrize("stall, seed", [(0.0, 1), (0.4, 7)])
def test_axi_load_run_reload(tmp_path, stall, seed):
    pytest.importorskip("cocotbext.axi")
    from cocotb_tools.runner import get_runner

    import golden
    from compiler.pack import pack
    from sim_tests.runner import verilator_env

    rng = np.random.default_rng(2026)
    image_a = pack(_quant_layers(rng, [20, 11, 7], 0.35), CONFIG)
    image_b = pack(_quant_layers(rng, [17, 25, 9, 5], 0.5, relu_last=True), CONFIG)
    assert len(image_b.program) > len(image_b.layers)  # a multi-tile layer
    inputs = [_inputs(rng, image_a.n_in), _inputs(rng, image_b.n_in)]
    expected = [golden.run(image, q).q for image, q in zip((image_a, image_b), inputs,
                                                               strict=True)]

    out = _build(CONFIG)
    verilator_env()
    job = {"config": CONFIG, "images": [image_a, image_b], "inputs": inputs, "seed": seed,
           "stall": stall, "timeout_cycles": 20_000, "streams": True,
           "result": str(tmp_path / "result")}
    jobs.save(tmp_path / "job", job)
    get_runner("verilator").test(
        test_module="sim_tests.axi_tb", hdl_toplevel=TOPLEVEL, hdl_toplevel_lang="verilog",
        build_dir=out,
        test_dir=tmp_path, extra_env={"EIE_AXI_JOB": str(tmp_path / "job")},
        results_xml=str(tmp_path / "results.xml"), log_file=tmp_path / "sim.log")
    assert (tmp_path / "result" / "job.json").exists(), \
        (tmp_path / "sim.log").read_text()[-3000:]
    results = jobs.load(tmp_path / "result")["results"]

    for k, (result, want) in enumerate(zip(results, expected, strict=True)):
        np.testing.assert_array_equal(result["q"], want, err_msg=f"image {k}")
        np.testing.assert_array_equal(result["stream_q"], want, err_msg=f"stream, image {k}")
        image = (image_a, image_b)[k]
        for total, per_layer in zip(result["cycles_total"], result["cycles_per_layer"],
                                    strict=True):
            assert len(per_layer) == len(image.layers)
            assert all(c > 0 for c in per_layer)
            assert sum(per_layer) <= total
        # The counters read over AXI equal the cycle model (docs/architecture.md).
        for b, q in enumerate(inputs[k]):
            report = golden.cycles(image, q)
            assert result["cycles_total"][b] == report.total
            assert result["cycles_per_layer"][b] == [layer.cycles for layer in report.layers]

"""System tests of the AXI4-Lite wrapper (rtl/axi_host.py) under cocotb + Verilator.

A cocotbext-axi AxiLiteMaster (random stalls on all five channels) drives the register map
of docs/register-map.md; sim_tests/axi_scenarios.py holds the scenarios. Every register
read is checked against a model of the map fed in bus order, with the bus rules (writes
win a tie); outputs must equal the golden model bit for bit and the cycle counters read
over AXI the golden cycle model exactly.

- load, run, reload: an image loaded, two inputs run over AXI-Lite and over the
  AXI4-Stream ports (AxiStreamSource/Sink, also throttled), then a *different* model
  (other layer sizes, one more layer, multi-tile) loaded over it at run time;
- reads racing writes: ties presented in the same cycle (a HOST_ADDR / DATA_LO read
  against a HOST_ADDR / DATA_LO / WDATA_HI write) with their documented outcome, then
  concurrent random traffic;
- AXI-Lite traffic during AXI4-Stream beats and output words;
- memory writes while the array is busy (ignored) with register reads (answered);
- the rst pin in the middle of a run, then reruns.
"""

from __future__ import annotations

import fcntl
import functools
import itertools
from pathlib import Path

import cocotbext.axi  # noqa: F401  (a declared dev dependency; axi_tb needs it)
import numpy as np
import pytest

from compiler.pack import pack
from contract.config import EIEConfig
from sim_tests import jobs
from sim_tests.axi_scenarios import JOB_ENV

CONFIG = EIEConfig(n_pes=3, queue_depth=4, spmat_depth=128, ptr_depth=64, act_depth=16,
                   acc_depth=4, bias_depth=32, max_layers=4, max_tiles=16)
TOPLEVEL = "axi_host"
BUILD_ARGS = ("-Wno-fatal", "-O1")
TIMESCALE = ("1ns", "1ps")


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


@functools.cache
def _verilog(config: EIEConfig) -> str:
    from amaranth.back import verilog

    from rtl.axi_host import AxiHost

    return verilog.convert(AxiHost(config, streams=True), name=TOPLEVEL, emit_src=False)


def _build(config: EIEConfig) -> Path:
    """Verilate AxiHost for ``config`` once; the build is keyed by a SHA-256 of the emitted
    Verilog and the build flags, so any change that alters the design rebuilds it."""
    from cocotb_tools.runner import get_runner

    from sim_tests.runner import SIM_BUILD, build_key, verilator_env

    text = _verilog(config)
    key = build_key(text, "", {"top": TOPLEVEL, "timescale": list(TIMESCALE),
                               "args": list(BUILD_ARGS)})
    out = (SIM_BUILD / f"axi_{config.config_id:08x}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    stamp = out / "stamp"
    # pytest -n 2 runs several AXI tests at once: one builds, the others wait.
    with open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (stamp.exists() and stamp.read_text() == key
                and (out / TOPLEVEL).exists()):
            return out
        verilator_env()
        stamp.unlink(missing_ok=True)
        source = out / f"{TOPLEVEL}.v"
        source.write_text(text)
        runner = get_runner("verilator")
        runner.build(sources=[str(source)], hdl_toplevel=TOPLEVEL, build_dir=out,
                     timescale=TIMESCALE, build_args=list(BUILD_ARGS),
                     log_file=out / "build.log")
        stamp.write_text(key)
    return out


def _sim_error(log: Path) -> str:
    """The testbench's traceback from a failed simulation's log (or the log's tail)."""
    text = log.read_text() if log.exists() else "(no sim.log)"
    lines = text.splitlines()
    start = max((k for k, line in enumerate(lines) if "Traceback" in line), default=None)
    if start is None:
        return text[-3000:]
    tail = [line.strip() for line in lines[start:start + 40]]
    return "simulation failed:\n" + "\n".join(line for line in tail if line)


def _simulate(tmp_path: Path, scenario: str, images, inputs, *, stall: float, seed: int,
              **options) -> dict:
    """Run one scenario of sim_tests/axi_scenarios.py; return its results after asserting that
    every register read matched docs/register-map.md (the testbench's model)."""
    from cocotb_tools.runner import get_runner

    import golden
    from sim_tests.runner import verilator_env

    out = _build(CONFIG)
    verilator_env()
    expected = [golden.run(image, q).q for image, q in zip(images, inputs, strict=True)]
    job = {"scenario": scenario, "config": CONFIG, "images": list(images),
           "inputs": list(inputs), "expected": expected, "seed": seed, "stall": stall,
           "timeout_cycles": 20_000, "streams": True, "result": str(tmp_path / "result"),
           **options}
    jobs.save(tmp_path / "job", job)
    try:
        get_runner("verilator").test(
            test_module="sim_tests.axi_scenarios", hdl_toplevel=TOPLEVEL,
            hdl_toplevel_lang="verilog", build_dir=out, test_dir=tmp_path,
            extra_env={JOB_ENV: str(tmp_path / "job")}, results_xml=str(tmp_path / "results.xml"),
            log_file=tmp_path / "sim.log")
    except SystemExit:
        pass  # the cocotb test failed: its traceback is in sim.log (below)
    assert (tmp_path / "result" / "job.json").exists(), _sim_error(tmp_path / "sim.log")
    result = jobs.load(tmp_path / "result")
    assert not result["failures"], "\n".join(result["failures"][:20])
    return result


def _check_runs(result: dict, image, inputs, *, key: str = "q"):
    """Outputs bit for bit against golden, counters cycle for cycle against the model."""
    import golden

    np.testing.assert_array_equal(result[key], golden.run(image, inputs).q, err_msg=key)
    assert len(result["cycles_total"]) == len(inputs)
    for b, q in enumerate(inputs):
        report = golden.cycles(image, q)
        assert result["cycles_total"][b] == report.total, f"input {b}"
        assert result["cycles_per_layer"][b] == [layer.cycles for layer in report.layers], \
            f"input {b}"


def _long_image(rng):
    """Three layers, nearly dense, with dense inputs: runs of about 420 cycles, long
    enough for a few dozen AXI transactions while the array is busy."""
    image = pack(_quant_layers(rng, [48, 24, 3], 0.9), CONFIG)
    q = rng.integers(-600, 600, size=(2, image.n_in)).astype(np.int64)
    return image, q


@pytest.mark.parametrize("stall, seed", [(0.0, 1), (0.4, 7)])
def test_axi_load_run_reload(tmp_path, stall, seed):
    import golden

    rng = np.random.default_rng(2026)
    image_a = pack(_quant_layers(rng, [20, 11, 7], 0.35), CONFIG)
    image_b = pack(_quant_layers(rng, [17, 25, 9, 5], 0.5, relu_last=True), CONFIG)
    assert len(image_b.program) > len(image_b.layers)  # a multi-tile layer
    inputs = [_inputs(rng, image_a.n_in), _inputs(rng, image_b.n_in)]
    result = _simulate(tmp_path, "load_run_reload", [image_a, image_b], inputs, stall=stall,
                       seed=seed)
    for k, (result_k, image) in enumerate(zip(result["results"], (image_a, image_b),
                                              strict=True)):
        want = golden.run(image, inputs[k]).q
        np.testing.assert_array_equal(result_k["stream_q"], want, err_msg=f"stream, image {k}")
        # The counters read over AXI equal the cycle model (docs/architecture.md).
        _check_runs(result_k, image, inputs[k])


@pytest.mark.parametrize("stall, seed", [(0.0, 3), (0.3, 11)])
def test_axi_reads_race_writes(tmp_path, stall, seed):
    """Reads and writes presented in the same cycle: the write is accepted first (writes
    win a tie, docs/register-map.md), e.g. a HOST_ADDR read tied with a HOST_ADDR write
    returns the new address and a DATA_LO read tied with a DATA_LO write reads the next
    word; then random concurrent rounds, every read checked against the register map."""
    result = _simulate(tmp_path, "races", [], [], stall=stall, seed=seed, rounds=40)
    assert result["checked"] > 150
    assert result["ties"] >= 6  # the directed ones, at least


def test_axi_lite_during_streams(tmp_path):
    """AXI-Lite writes and reads (window reads and writes take the array's host port)
    while input beats go in and outputs come out; outputs and counters equal golden."""
    rng = np.random.default_rng(12)
    image = pack(_quant_layers(rng, [30, 20, 9], 0.5), CONFIG)
    inputs = _inputs(rng, image.n_in, batch=3)
    result = _simulate(tmp_path, "stream_lite", [image], [inputs], stall=0.3, seed=12)
    _check_runs(result["results"][0], image, inputs, key="stream_q")
    _check_runs(result["results"][0], image, inputs, key="q")  # read over DATA_LO
    assert result["during_beats"] > 20 and result["during_outputs"] > 3


@pytest.mark.parametrize("stall, seed", [(0.0, 5), (0.25, 9)])
def test_axi_writes_ignored_while_busy(tmp_path, stall, seed):
    """Memory writes (every PE memory, the codebook, the program, both activation banks)
    while the array runs are ignored, registers still answer, the cycle counter counts up;
    the runs and a rerun equal golden."""
    rng = np.random.default_rng(seed)
    image, q = _long_image(rng)
    result = _simulate(tmp_path, "busy_writes", [image], [q], stall=stall, seed=seed)
    _check_runs(result["results"][0], image, np.concatenate([q, q[:1]]))
    for b, seen in enumerate(result["running_totals"]):
        total = result["results"][0]["cycles_total"][b]
        assert len(seen) >= 2 and all(0 < x < y < total for x, y in itertools.pairwise(seen)), \
            f"TOTAL_CYCLES read while busy (run {b} takes {total}): {seen}"


def test_axi_reset_mid_run_then_rerun(tmp_path):
    """The rst pin in the middle of a run started over AXI-Lite, then of one started by
    the stream: busy, done, CTRL_STATUS, WDATA_HI, OUT_COUNT read their reset values and
    the reruns (memories kept, input rewritten) equal golden bit for bit."""
    rng = np.random.default_rng(4)
    image, q = _long_image(rng)
    result = _simulate(tmp_path, "reset_mid_run", [image], [q], stall=0.2, seed=4,
                       reset_at=150)
    _check_runs(result["results"][0], image, q)

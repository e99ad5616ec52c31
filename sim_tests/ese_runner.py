"""Verilator runs of the ESE engine (``rtl/ese.py``) under cocotb (``sim_tests/ese_tb.py``).

One build per (config, frame slots, slot words) serves every image of the config: the
image is loaded through the host port, or with ``bake=True`` from ``$readmemh`` side files
in the run's working directory. Builds are cached like EIE's (``sim_tests.runner``).
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np
from cocotb_tools.runner import get_runner

from contract.lstm_image import LSTMImage, read_lstm_image, write_lstm_image
from rtl.ese_verilog import convert_ese
from sim_tests import jobs
from sim_tests.runner import (
    BUILD_ARGS,
    JOB_ENV,
    SIM_BUILD,
    TIMESCALE,
    _build,
    _control_file,
    _Plan,
    _tail,
    build_key,
    verilator_env,
)

__all__ = ["simulate_lstm", "build_ese", "TOPLEVEL", "SIM_FRAME_SLOTS", "SIM_SLOT_WORDS"]

TOPLEVEL = "ese_top"
#: Ring sizes of the simulation builds: every frame of a test sequence fits (T <= 64), so
#: a run loads everything and awaits done.
SIM_FRAME_SLOTS = 64
SIM_SLOT_WORDS = 64


@functools.lru_cache(maxsize=4)
def _unbaked(config, frame_slots: int, slot_words: int) -> str:
    return convert_ese(config, frame_slots=frame_slots, slot_words=slot_words,
                       name=TOPLEVEL)[0]


def _plan(config, *, build_dir, opt, frame_slots, slot_words, bake_image=None) -> _Plan:
    opt = opt or "-O1"
    root = Path(build_dir) if build_dir is not None else SIM_BUILD
    name = (f"ese_{config.config_id:08x}_{frame_slots}x{slot_words}_{opt.lstrip('-')}"
            + ("_baked" if bake_image is not None else ""))
    out = (root / name).resolve()
    if bake_image is None:
        verilog, side = _unbaked(config, frame_slots, slot_words), {}
    else:
        verilog, side = convert_ese(config, image=bake_image, frame_slots=frame_slots,
                                    slot_words=slot_words, name=TOPLEVEL)
    control = _control_file(verilog, TOPLEVEL)
    build_args = list(BUILD_ARGS)
    flags = {"build_args": build_args, "opt": opt, "toplevel": TOPLEVEL,
             "timescale": list(TIMESCALE), "baked": bake_image is not None}
    return _Plan(out, verilog, side, control, build_args, None, opt,
                 build_key(verilog, control, flags))


def build_ese(config, *, build_dir=None, opt=None, frame_slots=SIM_FRAME_SLOTS,
              slot_words=SIM_SLOT_WORDS) -> Path:
    """Verilate the engine for ``config`` (cached); return the build directory."""
    return _build(_plan(config, build_dir=build_dir, opt=opt, frame_slots=frame_slots,
                        slot_words=slot_words), TOPLEVEL)


def _timeout(image: LSTMImage, steps: int) -> int:
    mats = image.matrices
    n = image.config.n_pes
    per_tile = [60 + 2 * d.out_local + 2 * d.in_local * n + mats.config.entries_per_word
                * int(np.max(np.count_nonzero(mats.spmat, axis=1))) for d in mats.program]
    return 20_000 + 2 * steps * (sum(per_tile) + 100 + image.config.channel.act_depth)


def simulate_lstm(image, q, *, build_dir=None, opt=None, host_idle: float = 0.0, seed=0,
                  reset_after=None, bake: bool = False, frame_slots=SIM_FRAME_SLOTS,
                  slot_words=SIM_SLOT_WORDS, timeout_cycles=None) -> dict:
    """Run raw frames ``q`` [batch, T, n_in] (or [T, n_in]) through the RTL.

    Sequence ``b`` runs on channel ``b mod C``, a group of C sequences per run.
    Returns ``q`` int64 [batch, T, n_out] outputs, ``cycles`` int64 [batch, T] measured
    per frame, ``totals`` per group, ``config_id``.
    """
    if not isinstance(image, LSTMImage):
        image = read_lstm_image(image)
    q = np.asarray(q, np.int64)
    single = q.ndim == 2
    q3 = q[None] if single else q
    if q3.ndim != 3 or q3.shape[2] != image.n_in:
        raise ValueError(f"inputs must have shape [batch, T, {image.n_in}], not {q.shape}")
    plan = _plan(image.config, build_dir=build_dir, opt=opt, frame_slots=frame_slots,
                 slot_words=slot_words, bake_image=image if bake else None)
    out = _build(plan, TOPLEVEL)
    verilator_env()
    with tempfile.TemporaryDirectory(prefix="run_", dir=out) as tmp:
        tmp = Path(tmp)
        for file, contents in plan.side_files.items():
            (tmp / file).write_text(contents)
        write_lstm_image(image, tmp / "image", formats=("bin",))
        job = {"image": str(tmp / "image"), "q": q3, "load": not bake,
               "host_idle": float(host_idle), "seed": int(seed), "reset_after": reset_after,
               "frame_slots": frame_slots, "slot_words": slot_words,
               "timeout_cycles": timeout_cycles or _timeout(image, q3.shape[1]),
               "result": str(tmp / "result")}
        jobs.save(tmp / "job", job)
        runner = get_runner("verilator")
        try:
            runner.test(test_module="sim_tests.ese_tb", hdl_toplevel=TOPLEVEL, build_dir=out,
                        hdl_toplevel_lang="verilog", test_dir=tmp,
                        extra_env={JOB_ENV: str(tmp / "job")},
                        results_xml=str(tmp / "results.xml"), log_file=tmp / "sim.log")
        except SystemExit as exc:
            raise RuntimeError(f"simulation failed ({exc}):\n{_tail(tmp / 'sim.log')}") from None
        if not (tmp / "result" / "job.json").exists():
            raise RuntimeError(f"simulation produced no result:\n{_tail(tmp / 'sim.log')}")
        result = jobs.load(tmp / "result")
    if single:
        result["q"], result["cycles"] = result["q"][0], result["cycles"][0]
    return result

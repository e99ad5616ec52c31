"""``eie sim --host axi``: the host driver (:mod:`eie.driver`) against the RTL behind its
AXI4-Lite wrapper, under Verilator + cocotb (``eie/axi_sim_tb.py`` is the cocotb side).

The design is the board's: :class:`rtl.axi_host.AxiHost` around the EIE array, or
:class:`boards.ese_vivado.ESEAxiHost` around the ESE top with the board's frame rings
(``frame_slots`` 2 by default, so a sequence longer than that streams through the rings
as on the board). Builds are cached per design like ``sim_tests.runner``'s.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from boards.ese_vivado import ESEAxiHost
from contract.image import PackedImage
from contract.image_write import write_image
from contract.lstm_image import LSTMImage, write_lstm_image
from rtl.axi_host import AxiHost
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

from .driver import _as_image, default_slot_words

__all__ = ["simulate_axi", "TOPLEVEL"]

TOPLEVEL = "axi_top"


def _plan(design, name: str, *, build_dir, opt) -> _Plan:
    from amaranth.back import verilog  # Amaranth only when a simulation is asked for

    opt = opt or "-O1"
    root = Path(build_dir) if build_dir is not None else SIM_BUILD
    text = verilog.convert(design, name=TOPLEVEL, emit_src=False)
    control = _control_file(text, TOPLEVEL)
    build_args = list(BUILD_ARGS)
    flags = {"build_args": build_args, "opt": opt, "toplevel": TOPLEVEL,
             "timescale": list(TIMESCALE)}
    out = (root / f"{name}_{opt.lstrip('-')}").resolve()
    return _Plan(out, text, {}, control, build_args, None, opt,
                 build_key(text, control, flags))


def simulate_axi(image, x_q, *, stall: float = 0.0, seed: int = 0, frame_slots: int = 2,
                 slot_words: int | None = None, build_dir=None, opt=None,
                 poll_limit: int = 1_000_000, c_lib=None, c_ops=None) -> dict:
    """Run raw inputs through the driver over the simulated AXI4-Lite port.

    Parameters
    ----------
    image : PackedImage, LSTMImage or image directory
    x_q : raw inputs: EIE [n_in] or [batch, n_in]; ESE [T, n_in] or [batch, T, n_in]
    stall : probability that the AXI master stalls each channel each cycle
    seed : seed of the stall pattern
    frame_slots, slot_words : ESE frame rings of the design (default the board's:
        2 slots of :func:`eie.driver.default_slot_words` words)
    build_dir, opt : as :func:`sim_tests.runner.build`
    poll_limit : status polls a run may take
    c_lib, c_ops : run the C driver of ``sw/`` instead: ``c_lib`` is ``eie_driver.c``
        built as a shared library with ``-DEIE_MMIO_HOOKS``, ``c_ops`` ESE's
        ``sw/ese_ops.bin`` (returns ``q`` and ``cycles`` only)

    Returns
    -------
    dict
        What :meth:`eie.driver.Driver.run` returns (``q``, ``cycles``, and EIE's
        ``cycles_per_layer`` or ESE's ``totals``), plus ``config_id``, ``axi_reads``,
        ``axi_writes``.
    """
    image = _as_image(image)
    cfg = image.config
    if isinstance(image, LSTMImage):
        slot_words = slot_words or default_slot_words(image)
        design = ESEAxiHost(cfg, frame_slots=frame_slots, slot_words=slot_words)
        name = f"axi_ese_{cfg.config_id:08x}_{frame_slots}x{slot_words}"
    else:
        design = AxiHost(cfg)
        name = f"axi_eie_{cfg.config_id:08x}"
    plan = _plan(design, name, build_dir=build_dir, opt=opt)
    out = _build(plan, TOPLEVEL)
    verilator_env()
    from cocotb_tools.runner import get_runner  # the cocotb runner only when simulating

    with tempfile.TemporaryDirectory(prefix="run_", dir=out) as tmp:
        tmp = Path(tmp)
        if isinstance(image, PackedImage):
            write_image(image, tmp / "image", formats=("bin",))
        else:
            write_lstm_image(image, tmp / "image", formats=("bin",))
        job = {"image": str(tmp / "image"), "q": np.asarray(x_q, np.int64),
               "stall": float(stall), "seed": int(seed), "slot_words": slot_words,
               "poll_limit": int(poll_limit), "result": str(tmp / "result"),
               "c_lib": None if c_lib is None else str(Path(c_lib).resolve()),
               "c_ops": None if c_ops is None else str(Path(c_ops).resolve())}
        jobs.save(tmp / "job", job)
        try:
            get_runner("verilator").test(
                test_module="eie.axi_sim_tb", hdl_toplevel=TOPLEVEL, build_dir=out,
                hdl_toplevel_lang="verilog", test_dir=tmp, extra_env={JOB_ENV: str(tmp / "job")},
                results_xml=str(tmp / "results.xml"), log_file=tmp / "sim.log")
        except SystemExit as exc:
            raise RuntimeError(f"simulation failed ({exc}):\n{_tail(tmp / 'sim.log')}") from None
        if not (tmp / "result" / "job.json").exists():
            raise RuntimeError(f"simulation produced no result:\n{_tail(tmp / 'sim.log')}")
        return jobs.load(tmp / "result")

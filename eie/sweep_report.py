"""The files of ``eie sweep``: ``sweep.csv``, ``sweep.json``, ``pareto.png`` and
``report.md`` (docs/sweep.md). Rendered in memory first; written only when all succeeded."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
from pathlib import Path

from .sweep_tasks import CLOCK_HZ, RESOURCES

__all__ = ["check_folder", "write", "build_commands", "pareto_png"]


def check_folder(output) -> Path:
    """``output`` as the folder to write into: not a file, not under a file, writable (the
    first folder that exists on its path). Nothing is made here."""
    folder = Path(output)
    for parent in (folder, *folder.parents):
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"-o {os.fspath(output)}: {parent} is a file, expected a "
                                 f"folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise ValueError(f"-o {os.fspath(output)}: folder {parent} is not writable")
            break
    return folder


def _csv(table) -> str:
    columns = [k for k in table[0] if k != "config"] if table else []
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in table:
        writer.writerow({k: "" if r.get(k) is None else r[k] for k in columns})
    return buffer.getvalue()


def _flag(name: str) -> str:
    return "--pes" if name == "n_pes" else "--" + name.replace("_", "-")


def build_commands(record: dict, *, model, lstm: bool, base, config_given: bool,
                   balance: bool) -> list[str]:
    """The ``eie pack`` and ``eie build`` commands that build a point: every config field
    that differs from the default is a flag (so the command does not depend on the file a
    ``--config`` came from)."""
    from contract.config import EIEConfig
    from contract.lstm_config import DEFAULT_CHANNEL, ESEConfig

    cfg = record["config"]
    flags = []
    channel = cfg["channel"] if lstm else cfg
    # every field, broadcast_width too (to_dict leaves it out at its default of 1)
    default = dataclasses.asdict(DEFAULT_CHANNEL if lstm else EIEConfig())
    flags += [f"{_flag(k)} {v}" for k, v in channel.items() if default[k] != v]
    if lstm:
        top = ESEConfig().to_dict()
        flags += [f"{_flag(k)} {v}" for k, v in cfg.items()
                  if k != "channel" and top[k] != v]
    if record.get("density") is not None:
        flags.append(f"--density {record['density']:g}")
        if balance:
            flags.append("--balance")
    model_name = os.fspath(model) if isinstance(model, (str, os.PathLike)) else "MODEL"
    pack = f"eie pack {model_name} -o img {' '.join(flags)}".rstrip()
    return [pack, "eie build --board ku060 --image img -o build/ku060"]


def pareto_png(table) -> bytes:
    """Latency against LUT and against BRAM36: fitting points filled, points that do not
    fit open, the Pareto points ringed and joined, the KU060 capacity as a line."""
    # matplotlib is slow to import and only this picture needs it (no pyplot: a bare
    # Figure has no global state or GUI backend).
    from matplotlib.figure import Figure

    from boards.resources import KU060

    figure = Figure(figsize=(10, 4.2), layout="constrained")
    swept = _swept(table)
    ok = [r for r in table if r["status"] == "ok"]
    for position, (key, label) in enumerate((("lut", "LUT"), ("bram36", "BRAM36"))):
        axes = figure.add_subplot(1, 2, position + 1)
        have = [r for r in ok if r.get(key) is not None]
        fit = [r for r in have if r["fits"]]
        over = [r for r in have if not r["fits"]]
        axes.plot([r[key] for r in fit], [r["latency_us"] for r in fit], "o",
                  color="tab:blue", label="fits the KU060")
        axes.plot([r[key] for r in over], [r["latency_us"] for r in over], "o",
                  color="tab:red", markerfacecolor="none", label="does not fit")
        front = sorted((r for r in have if r["pareto"]), key=lambda r: r[key])
        axes.plot([r[key] for r in front], [r["latency_us"] for r in front], "-o",
                  color="black", markerfacecolor="none", markersize=11, linewidth=0.8,
                  label="Pareto-optimal")
        for r in have:
            axes.annotate(_label(r, swept), (r[key], r["latency_us"]), fontsize=6,
                          xytext=(3, 3), textcoords="offset points")
        if have and max(r[key] for r in have) >= 0.5 * KU060[key]:
            axes.axvline(KU060[key], color="gray", linewidth=0.8, linestyle="--")
        axes.set_xlabel(f"{label} (Yosys estimate)")
        axes.set_ylabel(f"latency, µs at {CLOCK_HZ / 1e6:g} MHz")
        axes.grid(True, alpha=0.3)
        if not have:
            axes.text(0.5, 0.5, f"{label}: not estimated", ha="center",
                      transform=axes.transAxes)
        axes.legend(fontsize=7)
    figure.suptitle("eie sweep: latency vs resources (KU060)", fontsize=10)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    return buffer.getvalue()


def _swept(table) -> list[str]:
    fixed = {"index", "status", "reason", "cycles_mean", "cycles_max", "latency_us",
             *RESOURCES, "fits", "estimate", "accuracy", "pareto", "rtl_bit_exact",
             "rtl_cycle_exact", "engine", "config", "clock_mhz"}
    return [k for k in table[0] if k not in fixed] if table else []


def _label(r, swept) -> str:
    short = {"n_pes": "N", "queue_depth": "q", "channels": "C", "density": "d",
             "weight_bits": "b"}
    return " ".join(f"{short.get(k, k)}{r[k]}" for k in swept) or str(r["index"])


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def _markdown(table, commands, stats, grid, data) -> str:
    swept = _swept(table)
    lines = [f"# eie sweep: {len(table)} points on the KU060 ({table[0]['engine'].upper()} "
             f"engine)" if table else "# eie sweep: no points", ""]
    lines.append("grid: " + ", ".join(f"{k} {v}" for k, v in grid.items()))
    where = (f"the first samples of {data}" if isinstance(data, (str, os.PathLike)) else
             "the data's first samples" if data is not None else
             "generated (eie.sweep.default_inputs)")
    lines.append(f"inputs of the cycle model: {where}; latency = mean cycles / "
                 f"{CLOCK_HZ / 1e6:g} MHz")
    lines.append("")
    best = table.recommended
    if best is None:
        lines.append("**No point packs and fits the KU060**; see the reasons below.")
    else:
        r = table[best]
        lines.append(f"## Recommended: point {best} ({_label(r, swept)})")
        lines.append("")
        lines.append(f"The lowest latency of the Pareto-optimal points that fit: "
                     f"{r['latency_us']:.4g} µs ({r['cycles_mean']:.1f} cycles), LUT "
                     f"{_fmt(r['lut'])}, BRAM36 {_fmt(r['bram36'])}, accuracy "
                     f"{_fmt(r['accuracy'])}. Build it with:")
        lines += ["", "```", *commands, "```", ""]
    head = ["index", *swept, "status", "cycles", "latency µs", "LUT", "FF", "DSP", "BRAM36",
            "fits", "accuracy", "Pareto", "RTL bit/cycle-exact"]
    lines += ["## All points", "", "| " + " | ".join(head) + " |",
              "|" + "---|" * len(head)]
    for r in table:
        rtl = ("n/a" if r["rtl_bit_exact"] is None else
               f"{_fmt(r['rtl_bit_exact'])}/{_fmt(r['rtl_cycle_exact'])}")
        status = r["status"] if r["status"] == "ok" else f"skipped: {r['reason']}"
        cells = [r["index"], *(r[k] for k in swept), status, _fmt(r["cycles_mean"]),
                 _fmt(r["latency_us"]), *(_fmt(r[k]) for k in RESOURCES), _fmt(r["fits"]),
                 _fmt(r["accuracy"]), "**yes**" if r["pareto"] else "", rtl]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    lines += ["", f"resource estimates: {_fmt(table[0]['estimate']) if table else 'n/a'} "
              f"(docs/sweep.md); cache: {stats.get('points_cached', 0)} of "
              f"{stats.get('points', 0)} points; {stats.get('design_lookups', 0)} design "
              f"estimates needed, {stats.get('designs', 0)} distinct, "
              f"{stats.get('designs_synthesised', 0)} synthesised (the rest from the cache)",
              "",
              "![latency vs LUT and BRAM36](pareto.png)", ""]
    return "\n".join(lines)


def write(folder: Path, table, *, model, lstm, base, config_given, balance, grid, data,
          stats) -> list[str]:
    """Render every file, then write them into ``folder``; the paths written."""
    commands = ([] if table.recommended is None else
                build_commands(table[table.recommended], model=model, lstm=lstm,
                               base=base, config_given=config_given, balance=balance))
    png = pareto_png(table)
    files = {
        "sweep.csv": _csv(table).encode(),
        "sweep.json": (json.dumps({"board": "ku060", "clock_hz": CLOCK_HZ,
                                   "grid": grid, "recommended": table.recommended,
                                   "commands": commands, "stats": stats,
                                   "points": list(table)}, indent=1, default=str)
                       + "\n").encode(),
        "pareto.png": png,
        "report.md": _markdown(table, commands, stats, grid, data).encode(),
    }
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, content in files.items():
        (folder / name).write_bytes(content)
        paths.append(str(folder / name))
    return paths

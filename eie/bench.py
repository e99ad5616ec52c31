"""Benchmarks (``eie bench compiler`` / ``eie bench eie``): reports, never timed tests.

The EIE layer table below is copied from the EIE paper (Han et al., ISCA'16, Table III/IV
and Fig. 9) so the project does not depend on anything outside its tree.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np

import golden
from compiler import DenseLayer, QuantLayer, balance_prune, pack, pack_reference, share_weights
from contract.config import ConfigError, EIEConfig
from contract.host_map import MAX_HOST_DEPTH
from golden.model import decode_program
from sim_tests.runner import simulate

from . import progress

__all__ = ["run", "EIE_LAYERS", "bench_compiler", "bench_eie", "bench_scaling",
           "eie_bench_config", "random_quant_layer", "scaling_goals"]

# name, n_in, n_out, weight density, activation density, EIE theoretical us, EIE actual us
EIE_LAYERS = [
    ("Alex-6", 9216, 4096, 0.09, 0.351, 28.1, 30.3),
    ("Alex-7", 4096, 4096, 0.09, 0.353, 11.7, 12.2),
    ("Alex-8", 4096, 1000, 0.25, 0.375, 8.9, 9.9),
    ("VGG-6", 25088, 4096, 0.04, 0.183, 28.1, 34.4),
    ("VGG-7", 4096, 4096, 0.04, 0.375, 7.9, 8.7),
    ("VGG-8", 4096, 1000, 0.23, 0.411, 7.3, 8.4),
    ("NT-We", 4096, 600, 0.10, 1.00, 5.2, 8.0),
    ("NT-Wd", 600, 8791, 0.11, 1.00, 13.0, 13.9),
    ("NT-LSTM", 1201, 2400, 0.10, 1.00, 6.5, 7.5),
]
EIE_CLOCK_MHZ = 800
QUEUE_SWEEP = (1, 2, 4, 8, 16, 32)


def random_quant_layer(name, n_in, n_out, density, rng, bits=4, relu=False):
    mask = rng.random((n_out, n_in)) < density
    indices = np.where(mask, rng.integers(1, 1 << bits, size=(n_out, n_in)), 0)
    codebook = np.concatenate([[0.0], np.linspace(-0.5, 0.5, (1 << bits) - 1)])
    return QuantLayer(name=name, indices=indices.astype(np.uint8), codebook=codebook,
                      bias=None, relu=relu)


def random_activations(n, density, rng, config: EIEConfig) -> np.ndarray:
    """Raw fixed-point activations with the given fraction of non-zeros (ReLU outputs)."""
    mask = rng.random(n) < density
    values = rng.integers(1, 1 << (config.act_bits - 2), size=n)
    return np.where(mask, values, 0).astype(np.int64)


def _machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def _time(fn, repeat=3):
    best, result = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def _quiet_packer():
    """Random benchmark weights trip the packer's accumulator-wrap warning on every pack."""
    logging.getLogger("compiler.pack").setLevel(logging.ERROR)


def bench_compiler(out: Path, quick: bool = False) -> str:
    """Pack an ESE-size stack: 665 -> 4096 -> 128 (3.25M weights), 11% density, 32 PEs."""
    _quiet_packer()

    rng = np.random.default_rng(0)
    shapes = [(4096, 665), (128, 4096)] if not quick else [(1024, 665), (128, 1024)]
    config = EIEConfig(n_pes=32, acc_depth=128, act_depth=128, spmat_depth=4096,
                       ptr_depth=4096, bias_depth=256)
    dense = [DenseLayer(f"w{k}", rng.standard_normal(s) * 0.05, None, k == 0)
             for k, s in enumerate(shapes)]
    n_weights = sum(a * b for a, b in shapes)
    t_prune, pruned = _time(lambda: balance_prune(dense, 0.11, config.n_pes), repeat=1)
    t_kmeans, quant = _time(lambda: [share_weights(layer, bits=4) for layer in pruned], 1)
    t_pack, image = _time(lambda: pack(quant, config))
    t_ref, ref = _time(lambda: pack_reference(quant, config), repeat=1)
    same = all(np.array_equal(getattr(image, m), getattr(ref, m))
               for m in ("spmat", "ptr_even", "ptr_odd", "bias", "codebook"))
    nnz = sum(int(np.count_nonzero(q.indices)) for q in quant)
    lines = [
        "# eie bench compiler",
        f"machine: {_machine()}",
        f"stack: {' -> '.join(str(s[1]) for s in shapes)} -> {shapes[-1][0]}, "
        f"{n_weights:,} weights, {nnz:,} non-zeros ({nnz / n_weights:.1%}), "
        f"{config.n_pes} PEs",
        "",
        "| step | seconds |",
        "|---|---|",
        f"| load-balance-aware pruning | {t_prune:.3f} |",
        f"| k-means weight sharing (15 centroids, all layers) | {t_kmeans:.3f} |",
        f"| pack (vectorised, best of 3) | {t_pack:.3f} |",
        f"| pack (pure-Python reference) | {t_ref:.3f} |",
        "",
        f"pack speed-up over the pure-Python baseline: {t_ref / t_pack:.1f}x; "
        f"identical images: {same}; target <= 5 s: {'met' if t_pack <= 5 else 'MISSED'}",
    ]
    text = "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compiler.md").write_text(text + "\n")
    return text


#: ``eie_bench_config``'s default PE counts (full size, ``--quick``): their configs are the
#: hand-sized ones the recorded tables (docs/benchmarks.md) and cached builds use.
DEFAULT_PES, QUICK_PES = 64, 8


def eie_bench_config(quick: bool = False, queue_depth: int = 8, n_pes: int | None = None,
                     broadcast_width: int = 1) -> EIEConfig:
    """The bench's config: 64 PEs (8 with ``quick``), memories sized to fit every EIE layer.

    Parameters
    ----------
    quick : the ``--quick`` shapes (every EIE layer's shape / 8) instead of the paper's.
    queue_depth, broadcast_width : ``D`` and ``B``; neither changes an image's contents.
    n_pes : ``N``; None is 64 (8 with ``quick``), the hand-sized configs. Any other count
        gets memories sized for it by :func:`_sized_config`.

    Raises
    ------
    ConfigError
        a memory the layers need is deeper than the host address map reaches (too few PEs
        for the shapes), or ``B`` exceeds ``min(N, D)``.
    """
    default = QUICK_PES if quick else DEFAULT_PES
    if n_pes is not None and n_pes != default:
        return _sized_config(n_pes, quick, queue_depth, broadcast_width)
    if quick:
        # Shapes / 8 on 8 PEs: VGG-6's 3,136 inputs need 392 activations per PE.
        return EIEConfig(n_pes=8, queue_depth=queue_depth, acc_depth=64, act_depth=512,
                         spmat_depth=4096, ptr_depth=2048, bias_depth=64,
                         broadcast_width=broadcast_width)
    # VGG-6 puts ~101K entries (4% density plus padding) in one PE's tile: 17-bit pointers.
    return EIEConfig.paper(queue_depth=queue_depth, spmat_depth=16384, ptr_depth=16384,
                           act_depth=512, acc_depth=64, bias_depth=256, pointer_bits=17,
                           broadcast_width=broadcast_width)


def _pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def _sized_config(n_pes: int, quick: bool, queue_depth: int,
                  broadcast_width: int) -> EIEConfig:
    """Memories for the nine EIE layers (shapes / 8 with ``quick``) on ``n_pes`` PEs, each a
    power of two, from the shapes alone (the matrices are random), 64 accumulators per PE.

    act_depth holds ``ceil(n / N)`` of the longest input or output; ptr_depth a PE's
    pointers over all of a layer's row tiles (``ceil(n_out / (64 N))`` tiles of
    ``(n_in + 2) // 2`` per bank); spmat_depth and pointer_bits a PE's entries: in a tile
    of ``r`` rows per PE, ``r n_in d`` non-zeros (the expected count at density ``d``)
    plus at most one padding entry per 16 zeros (``r n_in (1 - d) / 16``: a zero run only
    needs one past 15 zeros), which bounds the measured entries with room to spare (VGG-6
    at 64 PEs: 160K bound, ~101K measured).
    """
    base = EIEConfig.paper if not quick else EIEConfig
    probe = base(n_pes=n_pes, queue_depth=queue_depth, acc_depth=64,
                 broadcast_width=broadcast_width)   # validates N, D, B first
    scale = 8 if quick else 1
    acc, epw, runs = probe.acc_depth, probe.entries_per_word, probe.max_run + 1
    need = {"act_depth": (1, ""), "ptr_depth": (1, ""), "spmat_depth": (1, "")}
    tile_entries = 0
    for name, n_in, n_out, density, *_ in EIE_LAYERS:
        n_in, n_out = max(1, n_in // scale), max(1, n_out // scale)
        tiles = -(-n_out // (n_pes * acc))
        rows = min(acc, -(-n_out // n_pes))
        entries = int(np.ceil(rows * n_in * (density + (1 - density) / runs)))
        tile_entries = max(tile_entries, entries)
        for field, value in (("act_depth", -(-max(n_in, n_out) // n_pes)),
                             ("ptr_depth", tiles * ((n_in + 2) // 2)),
                             ("spmat_depth", -(-tiles * entries // epw))):
            if value > need[field][0]:
                need[field] = (value, name)
    sizes = {field: _pow2(value) for field, (value, _) in need.items()}
    for field, size in sizes.items():
        if size > MAX_HOST_DEPTH:
            value, name = need[field]
            raise ConfigError(
                f"{n_pes} PEs: layer {name} needs {field} {value} per PE, more than the host "
                f"address map's {MAX_HOST_DEPTH}; use more PEs")
    return base(n_pes=n_pes, queue_depth=queue_depth, acc_depth=64,
                bias_depth=256 if not quick else 64,
                pointer_bits=max(16, tile_entries.bit_length()),
                broadcast_width=broadcast_width, **sizes)


def _layer_input(spec, config, rng, scale):
    name, n_in, n_out, wd, ad = spec[:5]
    n_in, n_out = max(1, n_in // scale), max(1, n_out // scale)
    layer = random_quant_layer(name, n_in, n_out, wd, rng)
    return layer, random_activations(n_in, ad, rng, config)


def _layer_case(spec, config, rng, scale, balance_rows: bool = False):
    layer, q = _layer_input(spec, config, rng, scale)
    return pack([layer], config, balance_rows=balance_rows), q


def _max_pe(report) -> int:
    """The busiest PE's entries, tile by tile: no schedule of this matrix can beat it."""
    return sum(int(t.span.busy.max()) for t in report.layers[0].tiles)


def _rows_text(balance_rows: bool) -> str:
    return ("balanced row assignment (--balance-rows)" if balance_rows
            else "default row assignment (row i -> PE i mod N)")


def bench_eie(out: Path, quick: bool = False, rtl: bool = True,
              balance_rows: bool = False, n_pes: int | None = None, queue_depth: int = 8,
              broadcast_width: int = 1) -> str:
    """The nine EIE layers on ``N`` PEs (:func:`eie_bench_config`): cycle model, and with
    ``rtl`` the RTL under Verilator (built from the image's config, ``B`` included),
    checked bit for bit against golden; writes ``out/eie.md``, ``out/eie.json`` and
    ``out/queue_sweep.png`` and returns the Markdown."""
    _quiet_packer()
    config = eie_bench_config(quick, queue_depth, n_pes, broadcast_width)
    scale = 8 if quick else 1
    rng = np.random.default_rng(0)
    rows, cases, before = [], [], []
    for spec in EIE_LAYERS:
        layer, q = _layer_input(spec, config, rng, scale)
        image = pack([layer], config, balance_rows=balance_rows)
        report = golden.cycles(image, q)
        cases.append((spec, image, q, report))
        if balance_rows:
            before.append(golden.cycles(pack([layer], config), q))
    rtl_cycles = _simulate_cases(cases) if rtl else [None] * len(cases)
    lines = ["# eie bench eie", f"machine: {_machine()}",
             f"config: N = {config.n_pes} PEs, queue depth D = {config.queue_depth}, "
             f"broadcast width B = {config.broadcast_width}, {_rows_text(balance_rows)}; "
             f"random matrices and inputs with each layer's shape, weight density and "
             f"activation density{f' (shapes / {scale}, --quick)' if quick else ''}"
             f"{'' if rtl else '; cycle model only (--no-rtl)'}",
             "",
             "| layer | RTL cycles | model cycles | compute | ideal | max-PE bound | "
             f"load-balance eff. | µs @ {EIE_CLOCK_MHZ} MHz | EIE actual µs | "
             "EIE theor. µs | cycles <= EIE actual x 800 |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (spec, _image, _q, report), rc in zip(cases, rtl_cycles, strict=True):
        layer = report.layers[0]
        cyc = rc if rc is not None else report.total
        us = cyc / EIE_CLOCK_MHZ
        ok = cyc <= spec[6] * EIE_CLOCK_MHZ
        max_pe = _max_pe(report)
        rows.append(dict(layer=spec[0], rtl_cycles=rc, model_cycles=report.total,
                         compute=layer.compute, ideal=layer.ideal, max_pe=max_pe,
                         efficiency=layer.efficiency, us=us))
        lines.append(
            f"| {spec[0]} | {rc if rc is not None else 'n/a'} | {report.total} | "
            f"{layer.compute} | {layer.ideal} | {max_pe} | {layer.efficiency:.3f} | "
            f"{us:.2f} | {spec[6]} | {spec[5]} | {'yes' if ok else 'no'} |")
    if rtl:
        differ = [r["layer"] for r in rows if r["rtl_cycles"] != r["model_cycles"]]
        lines += ["", "RTL cycles == cycle model on every layer: "
                  + ("yes" if not differ else f"NO ({', '.join(differ)} differ)")]
    if balance_rows:
        lines += ["", "Balanced row assignment: busiest PE's entries (padding included, "
                  "active columns) vs the ideal (all entries / PEs), default layout "
                  "(row i -> PE i mod N) and balanced, same matrices and inputs:", "",
                  "| layer | ideal | max-PE default | max-PE / ideal | max-PE balanced | "
                  "max-PE / ideal | cycles default | cycles balanced |",
                  "|---|---|---|---|---|---|---|---|"]
        for (spec, _i, _q, report), old in zip(cases, before, strict=True):
            ideal, m0, m1 = report.layers[0].ideal, _max_pe(old), _max_pe(report)
            lines.append(f"| {spec[0]} | {ideal} | {m0} | {m0 / ideal:.3f} | {m1} | "
                         f"{m1 / ideal:.3f} | {old.total} | {report.total} |")
    sweep = _queue_sweep(out, cases[1][1], cases[1][2])
    lines += ["", "Queue-depth sweep on Alex-7 (cycle model, which the RTL regression "
              "matches cycle for cycle):", "",
              "| queue depth | cycles | load-balance eff. |", "|---|---|---|"]
    lines += [f"| {d} | {c} | {e:.3f} |" for d, c, e in sweep]
    lines += ["", f"plot: {out / 'queue_sweep.png'}"]
    text = "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    (out / "eie.md").write_text(text + "\n")
    (out / "eie.json").write_text(json.dumps(rows, indent=1))
    return text


def _simulate_cases(cases, load: str = "backdoor", seconds: list | None = None):
    """RTL cycles of every case. One Verilator build serves every layer; each image is
    loaded by backdoor (``$readmemh`` side files written into the run directory), or with
    ``load="host"`` through the host port (non-zero words only, 30-80 µs per write under
    cocotb). ``seconds``, when given, gets each run's wall time (build excluded when
    cached)."""
    results = []
    for spec, image, q, _report in cases:
        t0 = time.perf_counter()
        sim = simulate(image, q[None, :], opt="-O1", load=load)
        if seconds is not None:
            seconds.append(time.perf_counter() - t0)
        results.append(int(np.asarray(sim["cycles_total"]).reshape(-1)[0]))
        got = np.asarray(sim["q"]).reshape(-1)
        if not np.array_equal(got, golden.run(image, q[None, :]).q.reshape(-1)):
            raise AssertionError(f"{spec[0]}: RTL output differs from golden")
    return results


def compare_load(quick: bool = False) -> str:
    """The nine ``eie bench eie`` RTL runs with each image load (host port, backdoor),
    interleaved layer by layer on one build: a Markdown table of run seconds (the build
    excluded). Not part of ``eie bench eie``: the host-port runs take many minutes."""
    _quiet_packer()
    config = eie_bench_config(quick)
    rng = np.random.default_rng(0)
    cases = [(spec, *_layer_case(spec, config, rng, 8 if quick else 1), None)
             for spec in EIE_LAYERS]
    _simulate_cases(cases[:1], load="backdoor")          # build (or reuse) first
    lines = ["| layer | RTL cycles | host-port load: run s | backdoor load: run s |",
             "|---|---|---|---|"]
    total = {"host": 0.0, "backdoor": 0.0}
    for case in cases:
        row = {}
        for load in ("host", "backdoor"):
            seconds = []
            row[load] = (_simulate_cases([case], load=load, seconds=seconds)[0], seconds[0])
            total[load] += seconds[0]
        if row["host"][0] != row["backdoor"][0]:
            raise AssertionError(f"{case[0][0]}: the load paths give different cycles")
        lines.append(f"| {case[0][0]} | {row['host'][0]} | {row['host'][1]:.1f} | "
                     f"{row['backdoor'][1]:.1f} |")
    lines.append(f"| all nine | | {total['host']:.1f} | {total['backdoor']:.1f} |")
    return "\n".join(lines)


def _queue_sweep(out: Path, image, q):
    """Alex-7 (the table's own case) at every queue depth (from ``B`` up: a queue takes
    up to ``B`` columns a cycle), on the cycle model."""
    spec = EIE_LAYERS[1]
    sweep = []
    for depth in (d for d in QUEUE_SWEEP if d >= image.config.broadcast_width):
        config = dataclasses.replace(image.config, queue_depth=depth)
        layer = golden.cycles(dataclasses.replace(image, config=config), q).layers[0]
        sweep.append((depth, layer.cycles, layer.efficiency))
    # matplotlib is only needed for this plot; importing it costs `eie --help` 0.5 s.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot([d for d, _, _ in sweep], [e for _, _, e in sweep], marker="o")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("activation queue depth")
    ax.set_ylabel("load-balance efficiency")
    ax.set_title(f"{spec[0]}, {image.config.n_pes} PEs, B = {image.config.broadcast_width}")
    ax.grid(True, alpha=0.3)
    out.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out / "queue_sweep.png", dpi=120)
    plt.close(fig)
    return sweep


#: The scaling study (``eie bench scaling``): PE counts, broadcast widths, and the PE count
#: of the goal figures (efficiency there, speedup from there to the largest count).
SCALING_PES = (16, 32, 64, 128, 256)
SCALING_WIDTHS = (1, 2, 4)
SCALING_BASE = 64
#: ``--quick``: the shapes / 8 on PE counts / 8 (from 4: ``B = 4`` needs 4 PEs).
QUICK_SCALING_PES = (4, 8, 16, 32)
QUICK_SCALING_BASE = 8
#: EIE's reported 64 -> 256 PE speedup (geometric mean over the nine layers, Fig. 12).
EIE_SPEEDUP_64_256 = 3.25


def scaling_goals(rows: list[dict], base: int, top: int) -> dict:
    """The goal figures per broadcast width from the scaling table's rows (dicts with
    ``layer``, ``broadcast_width``, ``n_pes``, ``cycles``, ``efficiency``): the lowest
    load-balance efficiency at ``base`` PEs over the layers (and its layer), and the
    geometric mean over the layers of the ``base -> top`` speedup ``cycles(base) /
    cycles(top)``."""
    goals = {}
    for b in sorted({r["broadcast_width"] for r in rows}):
        at = {(r["layer"], r["n_pes"]): r for r in rows if r["broadcast_width"] == b}
        layers = list(dict.fromkeys(r["layer"] for r in rows if r["broadcast_width"] == b))
        eff = {name: at[name, base]["efficiency"] for name in layers}
        worst = min(eff, key=eff.get)
        speedups = [at[name, base]["cycles"] / at[name, top]["cycles"] for name in layers]
        goals[b] = dict(min_efficiency=eff[worst], min_efficiency_layer=worst,
                        speedup_geomean=float(np.exp(np.mean(np.log(speedups)))))
    return goals


def bench_scaling(out: Path, quick: bool = False, queue_depth: int = 8,
                  pes: tuple[int, ...] | None = None,
                  widths: tuple[int, ...] = SCALING_WIDTHS,
                  base: int | None = None) -> str:
    """The nine EIE layers (the matrices and inputs of :func:`bench_eie`) on every PE count
    of ``pes`` (default 16..256; 4..32 with ``quick``) and broadcast width of ``widths``,
    balanced row assignment, queue depth ``queue_depth``, on the cycle model (which the RTL
    equals cycle for cycle: the Verilator regression at small sizes, ``eie bench eie`` at
    64 PEs). Writes ``out/scaling.md``, ``out/scaling.json`` and ``out/scaling.png``;
    returns the Markdown.

    The table gives each layer's cycles, speedup over ``pes[0]`` and load-balance
    efficiency; the goal figures (:func:`scaling_goals`) are the lowest efficiency at
    ``base`` PEs (default 64; 8 with ``quick``) and the geometric-mean speedup from ``base``
    to ``pes[-1]`` PEs.
    """
    _quiet_packer()
    pes = tuple(pes or (QUICK_SCALING_PES if quick else SCALING_PES))
    base = base or (QUICK_SCALING_BASE if quick else SCALING_BASE)
    if base not in pes:
        raise ValueError(f"the goal figures' PE count {base} is not one of {pes}")
    scale = 8 if quick else 1
    configs = {n: eie_bench_config(quick, queue_depth, n) for n in pes}
    for n, b in ((n, b) for n in pes for b in widths):
        dataclasses.replace(configs[n], broadcast_width=b)      # ConfigError before work
    rng = np.random.default_rng(0)
    inputs = [(spec, *_layer_input(spec, configs[pes[0]], rng, scale)) for spec in EIE_LAYERS]
    rows = []
    t0 = time.perf_counter()
    with progress.steps("pack + cycle model", len(pes) * len(inputs)) as advance:
        for n in pes:
            for spec, layer, q in inputs:
                image = pack([layer], configs[n], balance_rows=True)
                tiles = decode_program(image)
                for b in widths:
                    wide = dataclasses.replace(
                        image, config=dataclasses.replace(configs[n], broadcast_width=b))
                    report = golden.cycles(wide, q, tiles=tiles)
                    rows.append(dict(layer=spec[0], n_pes=n, broadcast_width=b,
                                     cycles=report.total,
                                     efficiency=report.layers[0].efficiency))
                advance()
    seconds = time.perf_counter() - t0
    first = {(r["layer"], r["broadcast_width"]): r["cycles"] for r in rows
             if r["n_pes"] == pes[0]}
    for r in rows:
        r["speedup"] = first[r["layer"], r["broadcast_width"]] / r["cycles"]
    goals = scaling_goals(rows, base, pes[-1])
    text = _scaling_text(rows, goals, pes, widths, base, queue_depth, quick, seconds)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scaling.md").write_text(text + "\n")
    (out / "scaling.json").write_text(json.dumps(dict(
        pes=list(pes), widths=list(widths), base=base, queue_depth=queue_depth, quick=quick,
        balance_rows=True, configs={str(n): c.to_dict() for n, c in configs.items()},
        goals={str(b): g for b, g in goals.items()}, rows=rows), indent=1))
    _scaling_plot(out / "scaling.png", rows, pes, widths, queue_depth)
    return text


def _scaling_text(rows, goals, pes, widths, base, queue_depth, quick, seconds) -> str:
    top = pes[-1]
    at = {(r["layer"], r["n_pes"], r["broadcast_width"]): r for r in rows}
    names = [spec[0] for spec in EIE_LAYERS]
    head = " | ".join(f"{n} PEs" for n in pes)
    rule = "|---|---|" + "---|" * len(pes)
    lines = ["# eie bench scaling", f"machine: {_machine()}",
             f"config: N = {', '.join(map(str, pes))} PEs (memories sized per N, "
             f"eie.bench.eie_bench_config), queue depth D = {queue_depth}, broadcast width "
             f"B = {', '.join(map(str, widths))}, {_rows_text(True)}; the matrices and inputs "
             f"of eie bench eie{' (shapes / 8, --quick)' if quick else ''}; cycle model "
             f"(equal to the RTL cycle for cycle), {seconds:.1f} s",
             "", f"Goals: load-balance efficiency at {base} PEs (lowest of the nine layers; "
             f"goal >= 0.95), {base} -> {top} PE speedup (geometric mean over the nine "
             f"layers; goal >= 3.6x, EIE reported {EIE_SPEEDUP_64_256}x from 64 to 256, linear "
             f"{top / base:g}x):", "",
             f"| B | min eff. @ {base} PEs | layer | eff. >= 0.95 | {base} -> {top} speedup "
             "| speedup >= 3.6 |", "|---|---|---|---|---|---|"]
    for b, g in goals.items():
        lines.append(f"| {b} | {g['min_efficiency']:.3f} | {g['min_efficiency_layer']} | "
                     f"{'yes' if g['min_efficiency'] >= 0.95 else 'no'} | "
                     f"{g['speedup_geomean']:.2f} | "
                     f"{'yes' if g['speedup_geomean'] >= 3.6 else 'no'} |")
    for title, key, fmt in ((f"Speedup over {pes[0]} PEs", "speedup", "{:.2f}"),
                            ("Cycles", "cycles", "{}"),
                            ("Load-balance efficiency", "efficiency", "{:.3f}")):
        lines += ["", f"{title}:", "", f"| layer | B | {head} |", rule]
        for name in names:
            for b in widths:
                cells = " | ".join(fmt.format(at[name, n, b][key]) for n in pes)
                lines.append(f"| {name} | {b} | {cells} |")
    return "\n".join(lines)


def _scaling_plot(path: Path, rows, pes, widths, queue_depth) -> None:
    """One panel per B: each layer's speedup over ``pes[0]`` against N (log2 axes), with
    the linear speedup dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(widths), figsize=(4.2 * len(widths), 3.8), sharey=True,
                             squeeze=False)
    for ax, b in zip(axes[0], widths, strict=True):
        for spec in EIE_LAYERS:
            mine = sorted((r["n_pes"], r["speedup"]) for r in rows
                          if r["layer"] == spec[0] and r["broadcast_width"] == b)
            ax.plot([n for n, _ in mine], [s for _, s in mine], marker="o", ms=3,
                    label=spec[0])
        # on top: most layers scale nearly linearly and would hide it
        ax.plot(pes, [n / pes[0] for n in pes], "k--", lw=1.2, zorder=5, label="linear")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log", base=2)
        ax.set_xticks(pes, [str(n) for n in pes])
        ax.set_xlabel("PEs")
        ax.set_title(f"B = {b}, queue depth {queue_depth}, balanced rows")
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel(f"speedup over {pes[0]} PEs")
    axes[0][-1].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(what: str, out: Path, quick: bool = False, balance_rows: bool = False,
        rtl: bool = True, n_pes: int | None = None, queue_depth: int = 8,
        broadcast_width: int = 1) -> str:
    """``eie bench compiler|eie|scaling``: the report's Markdown (also written to ``out``).
    ``eie`` takes every argument; ``scaling`` ``quick`` and ``queue_depth``."""
    if what == "compiler":
        return bench_compiler(out, quick)
    if what == "scaling":
        return bench_scaling(out, quick, queue_depth=queue_depth)
    return bench_eie(out, quick, rtl=rtl, balance_rows=balance_rows, n_pes=n_pes,
                     queue_depth=queue_depth, broadcast_width=broadcast_width)

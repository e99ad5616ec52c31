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
from contract.config import EIEConfig
from sim_tests.runner import simulate

__all__ = ["run", "EIE_LAYERS", "bench_compiler", "bench_eie", "random_quant_layer"]

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


def eie_bench_config(quick: bool = False, queue_depth: int = 8) -> EIEConfig:
    """64 PEs, queue depth 8, memories sized to fit every EIE layer."""
    if quick:
        # Shapes / 8 on 8 PEs: VGG-6's 3,136 inputs need 392 activations per PE.
        return EIEConfig(n_pes=8, queue_depth=queue_depth, acc_depth=64, act_depth=512,
                         spmat_depth=4096, ptr_depth=2048, bias_depth=64)
    # VGG-6 puts ~101K entries (4% density plus padding) in one PE's tile: 17-bit pointers.
    return EIEConfig.paper(queue_depth=queue_depth, spmat_depth=16384, ptr_depth=16384,
                           act_depth=512, acc_depth=64, bias_depth=256, pointer_bits=17)


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


def bench_eie(out: Path, quick: bool = False, rtl: bool = True,
              balance_rows: bool = False) -> str:
    _quiet_packer()
    config = eie_bench_config(quick)
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
             f"config: {config.n_pes} PEs, queue depth {config.queue_depth}; "
             f"random matrices and inputs with each layer's shape, weight density and "
             f"activation density{f' (shapes / {scale}, --quick)' if quick else ''}"
             f"{'; balanced row assignment (--balance-rows)' if balance_rows else ''}",
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
    sweep = _queue_sweep(out, quick, cases[1][1], cases[1][2])
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


def _queue_sweep(out: Path, quick: bool, image, q):
    """Alex-7 (the table's own case) at every queue depth, on the cycle model."""
    spec = EIE_LAYERS[1]
    sweep = []
    for depth in QUEUE_SWEEP:
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
    ax.set_title(f"{spec[0]}, {eie_bench_config(quick).n_pes} PEs")
    ax.grid(True, alpha=0.3)
    out.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out / "queue_sweep.png", dpi=120)
    plt.close(fig)
    return sweep


def run(what: str, out: Path, quick: bool = False, balance_rows: bool = False) -> str:
    if what == "compiler":
        return bench_compiler(out, quick)
    return bench_eie(out, quick, balance_rows=balance_rows)

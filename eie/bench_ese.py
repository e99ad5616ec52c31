"""``eie bench ese``: the ESE-size LSTM on the cycle model (docs/benchmarks.md).

The LSTM of ESE (docs/ese-reference.md, recalled figures): 153 inputs, 1024 cells,
projection 512, one layer, with peepholes (Google LSTM), random weights at torch's init
scale, load-balance-aware pruned to 11.2 % with 4-bit codebooks, on 32 PEs. Two index
widths are packed from the same compressed model and reported side by side. Wall-clock
figures are from this run only; the cycle counts are deterministic (fixed seeds).
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

from contract.lstm_config import ESEConfig

__all__ = ["ESE_CYCLES", "ESE_CLOCK_MHZ", "GOAL_CYCLES", "bench_ese", "index_variants"]

#: ESE's latency per frame, 82.7 µs at 200 MHz (docs/ese-reference.md: recalled, not
#: confirmed), and the part-2 goal.
ESE_CYCLES = 16540
ESE_CLOCK_MHZ = 200
GOAL_CYCLES = 12500
DENSITY = 0.112

# (label, index_bits, entries_per_word): a word must stay a power of two of entries and
# <= 64 bits, so a 9-bit entry (4-bit weight + 5-bit index) packs 4 to a word.
VARIANTS = (("4-bit index", 4, 8), ("5-bit index", 5, 4))


def index_variants(config: ESEConfig) -> list[tuple[str, ESEConfig]]:
    """``config`` with each relative-index width of the benchmark."""
    out = []
    for label, bits, per_word in VARIANTS:
        channel = dataclasses.replace(config.channel, index_bits=bits,
                                      entries_per_word=per_word)
        out.append((label, dataclasses.replace(config, channel=channel)))
    return out


def _machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def _model(n_in: int, hidden: int, proj: int):
    import torch

    from compiler.lstm_torch import PeepholeLSTM

    torch.manual_seed(0)
    return PeepholeLSTM(n_in, hidden, 1, proj_size=proj).double()


def _variant(label, config, compressed, q, n_frames):
    from compiler.lstm_pack import pack_lstm
    from golden.lstm_cycles import lstm_cycles
    from golden.lstm_model import decode_matrices, run_lstm

    t0 = time.perf_counter()
    image = pack_lstm(compressed, config)
    t_pack = time.perf_counter() - t0
    t0 = time.perf_counter()
    run_lstm(image, q, matrices=decode_matrices(image))
    t_golden = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = lstm_cycles(image, q)
    t_cycles = time.perf_counter() - t0
    n = config.n_pes
    mats = image.matrices
    nnz = sum(info.nnz for info in mats.layers)
    padding = sum(info.padding for info in mats.layers)
    pes = mats.stats["pes"]
    frames = report.frames
    steady = frames[1:] or frames                # frame 0 has h = 0: no recurrent columns
    cycles = [f.cycles for f in frames]
    steady_cycles = max(f.cycles for f in steady)
    worst = max(steady, key=lambda f: f.cycles)
    return {
        "label": label, "index_bits": config.channel.index_bits,
        "entries_per_word": config.channel.entries_per_word,
        "word_bits": config.channel.word_bits,
        "nnz": nnz, "padding": padding, "padding_per_nnz": padding / nnz,
        "padding_per_matrix": {info.name: info.padding for info in mats.layers},
        "entries_max_pe": max(p["entries"] for p in pes),
        "spmat_words_max_pe": max(p["spmat_words"] for p in pes),
        "spmat_depth": config.channel.spmat_depth,
        "cycles_per_frame": cycles, "steady_cycles": steady_cycles,
        "us_at_200mhz": steady_cycles / ESE_CLOCK_MHZ,
        "mac_utilization": nnz / n / steady_cycles,
        "compute": worst.compute, "mac_busy": worst.mac_busy, "ideal": worst.ideal,
        "elementwise": worst.elementwise, "elementwise_hidden": worst.elementwise_hidden,
        "elementwise_exposed": worst.elementwise_exposed,
        "per_matrix": dict(zip([info.name for info in mats.layers], worst.per_matrix,
                               strict=True)),
        "seconds": {"pack": t_pack, "golden": t_golden, "cycle_model": t_cycles},
        "frames": n_frames,
    }


def _torch_us_per_frame(compressed, n_in: int, hidden: int, proj: int, frames: int = 50):
    """Float ``torch.nn.LSTM`` of the same sizes and compressed weights (dense, float32,
    batch 1, peepholes left out: nn.LSTM has none), µs per frame on this machine: the
    median of 5 runs of ``frames`` frames after a warm-up run."""
    import torch

    lstm = torch.nn.LSTM(n_in, hidden, 1, proj_size=proj, batch_first=True)
    reference = compressed.reference()
    with torch.no_grad():
        own = dict(reference.named_parameters())
        for name, param in lstm.named_parameters():
            match = [v for k, v in own.items() if k.endswith(name)]
            if match and match[0].shape == param.shape:
                param.copy_(match[0].float())
    x = torch.randn(1, frames, n_in)
    times = []
    with torch.no_grad():
        lstm(x)
        for _ in range(5):
            t0 = time.perf_counter()
            lstm(x)
            times.append(time.perf_counter() - t0)
    return float(np.median(times)) / frames * 1e6, torch.get_num_threads()


def _rtl(compressed, q, label):
    """The 5-bit-index variant with one channel on the ESE RTL (Verilator)."""
    from compiler.lstm_pack import pack_lstm
    from golden.lstm_cycles import lstm_cycles
    from golden.lstm_model import run_lstm
    from sim_tests.ese_runner import build_ese, simulate_lstm

    config = ESEConfig.ese(channels=1)
    image = pack_lstm(compressed, config)
    t0 = time.perf_counter()
    build_ese(config, slot_words=16)
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    got = simulate_lstm(image, q[None], slot_words=16)
    t_sim = time.perf_counter() - t0
    want = run_lstm(image, q[None], trace=True)
    report = lstm_cycles(image, q[None], result=want)
    cycles = [int(c) for c in got["cycles"][0]]
    model = [int(c) for c in report.cycles[0]]
    frames = report.frames[0]
    steady = max(cycles[1:] or cycles)
    worst = frames[1:][int(np.argmax(cycles[1:]))] if len(cycles) > 1 else frames[0]
    nnz = sum(info.nnz for info in image.matrices.layers)
    return image, worst, {
        "variant": label, "channels": 1,
        "cycles_per_frame": steady, "cycles_per_frame_all": cycles,
        "model_cycles_per_frame": max(model[1:] or model), "model_cycles_all": model,
        "bit_exact": bool(np.array_equal(got["q"], want.q)),
        "cycle_exact": cycles == model,
        "mac_utilization": nnz / config.n_pes / steady,
        "elementwise_hidden": worst.elementwise_hidden / max(worst.elementwise, 1),
        "projected_us_200mhz": steady / ESE_CLOCK_MHZ,
        "seconds": {"verilator_build": t_build, "simulation": t_sim},
    }


def _breakdown(image, frame, cycles: int) -> dict[str, int]:
    """Where one frame's cycles go (from the cycle model's figures of that frame)."""
    from golden.cycle_model import PIPELINE
    from golden.lstm_cycles import LSTM_PIPELINE

    tiles = image.matrices.program
    out_local = sum(d.out_local for d in tiles)
    fixed = len(tiles) * (PIPELINE["PRE"] + PIPELINE["DRAIN"] + PIPELINE["POST"])
    load = image.memory.x_words + LSTM_PIPELINE["LOAD"]
    parts = {"frame load": load, "SpMV compute": frame.compute,
             "preload (bias)": out_local, "write-back (cell unit under it)": out_local,
             "cell unit drain (exposed)": frame.elementwise_exposed,
             "tile fetch / drain / post": fixed}
    parts["segment starts"] = cycles - sum(parts.values())
    return parts


def _plot(parts: dict[str, int], path: Path, title: str) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.4))
    left = 0
    for name, value in parts.items():
        ax.barh(0, value, left=left, label=f"{name}: {value:,}")
        left += value
    ax.set_yticks([])
    ax.set_xlabel("cycles")
    ax.set_title(title)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.45), ncol=2, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def bench_ese(out_dir: Path, *, quick: bool = False, model_only: bool = True) -> str:
    """Run the benchmark, write ``out_dir/ese.md`` and ``out_dir/ese.json``, return the
    report text.

    Parameters
    ----------
    out_dir : where the reports go (created).
    quick : a 256-cell, 128-projection model and 2 frames (a smoke test).
    model_only : the cycle model only; otherwise the 5-bit-index variant with one channel
        also runs on the ESE RTL under Verilator (measured cycles, bit-exactness, the
        float torch figure of the same sizes, and ``ese_frame.png``).
    """
    from compiler.lstm_pack import compress_lstm
    from golden.lstm_model import quantize_sequence

    # random weights trip the packer's accumulator-wrap warning on every matrix
    logging.getLogger("compiler.pack").setLevel(logging.ERROR)
    n_in, hidden, proj, n_frames = (153, 256, 128, 2) if quick else (153, 1024, 512, 4)
    base = ESEConfig.ese()
    model = _model(n_in, hidden, proj)
    t0 = time.perf_counter()
    compressed = compress_lstm(model, base, density=DENSITY, balance=True, bits=4)
    t_compress = time.perf_counter() - t0
    x = np.random.default_rng(0).standard_normal((1, n_frames, n_in))
    q = quantize_sequence(x, base)
    rows = [_variant(label, cfg, compressed, q[0], n_frames)
            for label, cfg in index_variants(base)]
    weights = sum(int(np.prod(s["shape"])) for s in compressed.stats)
    real = 4 * hidden * (n_in + proj) + proj * hidden
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rtl = None
    text = _report(rows, base, quick, model_only, t_compress, weights, real, n_in, hidden,
                   proj, n_frames)
    if not model_only:
        image, worst, rtl = _rtl(compressed, q[0], rows[1]["label"])
        rtl["torch_cpu_us_per_frame"], rtl["torch_threads"] = _torch_us_per_frame(
            compressed, n_in, hidden, proj)
        parts = _breakdown(image, worst, rtl["model_cycles_per_frame"])
        rtl["breakdown"] = parts
        _plot(parts, out_dir / "ese_frame.png",
              f"one frame, {rtl['cycles_per_frame']:,} cycles (RTL), 32 PEs, 1 channel")
        text += "\n" + _rtl_report(rtl, parts)
    (out_dir / "ese.md").write_text(text + "\n")
    data = {"model": {"n_in": n_in, "hidden": hidden, "proj": proj, "peephole": True,
                      "density": DENSITY, "weights": real, "frames": n_frames,
                      "quick": quick},
            "config": base.to_dict(), "compress_seconds": t_compress,
            "ese_cycles": ESE_CYCLES, "goal_cycles": GOAL_CYCLES, "rtl": rtl,
            "variants": rows}
    if rtl is not None:
        data.update({k: rtl[k] for k in ("cycles_per_frame", "model_cycles_per_frame",
                                          "bit_exact", "mac_utilization",
                                          "elementwise_hidden", "projected_us_200mhz",
                                          "torch_cpu_us_per_frame")})
    (out_dir / "ese.json").write_text(json.dumps(data, indent=1))
    return text


def _report(rows, base, quick, model_only, t_compress, weights, real, n_in, hidden, proj,
            n_frames) -> str:
    ch = base.channel
    nnz = rows[0]["nnz"]
    lines = [
        "# eie bench ese",
        f"machine: {_machine()}",
        f"model: LSTM {n_in} -> {hidden} cells -> projection {proj}, peepholes, 1 layer, "
        f"random weights (torch init scale), {real:,} weights ({weights:,} with the padded "
        f"columns), load-balance-aware pruned to {nnz:,} non-zeros ({nnz / real:.1%} of the "
        f"real weights), 4-bit codebooks; {n_frames} random frames"
        + (" (--quick)" if quick else ""),
        f"config: ESEConfig.ese(): {ch.n_pes} PEs, queue depth {ch.queue_depth}, "
        f"acc_depth {ch.acc_depth}, spmat_depth {ch.spmat_depth}, index_bits {ch.index_bits} "
        f"(default); "
        f"{base.channels} channels share the weights",
        "",
        "| | " + " | ".join(r["label"] for r in rows) + " |",
        "|---|" + "---|" * len(rows),
    ]

    def row(name, fmt):
        lines.append(f"| {name} | " + " | ".join(fmt(r) for r in rows) + " |")

    row("entry / word", lambda r: f"{r['index_bits'] + ch.weight_bits} bits, "
        f"{r['entries_per_word']} per {r['word_bits']}-bit word")
    row("padding entries / non-zero", lambda r: f"{r['padding_per_nnz']:.3f} "
        f"({r['padding']:,})")
    row("entries, busiest PE", lambda r: f"{r['entries_max_pe']:,}")
    row("spmat words, busiest PE", lambda r: f"{r['spmat_words_max_pe']:,} of "
        f"{r['spmat_depth']:,}")
    row("cycles per frame (frame 0, then each)",
        lambda r: ", ".join(f"{c:,}" for c in r["cycles_per_frame"]))
    row("**cycles per frame** (worst after frame 0)", lambda r: f"**{r['steady_cycles']:,}**")
    row("µs per frame @ 200 MHz", lambda r: f"{r['us_at_200mhz']:.1f}")
    row(f"vs ESE {ESE_CYCLES:,} (82.7 µs, recalled)",
        lambda r: f"{r['steady_cycles'] / ESE_CYCLES:.3f}x")
    row(f"part-2 goal <= {GOAL_CYCLES:,}",
        lambda r: "met" if r["steady_cycles"] <= GOAL_CYCLES else "**missed**")
    row("MAC utilization (non-zeros per PE / cycles)", lambda r: f"{r['mac_utilization']:.3f}")
    row("compute / busiest-PE entries / ideal", lambda r: f"{r['compute']:,} / "
        f"{r['mac_busy']:,} / {r['ideal']:,}")
    row("cycles: gates / projection", lambda r: " / ".join(
        f"{v:,}" for v in r["per_matrix"].values()))
    row("elementwise cycles: total / hidden / exposed", lambda r: f"{r['elementwise']} / "
        f"{r['elementwise_hidden']} / {r['elementwise_exposed']}")
    row("elementwise share of the frame: hidden / exposed",
        lambda r: f"{r['elementwise_hidden'] / r['steady_cycles']:.2%} / "
        f"{r['elementwise_exposed'] / r['steady_cycles']:.2%}")
    row("pack (s)", lambda r: f"{r['seconds']['pack']:.3f}")
    row(f"golden, {n_frames} frames (s)", lambda r: f"{r['seconds']['golden']:.3f}")
    row(f"cycle model, {n_frames} frames (s)", lambda r: f"{r['seconds']['cycle_model']:.3f}")
    lines += ["", f"compress (prune + share, both variants): {t_compress:.2f} s"]
    if model_only:
        lines.append("RTL: not run (--model-only); figures are the cycle model's")
    return "\n".join(lines)


def _rtl_report(rtl: dict, parts: dict[str, int]) -> str:
    cyc = rtl["cycles_per_frame"]
    lines = [
        f"## RTL ({rtl['variant']}, 1 channel, Verilator)", "",
        "| figure | value |", "|---|---|",
        f"| **cycles per frame** (RTL, worst after frame 0) | **{cyc:,}** |",
        f"| cycles per frame, every frame (RTL) | "
        f"{', '.join(f'{c:,}' for c in rtl['cycles_per_frame_all'])} |",
        f"| cycle model | {rtl['model_cycles_per_frame']:,} (cycle-exact: "
        f"{rtl['cycle_exact']}) |",
        f"| bit-exact against golden | {rtl['bit_exact']} |",
        f"| part-2 goal <= {GOAL_CYCLES:,} | {'met' if cyc <= GOAL_CYCLES else '**missed**'} |",
        f"| vs ESE {ESE_CYCLES:,} (recalled) | {cyc / ESE_CYCLES:.3f}x |",
        f"| projected µs per frame @ 200 MHz | {rtl['projected_us_200mhz']:.1f} |",
        f"| MAC utilization | {rtl['mac_utilization']:.3f} |",
        f"| elementwise cycles hidden under SpMV write-back (goal >= 90%) | "
        f"{rtl['elementwise_hidden']:.1%} |",
        f"| float torch.nn.LSTM, batch 1, this machine ({rtl['torch_threads']} threads) | "
        f"{rtl['torch_cpu_us_per_frame']:.1f} µs per frame |",
        f"| Verilator build / simulation (s) | {rtl['seconds']['verilator_build']:.1f} / "
        f"{rtl['seconds']['simulation']:.1f} |",
        "", "Where a frame's cycles go ([ese_frame.png](ese_frame.png)):", "",
        "| part | cycles |", "|---|---|",
    ]
    lines += [f"| {name} | {value:,} |" for name, value in parts.items()]
    return "\n".join(lines)

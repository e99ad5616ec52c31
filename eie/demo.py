"""``eie demo``: the main job on the built-in default model.

digits MLP (float) -> prune + share -> pack -> golden (bit-exact, cycle model) ->
Verilog -> Verilator simulation -> KU060 Vivado project + Yosys estimate, with a report.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

import golden
from boards.resources import estimate, format_report
from boards.vivado import write_project
from compiler import classifier_train_fn, compress, iterative_prune, pack
from contract.config import EIEConfig
from contract.image_read import read_image
from contract.image_write import write_image
from rtl.verilog import generate
from sim_tests.runner import simulate

from . import digits, progress
from .inspect import image_stats

__all__ = ["run_demo", "DEMO_DENSITY"]

DEMO_DENSITY = 0.25        # weight density after load-balance-aware pruning
DEMO_PRUNE_STEPS = 3       # prune-and-retrain rounds


def _say(report: list[str], text: str = "") -> None:
    print(text, flush=True)
    report.append(text)


def run_demo(out: Path, config: EIEConfig, *, rtl: bool = True) -> dict:
    # torch costs a second to import; only the demo's run needs it, not `eie --help`.
    import torch


    out.mkdir(parents=True, exist_ok=True)
    report: list[str] = []
    results: dict = {}
    t0 = time.perf_counter()
    data = digits.load_data()
    with progress.stage("training the digits MLP"):
        model = digits.train_mlp(data)
    with torch.no_grad():
        float_logits = model(torch.from_numpy(data.x_test)).double().numpy()
    results["acc_float"] = digits.accuracy(float_logits, data.y_test)

    # Deep Compression / ESE flow: load-balance-aware prune-and-retrain, then k-means
    # weight sharing of the pruned model as it is.
    train_fn = classifier_train_fn(data.x_train, data.y_train, epochs=15, lr=1e-3)
    with progress.steps("prune and retrain", DEMO_PRUNE_STEPS) as advance:
        def counted(module, masks):
            train_fn(module, masks)
            advance()

        pruned = iterative_prune(model, DEMO_DENSITY, steps=DEMO_PRUNE_STEPS,
                                 train_fn=counted, balance=True, n_pes=config.n_pes)
    compressed = compress(pruned, bits=config.weight_bits)
    small = compressed.to_torch().double()
    with torch.no_grad():
        comp_logits = small(torch.from_numpy(data.x_test).double()).numpy()
    results["acc_compressed"] = digits.accuracy(comp_logits, data.y_test)

    image_dir = out / "image"
    write_image(pack(compressed.layers, config), image_dir)
    image = read_image(image_dir)
    q_in = golden.quantize_input(data.x_test, config)
    gold = golden.run(image, q_in)
    results["acc_golden"] = digits.accuracy(gold.y, data.y_test)
    bound = golden.error_bound(image, data.x_test)
    error = np.abs(gold.y - comp_logits)
    results["max_error"] = float(error.max())
    results["within_bound"] = bool(np.all(error <= bound[:, None]))  # bound per sample
    tiles = golden.decode_program(image)
    cyc = [golden.cycles(image, q, tiles=tiles) for q in q_in]

    _say(report, "# eie demo: digits MLP on a "
         f"{config.n_pes}-PE EIE (queue depth {config.queue_depth})")
    _say(report)
    stats = image_stats(image)
    _say(report, "```")
    _say(report, stats.format())
    _say(report, "```")
    from .plots import pe_balance_png

    (out / "pe_balance.png").write_bytes(pe_balance_png(stats))
    _say(report, f"per-PE non-zeros and padding per layer: {out / 'pe_balance.png'}")
    _say(report)
    _say(report, f"## Accuracy (digits test split, {len(data.y_test)} samples)")
    _say(report, "| model | accuracy |")
    _say(report, "|---|---|")
    _say(report, f"| float PyTorch, uncompressed | {results['acc_float']:.4f} |")
    _say(report, f"| float PyTorch, pruned to {DEMO_DENSITY:.0%} (balanced) + "
                 f"{config.weight_bits}-bit shared | {results['acc_compressed']:.4f} |")
    _say(report, f"| golden (bit-exact fixed point) | {results['acc_golden']:.4f} |")
    _say(report)
    _say(report, f"golden vs float (compressed): max |error| {results['max_error']:.5f}, "
                 f"within the docs/numerics.md bound: {results['within_bound']}")

    if rtl:
        _rtl_section(report, results, out, image, q_in, gold, cyc, data)
    else:
        _cycles_table(report, image, cyc, None)
        _say(report)
        _say(report, "RTL steps skipped (--no-rtl): no Verilog, Verilator simulation, Vivado "
                     "project or Yosys estimate")
    _replay_section(report, out, model, pruned, data)
    results["seconds"] = time.perf_counter() - t0
    _say(report)
    _say(report, f"demo took {results['seconds']:.1f} s; artefacts in {out}")
    (out / "report.md").write_text("\n".join(report) + "\n")
    return results


def _replay_section(report, out: Path, model, pruned, data) -> None:
    """Write the trained model, the pruned one and the data, so that a user can replay the
    steps with the ``eie`` command, and say how."""
    import torch

    from compiler.model import layers_to_torch

    torch.save(model.state_dict(), out / "mlp.pt")
    torch.save(layers_to_torch(pruned).state_dict(), out / "mlp_pruned.pt")
    np.save(out / "x_test.npy", data.x_test)
    np.save(out / "y_test.npy", data.y_test)
    np.savez(out / "digits.npz", x=np.concatenate([data.x_train, data.x_test]),
             y=np.concatenate([data.y_train, data.y_test]))
    _say(report)
    _say(report, "## Files to replay the steps with `eie`")
    _say(report, f"- `{out / 'mlp.pt'}`: the trained float model (state_dict); "
                 f"`{out / 'mlp_pruned.pt'}`: after pruning and retraining, before sharing")
    _say(report, f"- `{out / 'x_test.npy'}`, `{out / 'y_test.npy'}`: the test inputs and "
                 f"labels; `{out / 'digits.npz'}`: all samples as `x`, `y` for `--data` "
                 f"(the demo trained on {len(data.y_train)} of them, so `eie pack --data`'s "
                 f"held-out figures on it are optimistic)")
    manifest = out / "image" / "manifest.json"
    _say(report, f"- `eie pack {out / 'mlp_pruned.pt'} -o img --config {manifest}` packs the "
                 f"demo's image again (`--data {out / 'digits.npz'}` also fine-tunes the "
                 f"centroids and reports accuracies); `eie pack {out / 'mlp.pt'} -o img "
                 f"--config {manifest} --density {DEMO_DENSITY} --balance --data "
                 f"{out / 'digits.npz'}` prunes it again while retraining")
    _say(report, f"- `eie golden img --input {out / 'x_test.npy'} -o y.npz`, "
                 f"`eie sim img --input {out / 'x_test.npy'} -o y_rtl.npz`")


def _cycles_table(report, image, cyc, rtl_cycles) -> None:
    _say(report)
    _say(report, f"## Cycles (mean over the {len(cyc)} test samples)")
    head = "| layer | model cycles | compute | ideal | load-balance efficiency |"
    if rtl_cycles is not None:
        head += " RTL cycles |"
    _say(report, head)
    _say(report, "|---|---|---|---|---|" + ("---|" if rtl_cycles is not None else ""))
    for k, layer in enumerate(image.layers):
        model_c = np.mean([c.layers[k].cycles for c in cyc])
        ideal = np.mean([c.layers[k].ideal for c in cyc])
        compute = np.mean([c.layers[k].compute for c in cyc])
        eff = np.mean([c.layers[k].efficiency for c in cyc])
        row = f"| {layer.name} | {model_c:.1f} | {compute:.1f} | {ideal:.1f} | {eff:.3f} |"
        if rtl_cycles is not None:
            row += f" {np.mean(rtl_cycles[:, k]):.1f} |"
        _say(report, row)
    total = np.mean([c.total for c in cyc])
    _say(report, f"| total | {total:.1f} | | | |" + (
        f" {np.mean(rtl_cycles.sum(axis=1)):.1f} |" if rtl_cycles is not None else ""))


def _rtl_section(report, results, out, image, q_in, gold, cyc, data) -> None:
    generate(image.config, out / "verilog", image=image)
    n = len(cyc)
    with progress.stage(f"Verilator build and simulation of {n} inputs"):
        sim = simulate(image, q_in, build_dir=out / "sim_build")
    q_rtl = np.asarray(sim["q"])
    rtl_cycles = np.asarray(sim["cycles_per_layer"]).reshape(n, len(image.layers))
    results["bit_exact"] = bool(np.array_equal(q_rtl, gold.q))
    model_totals = np.array([c.total for c in cyc])
    results["cycles_match"] = bool(np.array_equal(np.asarray(sim["cycles_total"]),
                                                  model_totals))
    results["acc_rtl"] = digits.accuracy(golden.dequantize(q_rtl, image.config), data.y_test)
    _say(report)
    _say(report, f"## RTL (Verilator) on all {n} test samples")
    _say(report, f"- RTL vs golden bit-exact: {'yes' if results['bit_exact'] else 'NO'}")
    _say(report, f"- accuracy: float {results['acc_float']:.4f}, compressed float "
                 f"{results['acc_compressed']:.4f}, golden {results['acc_golden']:.4f}, "
                 f"RTL {results['acc_rtl']:.4f}")
    _say(report, f"- RTL cycles equal the cycle model: "
                 f"{'yes' if results['cycles_match'] else 'NO'}")
    _cycles_table(report, image, cyc, rtl_cycles)
    _boards_section(report, results, out, image)


def _boards_section(report, results, out, image) -> None:
    project = write_project(out / "vivado", image.config, image_dir=out / "image")
    _say(report)
    _say(report, f"## KU060 Vivado project: {project}")
    _say(report, "(run it with `vivado -mode batch -source build.tcl` in that folder)")
    _say(report)
    _say(report, "## Yosys resource estimate (synth_xilinx -family xcu)")
    _say(report, "```")
    with progress.stage("Yosys synth_xilinx"):
        text = format_report(estimate(image.config, out_dir=out / "resources"))
    _say(report, text)
    _say(report, "```")

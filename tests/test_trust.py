"""Issue 9 ("Trust"), the rest: pack's accumulator check from the data (not a worst-case
bound that fires on every model), `eie pack --data` with regression targets, centroid
fine-tuning and the compressed float model, the pictures, progress on a terminal, and the
small gaps (`--config manifest.json`, `--no-rtl`, docs/boards.md).

Expected values are worked out by hand in the comments, not taken from the code."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import compiler
from compiler.types import QuantLayer
from contract.config import EIEConfig
from eie import progress
from eie.cli import main

ROOT = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _save(tmp_path, name: str, weight, bias=None) -> Path:
    weight = np.asarray(weight, np.float32)
    bias = np.zeros(len(weight), np.float32) if bias is None else np.asarray(bias, np.float32)
    path = tmp_path / f"{name}.pt"
    torch.save({f"{name}.weight": torch.from_numpy(weight),
                f"{name}.bias": torch.from_numpy(bias)}, path)
    return path


# Model "s": 2 -> 2, weight diag(2, 2), bias 0, no ReLU. The shared value 2.0 gets w_frac 13
# (2 * 2**14 = 32768 does not fit 16-bit signed codebook values), so 2.0 -> 16384.
# Model "b": 200 -> 1, every weight 2.0: worst-case |acc| = 200 * 16384 * 2**15 = 200 * 2**29
# = 2**36.64 > 2**31.
@pytest.fixture
def model_s(tmp_path):
    return _save(tmp_path, "s", [[2.0, 0.0], [0.0, 2.0]])


@pytest.fixture
def model_b(tmp_path):
    return _save(tmp_path, "b", np.full((1, 200), 2.0))


def _bound_line(text: str) -> str:
    return next(line for line in text.splitlines() if line.startswith("accumulators"))


# ---- silent wrong answers: the accumulator check -----------------------------------------

def test_pack_without_data_states_the_bound_and_does_not_warn(model_b, tmp_path, capsys):
    code, out, err = _run(capsys, "pack", model_b, "-o", tmp_path / "img", "--pes", "1")
    # before: three "layer ...: the 32-bit accumulator can wrap" lines on every model
    assert (code, err) == (0, "")
    assert _bound_line(out) == (
        "accumulators (32-bit): a worst-case bound only (every input at +-128 with the worst "
        "signs) exceeds 2**31 in b 2**36.6; real inputs rarely come near it: eie golden "
        "counts actual saturation and wraps on your inputs, and pack --data checks its data")


def test_pack_without_data_says_when_no_input_can_wrap(model_s, tmp_path, capsys):
    # worst case 16384 * 2**15 = 2**29 < 2**31
    code, out, err = _run(capsys, "pack", model_s, "-o", tmp_path / "img", "--pes", "1")
    assert (code, err) == (0, "")
    assert _bound_line(out) == "accumulators (32-bit): no input can make one wrap"


def test_compiler_pack_logs_the_bound_at_info_only(caplog):
    layer = QuantLayer("b", np.ones((1, 200), np.uint8), np.array([0.0, 2.0]),
                       np.zeros(1), False)
    with caplog.at_level("WARNING", logger="compiler.pack"):
        compiler.pack([layer], EIEConfig(n_pes=1))
    assert not caplog.records


def test_pack_data_warns_with_the_saturation_counts(model_s, tmp_path, capsys):
    # x = 100 -> 200 saturates (beyond +-128); -300 clips to -128 at the input and
    # -256 saturates; 1 and 0.5 are fine. Targets y = 2x: the float model is exact, so
    # fine-tuning finds no better centroid and 2.0 stays.
    x = np.array([[100.0, 0.0], [1.0, 1.0], [0.0, -300.0], [0.5, 0.5], [0.25, 0.0]])
    data = tmp_path / "d.npz"
    np.savez(data, x=x, y=2 * x)
    code, out, err = _run(capsys, "pack", model_s, "-o", tmp_path / "img", "--pes", "1",
                          "--data", data)
    assert code == 0
    counts = (f"golden on all 5 samples of {data}: 1 input value(s) clipped; per layer: s 2 "
              f"saturated / 0 wrapped (2 sample(s) affected)")
    assert counts in out.splitlines()
    assert err == (f"eie pack: warning: {counts}; the output is bit-exact but not close to "
                   f"float there: lower --act-frac (now 8: values beyond +-128 saturate) or "
                   f"scale the inputs down (docs/numerics.md)\n")


def test_pack_data_warns_with_the_wrap_counts(model_b, tmp_path, capsys):
    # x = 100 everywhere: q = 25600, exact acc = 200 * 25600 * 16384 = 83886080000, which
    # wraps to 83886080000 - 20 * 2**32 = -2013265920; >> 13 -> -245760, saturated. 3 such
    # samples. x = 0.01: q = 3, acc = 200 * 3 * 16384, no wrap, output 4.6875 fits.
    x = np.concatenate([np.full((3, 200), 100.0), np.full((2, 200), 0.01)])
    data = tmp_path / "d.npz"
    np.savez(data, x=x, y=x.sum(axis=1, keepdims=True) * 2)
    code, out, err = _run(capsys, "pack", model_b, "-o", tmp_path / "img", "--pes", "1",
                          "--data", data)
    assert code == 0
    counts = (f"golden on all 5 samples of {data}: 0 input value(s) clipped; per layer: b 3 "
              f"saturated / 3 wrapped (3 sample(s) affected)")
    assert counts in out.splitlines()
    assert err == (f"eie pack: warning: {counts}; the output is bit-exact but not close to "
                   f"float there: lower --act-frac (now 8: values beyond +-128 saturate) or "
                   f"scale the inputs down; raise --acc-bits (now 32) (docs/numerics.md)\n")


def test_pack_data_in_range_is_quiet(model_s, tmp_path, capsys):
    x = np.random.default_rng(0).uniform(-1, 1, size=(20, 2))
    data = tmp_path / "d.npz"
    np.savez(data, x=x, y=2 * x)
    code, out, err = _run(capsys, "pack", model_s, "-o", tmp_path / "img", "--pes", "1",
                          "--data", data)
    assert (code, err) == (0, "")
    assert (f"golden on all 20 samples of {data}: no input clipped, no value saturated, no "
            f"accumulator wrapped") in out.splitlines()


# ---- --data: regression, fine-tuning, the compressed float model --------------------------

def test_pack_data_regression_retrains_and_reports_mse(tmp_path, capsys):
    rng = np.random.default_rng(1)
    net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    torch.save(net.state_dict(), tmp_path / "r.pt")
    x = rng.normal(size=(100, 6))
    y = (x[:, :1] - 0.5 * x[:, 1:2]).ravel()          # float targets [N]: regression
    np.savez(tmp_path / "d.npz", x=x, y=y)
    code, out, err = _run(capsys, "pack", tmp_path / "r.pt", "-o", tmp_path / "img",
                          "--pes", "2", "--density", "0.5", "--data", tmp_path / "d.npz")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[1] == ("pruned to density 0.5 while retraining (3 steps of 5 epochs on 80 "
                        "samples); weights shared by k-means, up to 15 values per layer")
    before, after = map(float, re.fullmatch(
        r"centroids fine-tuned \(30 steps on 80 samples\): training MSE (\S+) -> (\S+)",
        lines[2]).groups())
    assert after <= before
    # 0.5 of 96 -> 48, of 16 -> 8
    assert re.fullmatch(r"per layer density/RMS sharing error: 0 0\.500/\S+, 2 0\.500/\S+",
                        lines[3])
    assert re.fullmatch(r"held-out mean squared error \(20 of 100 samples\): float \d+\.\d{4}, "
                        r"compressed float \d+\.\d{4}, golden \d+\.\d{4}", lines[4])


def test_pack_writes_the_compressed_float_model_and_histograms(model_s, tmp_path, capsys):
    out_dir = tmp_path / "img"
    code, out, _ = _run(capsys, "pack", model_s, "-o", out_dir, "--pes", "1")
    assert code == 0
    assert (f"wrote {out_dir / 'compressed.pt'} (compressed float model: shared weights, a "
            f"state_dict for torch.load(weights_only=True))") in out.splitlines()
    assert (f"wrote {out_dir / 'weights.png'} (weight histogram per layer with its shared "
            f"values)") in out.splitlines()
    state = torch.load(out_dir / "compressed.pt", weights_only=True)
    assert sorted(state) == ["s.bias", "s.weight"]
    assert state["s.weight"].tolist() == [[2.0, 0.0], [0.0, 2.0]]     # 2.0 shared exactly
    torch.nn.Linear(2, 2).load_state_dict({"weight": state["s.weight"],
                                           "bias": state["s.bias"]})
    assert (out_dir / "weights.png").read_bytes().startswith(PNG)
    # the image reads back and `eie pack` takes the compressed model as a model again
    code, _, err = _run(capsys, "pack", out_dir / "compressed.pt", "-o", tmp_path / "again",
                        "--pes", "1")
    assert (code, err) == (0, "")


def test_finetune_codebooks_moves_the_shared_value_to_the_optimum():
    # one shared value c on 3 weights, targets y = 2 * sum(x): the MSE optimum is c = 2
    x = np.random.default_rng(2).normal(size=(64, 3))
    layer = QuantLayer("l", np.ones((1, 3), np.uint8), np.array([0.0, 1.0]), None, False)
    tuned, before, after = compiler.finetune_codebooks([layer], x, 2 * x.sum(axis=1),
                                                       loss="mse", steps=60)
    assert after < before
    assert abs(tuned[0].codebook[1] - 2.0) < 1e-3
    assert tuned[0].codebook[0] == 0.0 and np.array_equal(tuned[0].indices, layer.indices)


# ---- pictures --------------------------------------------------------------------------

def test_inspect_writes_the_per_pe_picture(model_s, tmp_path, capsys):
    _run(capsys, "pack", model_s, "-o", tmp_path / "img", "--pes", "1")
    pics = tmp_path / "pics" / "sub"
    code, out, err = _run(capsys, "inspect", tmp_path / "img", "-o", pics)
    assert (code, err) == (0, "")
    assert out.splitlines()[-1] == (f"wrote {pics / 'pe_balance.png'} (per-PE non-zeros and "
                                    f"padding entries per layer)")
    assert (pics / "pe_balance.png").read_bytes().startswith(PNG)


@pytest.mark.parametrize("target", ["file", "file/below"])
def test_inspect_output_under_a_file_is_one_line(model_s, tmp_path, capsys, target):
    _run(capsys, "pack", model_s, "-o", tmp_path / "img", "--pes", "1")
    (tmp_path / "file").write_text("keep me\n")
    before = sorted(tmp_path.rglob("*"))
    code, out, err = _run(capsys, "inspect", tmp_path / "img", "-o", tmp_path / target)
    assert (code, out) == (2, "")
    assert err == (f"eie inspect: error: -o {tmp_path / target}: {tmp_path / 'file'} is a "
                   f"file, expected a folder\n")
    assert sorted(tmp_path.rglob("*")) == before


# ---- progress on a terminal --------------------------------------------------------------

class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_stage_shows_name_and_time_on_a_terminal_only():
    terminal, pipe = _Terminal(), io.StringIO()
    with progress.stage("Yosys synth_xilinx", terminal):
        pass
    with progress.stage("Yosys synth_xilinx", pipe):
        pass
    assert terminal.getvalue().startswith("\r\x1b[KYosys synth_xilinx ... 0 s")
    assert re.search(r"\r\x1b\[KYosys synth_xilinx: done in \d+\.\d s\n$", terminal.getvalue())
    assert pipe.getvalue() == ""


def test_a_failing_stage_clears_its_line_for_the_error():
    terminal = _Terminal()
    with pytest.raises(ValueError), progress.stage("training", terminal):
        raise ValueError("bad")
    # the line ends cleared, so `eie pack: error: ...` starts at the left margin
    assert terminal.getvalue().endswith("\r\x1b[K") and "done" not in terminal.getvalue()


def test_steps_inside_a_stage_share_its_line():
    terminal = _Terminal()
    with progress.stage("eie bench eie", terminal):
        with progress.steps("prune and retrain", 3, terminal) as advance:
            advance()
            assert progress._active == ["eie bench eie", "prune and retrain 1/3"]
        with progress.stage("Verilator build", terminal):
            assert progress._active == ["eie bench eie", "Verilator build"]
    assert progress._active == []
    assert terminal.getvalue().count("done in") == 1


def test_pack_data_shows_progress_on_a_terminal(model_s, tmp_path, capsys, monkeypatch):
    x = np.random.default_rng(0).uniform(-1, 1, size=(20, 2))
    np.savez(tmp_path / "d.npz", x=x, y=2 * x)
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    code = main(["pack", str(model_s), "-o", str(tmp_path / "img"), "--pes", "1",
                 "--density", "0.5", "--data", str(tmp_path / "d.npz")])
    assert code == 0
    text = terminal.getvalue()
    assert re.search(r"prune and retrain: done in \d+\.\d s\n", text)
    assert re.search(r"fine-tuning the centroids: done in \d+\.\d s\n", text)
    # a bad input on a terminal is still the one error line
    terminal.seek(0)
    terminal.truncate()
    assert main(["pack", str(model_s), "-o", str(tmp_path / "img2"), "--balance"]) == 2
    assert terminal.getvalue() == ("eie pack: error: --balance needs --density (the density "
                                   "to prune to)\n")
    assert not (tmp_path / "img2").exists()


# ---- small gaps --------------------------------------------------------------------------

def test_config_takes_an_image_manifest(model_s, tmp_path):
    config = EIEConfig(n_pes=3, acc_depth=16, queue_depth=4)
    main(["pack", str(model_s), "-o", str(tmp_path / "img"), "--pes", "3", "--acc-depth",
          "16", "--queue-depth", "4"])
    assert EIEConfig.load(tmp_path / "img" / "manifest.json") == config
    from eie.cli import _parser, config_from_args
    args = _parser().parse_args(["verilog", "-o", "x", "--config",
                                 str(tmp_path / "img" / "manifest.json"), "--pes", "5"])
    assert config_from_args(args) == EIEConfig(n_pes=5, acc_depth=16, queue_depth=4)


def test_no_rtl_says_what_it_skips(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert ("--no-rtl skip the Verilog, Verilator, Vivado-project and Yosys steps (pack and "
            "golden only)") in help_text


def test_boards_doc_does_not_call_the_stream_port_missing():
    text = (ROOT / "docs" / "boards.md").read_text()
    assert "No AXI4-Stream" not in text
    assert "AXI4-Stream activations" in (ROOT / "docs" / "register-map.md").read_text()

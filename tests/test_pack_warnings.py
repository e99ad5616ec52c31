"""`eie pack` on an MLP: what it says about one-shot pruning and weight sharing, the entries
per word it derives for other entry widths, and the flags it refuses (issue 9)."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest
import torch

import eie
from contract.config import EIEConfig
from eie.cli import main

ONE_SHOT = ("eie pack: warning: one-shot pruning without retraining left layer(s) under 50% "
            "density ({}), which usually costs accuracy; prune while retraining with "
            "--data D.npz (arrays x and y; Python: data=...) or compiler.iterative_prune "
            "(docs/compression.md)\n")


def _state(scale_b: float = 1.0, seed: int = 0) -> dict:
    """Layers a (20 -> 10, 200 weights) and b (10 -> 5, 50 weights), all non-zero."""
    rng = np.random.default_rng(seed)

    def t(shape, scale=1.0):
        value = rng.uniform(0.5, 1.5, size=shape) * rng.choice([-1, 1], size=shape)
        return torch.from_numpy((value * scale).astype(np.float32))

    return {"a.weight": t((10, 20)), "a.bias": t((10,)),
            "b.weight": t((5, 10), scale_b), "b.bias": t((5,))}


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "m.pt"
    torch.save(_state(), path)
    return path


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# ---- entries per word ------------------------------------------------------------------

@pytest.mark.parametrize(("flags", "weight_bits", "epw", "entry_bits"), [
    (["--bits", "5"], 5, 4, 9),                          # 8 x 9 = 72 > 64; 4 x 9 = 36
    (["--weight-bits", "6"], 6, 4, 10),
    (["--bits", "7", "--index-bits", "9"], 7, 4, 16),    # 4 x 16 = 64 exactly
    (["--bits", "5", "--index-bits", "8"], 5, 4, 13),
])
def test_entries_per_word_is_derived_when_not_given(model, tmp_path, capsys, flags,
                                                    weight_bits, epw, entry_bits):
    out_dir = tmp_path / "img"
    code, out, err = _run(capsys, "pack", model, "-o", out_dir, "--pes", "2", *flags)
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == (f"entries per word: {epw} (8 entries of {entry_bits} bits "
                                   f"do not fit a 64-bit word; set --entries-per-word to "
                                   f"choose)")
    config = json.loads((out_dir / "manifest.json").read_text())["config"]
    assert (config["weight_bits"], config["entries_per_word"]) == (weight_bits, epw)
    x = np.random.default_rng(0).normal(size=(3, 20)).astype(np.float32)
    assert eie.golden(out_dir, x)["y"].shape == (3, 5)


@pytest.mark.parametrize("flags", [["--bits", "3"], ["--bits", "4"], ["--bits", "2"],
                                   ["--bits", "4", "--weight-bits", "4"]])
def test_entries_per_word_stays_when_it_fits(model, tmp_path, capsys, flags):
    code, out, err = _run(capsys, "pack", model, "-o", tmp_path / "img", *flags)
    assert (code, err) == (0, "")
    assert not out.startswith("entries per word")
    config = json.loads((tmp_path / "img" / "manifest.json").read_text())["config"]
    assert config["entries_per_word"] == 8


@pytest.mark.parametrize(("flags", "message"), [
    (["--bits", "5", "--entries-per-word", "8"],
     "--entries-per-word 8: that many entries of 9 bits do not fit a 64-bit word; values "
     "that fit: 1, 2, 4"),
    (["--weight-bits", "8", "--index-bits", "8", "--entries-per-word", "16"],
     "--entries-per-word 16: that many entries of 16 bits do not fit a 64-bit word; values "
     "that fit: 1, 2, 4"),
    (["--bits", "3", "--weight-bits", "5"],
     "--bits 3 and --weight-bits 5 disagree (--bits sets --weight-bits; give one)"),
    (["--balance"], "--balance needs --density (the density to prune to)"),
])
def test_refused_flags_are_one_line_and_write_nothing(model, tmp_path, capsys, flags,
                                                      message):
    code, out, err = _run(capsys, "pack", model, "-o", tmp_path / "img", *flags)
    assert (code, out, err) == (2, "", f"eie pack: error: {message}\n")
    assert not (tmp_path / "img").exists()


def test_api_bits_derives_entries_per_word(model):
    image, text = eie.api.pack_report(model, config=EIEConfig(n_pes=2), bits=5)
    assert (image.config.weight_bits, image.config.entries_per_word) == (5, 4)
    assert text.splitlines()[1] == ("entries per word: 4 (8 entries of 9 bits do not fit a "
                                    "64-bit word)")


# ---- pruning and sharing ---------------------------------------------------------------

def test_one_shot_pruning_below_half_density_warns(model, tmp_path, capsys):
    # a: round(0.1 * 200) = 20 of 200 kept; b: round(0.1 * 50) = 5 of 50
    code, out, err = _run(capsys, "pack", model, "-o", tmp_path / "img", "--density", "0.1")
    assert code == 0
    assert err == ONE_SHOT.format("a 0.100, b 0.100")
    assert out.splitlines()[1] == ("pruned to density 0.1 in one shot (no retraining); "
                                   "weights shared by k-means, up to 15 values per layer")
    # balanced on 2 PEs: a keeps round(0.3 * 200 / 2) = 30 per PE (0.300); b keeps
    # round(0.3 * 50 / 2) = round(7.5) = 8 per PE, 16 of 50 (0.320)
    code, out, err = _run(capsys, "pack", model, "-o", tmp_path / "img2", "--density", "0.3",
                          "--balance", "--pes", "2")
    assert code == 0 and err == ONE_SHOT.format("a 0.300, b 0.320")


@pytest.mark.parametrize("density", ["0.5", "1"])
def test_pruning_to_half_or_more_does_not_warn(model, tmp_path, capsys, density):
    code, _, err = _run(capsys, "pack", model, "-o", tmp_path / "img", "--density", density)
    assert (code, err) == (0, "")


def test_an_already_sparse_model_does_not_warn(tmp_path, capsys):
    state = _state()
    for key in ("a.weight", "b.weight"):
        weight = state[key]
        weight[:, 1:] = 0.0            # one non-zero per row: density 1/20 and 1/10
    torch.save(state, tmp_path / "sparse.pt")
    code, _, err = _run(capsys, "pack", tmp_path / "sparse.pt", "-o", tmp_path / "img",
                        "--density", "0.1")
    assert (code, err) == (0, "")


def test_global_scope_warns_about_a_layer_far_below_the_target(tmp_path, capsys):
    # b's weights are 1000x smaller: the 25 weights kept globally (0.1 of 250) are all a's.
    torch.save(_state(scale_b=1e-3), tmp_path / "m.pt")
    code, _, err = _run(capsys, "pack", tmp_path / "m.pt", "-o", tmp_path / "img",
                        "--density", "0.1", "--scope", "global")
    assert code == 0
    assert err == ONE_SHOT.format("a 0.125, b 0.000") + (
        "eie pack: warning: global pruning left layer(s) under a quarter of the 0.1 target "
        "(b 0.000); use per-layer pruning (--scope layer) to keep each layer at the target\n")


def test_without_density_pack_says_it_shares_and_prints_the_error(tmp_path, capsys):
    state = _state()
    state["a.weight"] = torch.where(state["a.weight"] > 0, 2.0, -1.0)   # 2 values: exact
    torch.save(state, tmp_path / "m.pt")
    code, out, err = _run(capsys, "pack", tmp_path / "m.pt", "-o", tmp_path / "img")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "layers (from the file's key order): a, b"
    assert lines[1] == ("nothing pruned (no density given); weights shared by k-means, up to "
                        "15 values per layer")
    match = re.fullmatch(r"RMS sharing error per layer: a 0, b (\S+)", lines[2])
    assert match
    # b has 50 distinct weights in +-[0.5, 1.5] shared by 15 centroids: small, not zero
    assert 0 < float(match.group(1)) < 0.1
    code, out, _ = _run(capsys, "pack", tmp_path / "m.pt", "-o", tmp_path / "t", "--ternary")
    assert out.splitlines()[1] == ("nothing pruned (no density given); weights shared by a "
                                   "ternary codebook {0, -Wn, +Wp}")


def test_api_issues_pack_warnings(model):
    with pytest.warns(eie.api.PackWarning, match=r"^one-shot pruning without retraining "
                                                 r"left layer\(s\) under 50% density"):
        eie.pack(model, config=EIEConfig(n_pes=2), density=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", eie.api.PackWarning)
        eie.pack(model, config=EIEConfig(n_pes=2), density=0.6)


# ---- --data: prune while retraining, held-out accuracy ---------------------------------

@pytest.fixture
def labelled(tmp_path):
    """A random 8-16-3 MLP and 200 inputs labelled by the model itself (so the float
    model's accuracy is 1 by construction)."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    x = np.random.default_rng(0).normal(size=(200, 8)).astype(np.float32)
    with torch.no_grad():
        y = net(torch.from_numpy(x)).argmax(dim=1).numpy()
    torch.save(net.state_dict(), tmp_path / "net.pt")
    np.savez(tmp_path / "d.npz", x=x, y=y)
    return tmp_path / "net.pt", tmp_path / "d.npz"


HELD_OUT = (r"held-out accuracy \(40 of 200 samples\): float 1\.0000, compressed float "
            r"(\d\.\d{4}), golden (\d\.\d{4})")
FINETUNED = (r"centroids fine-tuned \(30 steps on 160 samples\): training loss (\S+) -> "
             r"(\S+)")


def test_data_without_density_reports_held_out_accuracy(labelled, tmp_path, capsys):
    model, data = labelled
    code, out, err = _run(capsys, "pack", model, "-o", tmp_path / "img", "--data", data)
    assert code == 0 and "eie pack: warning" not in err
    lines = out.splitlines()
    assert lines[1] == ("nothing pruned (no density given), not retrained; weights shared by "
                        "k-means, up to 15 values per layer")
    assert re.fullmatch(FINETUNED, lines[2])
    assert re.fullmatch(r"per layer density/RMS sharing error: 0 1\.000/\S+, 2 1\.000/\S+",
                        lines[3])
    assert re.fullmatch(HELD_OUT, lines[4])


def test_data_with_density_retrains_instead_of_warning(labelled, tmp_path, capsys):
    model, data = labelled
    code, out, err = _run(capsys, "pack", model, "-o", tmp_path / "img", "--data", data,
                          "--density", "0.3")
    assert code == 0 and "eie pack: warning" not in err
    lines = out.splitlines()
    assert lines[1] == ("pruned to density 0.3 while retraining (3 steps of 5 epochs on 160 "
                        "samples); weights shared by k-means, up to 15 values per layer")
    # 0.3 of 128 -> 38 (0.297), of 48 -> 14 (0.292)
    assert re.fullmatch(FINETUNED, lines[2])
    assert re.fullmatch(r"per layer density/RMS sharing error: 0 0\.297/\S+, 2 0\.292/\S+",
                        lines[3])
    assert re.fullmatch(HELD_OUT, lines[4])
    manifest = json.loads((tmp_path / "img" / "manifest.json").read_text())
    assert [layer["nnz"] for layer in manifest["layers"]] == [38, 14]


@pytest.mark.parametrize(("arrays", "message"), [
    ({"x": np.zeros((4, 8))}, "needs arrays x and y; missing y"),
    ({"x": np.zeros((4, 8)), "y": np.zeros(4)},
     "float y (regression targets) of shape [4] does not match the model's 3 output(s)"),
    ({"x": np.zeros((4, 8)), "y": np.array([0, -1, 2, 1])},
     "integer y must hold class labels (non-negative, shape [N]); give float targets for "
     "regression"),
    ({"x": np.zeros((4, 8)), "y": np.array(["a", "b", "c", "d"])},
     "y must be integer class labels or float regression targets, got dtype <U1"),
    ({"x": np.zeros((4, 7)), "y": np.zeros(4, int)}, "x has 7 features, the model takes 8"),
    ({"x": np.zeros((4, 8)), "y": np.array([0, 1, 2, 3])},
     "label 3 needs at least 4 outputs, the model has 3"),
    ({"x": np.zeros((4, 8)), "y": np.zeros(3, int)},
     "x must be [N, n_in] and y [N] (or [N, n_out] targets) with N >= 2, got x [4, 8] and "
     "y [3]"),
])
def test_bad_data_is_one_line_and_writes_nothing(labelled, tmp_path, capsys, arrays, message):
    model, _ = labelled
    np.savez(tmp_path / "bad.npz", **arrays)
    code, out, err = _run(capsys, "pack", model, "-o", tmp_path / "img", "--data",
                          tmp_path / "bad.npz", "--density", "0.5")
    assert (code, out, err) == (2, "", f"eie pack: error: {tmp_path / 'bad.npz'}: {message}\n")
    assert not (tmp_path / "img").exists()

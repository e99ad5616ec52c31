"""ESE prune-and-retrain for LSTMs (compiler.lstm_prune) and `eie demo --lstm` on a tiny
budget (the full demo is marked slow)."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from compiler.lstm_pack import compress_lstm
from compiler.lstm_prune import apply_lstm_masks, iterative_prune_lstm, lstm_masks
from contract.config import EIEConfig
from contract.lstm_config import ESEConfig
from contract.lstm_image import read_lstm_image
from eie.cli import main
from golden.lstm_model import quantize_sequence, run_lstm

# 3 PEs x 8 accumulators: 24 rows per tile, so the 4 * 12 = 48 gate rows take two tiles
CONFIG = ESEConfig(channel=EIEConfig(n_pes=3, act_frac=11, acc_depth=8), cell_depth=32)


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lstm = nn.LSTM(5, 10, 2, proj_size=4, batch_first=True)
        self.head = nn.Linear(4, 3)


def _packed_gate_rows(hidden, n):
    # independent of contract.lstm_layout: gate q of cell r -> PE r % n, local 4 (r // n) + q
    rows = np.zeros(4 * hidden, np.int64)
    for q in range(4):
        for r in range(hidden):
            rows[q * hidden + r] = (4 * (r // n) + q) * n + r % n
    return rows


def test_masks_balance_what_each_pe_holds():
    model = Model()
    masks = lstm_masks(model, 0.3, CONFIG)
    params = dict(model.named_parameters())
    assert sorted(masks) == sorted(k for k in params if "weight" in k)
    for name, mask in masks.items():
        assert mask.shape == tuple(params[name].shape) and mask.dtype == bool
    n, rows_per_tile = 3, 24
    for k, width in ((0, 5), (1, 4)):
        packed = np.zeros((48, 6 + 6), bool)   # 12 cells x 4 gates; inputs 5 -> 6, h 4 -> 6
        rows = _packed_gate_rows(10, n)
        packed[rows, :width] = masks[f"lstm.weight_ih_l{k}"]
        packed[rows, 6:10] = masks[f"lstm.weight_hh_l{k}"]
        for start in range(0, 48, rows_per_tile):
            tile = packed[start:start + rows_per_tile]
            per_pe = [int(tile[p::n].sum()) for p in range(n)]
            # ESE: each PE keeps round(0.3 * 24 * 12 / 3) non-zeros of every row tile
            assert per_pe == [round(0.3 * rows_per_tile * 12 / n)] * n
    # the projection (4 rows x 12 padded cells over 3 PEs) is balanced on its own: each PE
    # keeps round(0.3 * 48 / 3) = 5, the one with two rows as well
    proj = np.zeros((4, 12), bool)
    proj[:, :10] = masks["lstm.weight_hr_l0"]
    assert [int(proj[p::n].sum()) for p in range(n)] == [5, 5, 5]
    # the packer's own balanced pruning keeps the same weights
    compressed = compress_lstm(model, CONFIG, density=0.3, balance=True)
    assert [s["nnz"] for s in compressed.stats] == \
        [int(m.sum()) for m in (_packed_mask(masks, k) for k in range(5))]


def _packed_mask(masks, k):
    order = ["lstm.weight_ih_l0+lstm.weight_hh_l0", "lstm.weight_hr_l0",
             "lstm.weight_ih_l1+lstm.weight_hh_l1", "lstm.weight_hr_l1", "head.weight"]
    return np.concatenate([masks[name].ravel() for name in order[k].split("+")])


def test_unbalanced_masks_are_magnitude_per_matrix():
    masks = lstm_masks(Model(), 0.25, CONFIG, balance=False)
    head = masks["head.weight"]
    assert head.sum() == 3  # round(0.25 * 12)
    w = Model().head.weight.detach().abs().numpy().ravel()
    assert set(np.flatnonzero(head.ravel())) == set(np.argsort(-w)[:3])


def test_iterative_prune_keeps_masks_through_retraining():
    model = Model()
    seen = []

    def train_fn(module, masks):
        seen.append({k: v.copy() for k, v in masks.items()})
        with torch.no_grad():                 # a "training step" that touches every weight
            for p in module.parameters():
                p.add_(0.01)

    final = iterative_prune_lstm(model, 0.2, 3, CONFIG, train_fn=train_fn)
    assert len(seen) == 3
    for before, after in zip(seen, seen[1:], strict=False):   # nested masks
        assert all(np.all(after[k] <= before[k]) for k in before)
    params = dict(model.named_parameters())
    for name, mask in final.items():
        value = params[name].detach().numpy()
        assert np.all(value[~mask] == 0) and np.all(value[mask] != 0)
    with pytest.raises(KeyError, match="unknown parameter"):
        apply_lstm_masks(model, {"nope": np.ones(1, bool)})


# ---- the demo ------------------------------------------------------------------------------
TINY = dict(samples=300, hidden=8, epochs=2, prune_steps=1, retrain_epochs=1,
            cycle_sequences=3)


def test_demo_tiny_budget_and_replay(tmp_path, capsys):
    from eie.lstm_demo import run_lstm_demo

    config = ESEConfig(channel=EIEConfig(n_pes=2, act_frac=11, acc_depth=16))
    r = run_lstm_demo(tmp_path / "demo", config, rtl=False, **TINY)
    out = tmp_path / "demo"
    for name in ("lstm.pt", "x_test.npy", "y_test.npy", "report.md", "image/manifest.json"):
        assert (out / name).is_file()
    x = np.load(out / "x_test.npy")
    assert x.shape == (60, 10, 4) and x.dtype == np.float32      # 20% of 300, 40 = 10 x 4
    report = (out / "report.md").read_text()
    for row in ("| float PyTorch, dense", "| float PyTorch, pruned to 15%",
                "| compressed float", "| golden (bit-exact ESE fixed point)"):
        assert row in report
    err = capsys.readouterr().err
    assert [line.split("]")[0] for line in err.splitlines() if line.startswith("[")] == \
        [f"[{k}/6" for k in range(1, 7)]
    # golden accuracy is what the image gives on the saved inputs
    image = read_lstm_image(out / "image")
    gold = run_lstm(image, quantize_sequence(x.astype(np.float64), config))
    labels = np.load(out / "y_test.npy")
    assert r["acc_golden"] == np.mean(np.argmax(gold.y[:, -1], 1) == labels)
    # the pruned state_dict is at the target density per packed matrix
    state = torch.load(out / "lstm.pt", weights_only=True)
    assert torch.count_nonzero(state["lstm.weight_ih_l0"]) + \
        torch.count_nonzero(state["lstm.weight_hh_l0"]) == round(0.15 * 32 * 12 / 2) * 2
    # replay: `eie pack` of the saved model gives the demo's image, `eie golden` its output
    assert main(["pack", str(out / "lstm.pt"), "-o", str(tmp_path / "img"), "--pes", "2",
                 "--acc-depth", "16"]) == 0
    manifest = json.loads((tmp_path / "img" / "manifest.json").read_text())
    assert manifest == json.loads((out / "image" / "manifest.json").read_text())
    assert main(["golden", str(tmp_path / "img"), "--input", str(out / "x_test.npy"),
                 "-o", str(tmp_path / "y.npz")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "y.npz")["q"], gold.q)


@pytest.mark.slow
def test_full_demo(tmp_path):
    assert main(["demo", "--lstm", "-o", str(tmp_path / "demo")]) == 0
    assert "golden (bit-exact ESE fixed point)" in (tmp_path / "demo" / "report.md").read_text()

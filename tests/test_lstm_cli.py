"""ESE through the user-facing layer: `eie pack/golden/inspect/sim` on LSTM models and
images, their bad inputs, and the Python API's dispatch on the model and image kind."""

import json

import numpy as np
import pytest
import torch
from torch import nn

import eie
from contract.config import EIEConfig
from contract.image import PackedImage
from contract.image_read import image_kind
from contract.lstm_config import ESEConfig
from contract.lstm_image import LSTMImage, read_lstm_image
from eie.cli import main
from golden.lstm_cycles import lstm_cycles
from golden.lstm_model import quantize_sequence, run_lstm

# 3 PEs: I = 5 -> 6, H = 10 -> 12 cells, P = 6 (4 cells per PE per layer)
PACK_FLAGS = ["--pes", "3", "--density", "0.4", "--balance", "--channels", "2",
              "--cell-depth", "32"]


class LSTMHead(nn.Module):
    def __init__(self, scale=1.0):
        super().__init__()
        torch.manual_seed(0)
        self.lstm = nn.LSTM(5, 10, 2, proj_size=6, batch_first=True)
        self.head = nn.Linear(6, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.mul_(scale)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("lstm") / "lstm.pt"
    torch.save(LSTMHead().state_dict(), path)
    return path


@pytest.fixture(scope="module")
def packed(model_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("img") / "image"
    import contextlib
    import io

    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        assert main(["pack", str(model_file), "-o", str(out), *PACK_FLAGS]) == 0
    return out, text.getvalue()


def _sequences(seed=1, shape=(3, 7, 5)):
    return np.random.default_rng(seed).normal(size=shape)


# ---- pack ------------------------------------------------------------------------------
def test_pack_writes_an_lstm_image(packed):
    out, text = packed
    assert image_kind(out) == "lstm"
    manifest = json.loads((out / "manifest.json").read_text())
    ese = manifest["extension"]["data"]["config"]
    # the LSTM channel default (act_frac 11, acc_depth 64) survives the EIE flag --pes
    assert ese["channel"]["n_pes"] == 3 and ese["channel"]["act_frac"] == 11
    assert ese["channel"]["acc_depth"] == 64
    assert ese["channels"] == 2 and ese["cell_depth"] == 32
    shapes = [(m["name"], m["n_out"], m["n_in"]) for m in manifest["layers"]]
    assert shapes == [("lstm.l0.gates", 48, 12), ("lstm.l0.proj", 6, 12),
                      ("lstm.l1.gates", 48, 12), ("lstm.l1.proj", 6, 12), ("head", 3, 6)]
    for line in ("lstm.l0.gates  gates of lstm.l0", "lstm.l1.proj   projection of lstm.l1",
                 "head, every frame, in the state_dict's key order: lstm.l1 -> head",
                 "pruned to density 0.4 per matrix"):
        assert line in text
    assert text.rstrip().endswith(f"wrote {out}")


def test_pack_without_density_says_it_shares(model_file, tmp_path, capsys):
    assert main(["pack", str(model_file), "-o", str(tmp_path / "img"), "--pes", "2",
                 "--act-frac", "12"]) == 0
    out = capsys.readouterr().out
    assert "no --density: the model packs with the zeros it has (not pruned); every matrix " \
           "is still shared by its own 4-bit k-means codebook" in out
    image = read_lstm_image(tmp_path / "img")
    # an EIE flag overrides the channel default; the other channel fields keep the LSTM's
    assert image.config.channel.act_frac == 12 and image.config.channel.acc_depth == 64
    assert image.config == ESEConfig(channel=image.config.channel)


def test_pack_config_file_of_channel_fields(model_file, tmp_path):
    (tmp_path / "cfg.json").write_text(json.dumps({"n_pes": 2, "queue_depth": 4}))
    assert main(["pack", str(model_file), "-o", str(tmp_path / "img"), "--config",
                 str(tmp_path / "cfg.json"), "--gate-frac", "13"]) == 0
    cfg = read_lstm_image(tmp_path / "img").config
    assert (cfg.n_pes, cfg.channel.queue_depth, cfg.channel.act_frac, cfg.gate_frac) == \
        (2, 4, 11, 13)


# ---- golden ----------------------------------------------------------------------------
def test_golden_round_trip(packed, tmp_path, capsys):
    out, _ = packed
    x = _sequences()
    np.save(tmp_path / "x.npy", x)
    assert main(["golden", str(out), "--input", str(tmp_path / "x.npy"),
                 "-o", str(tmp_path / "y.npz")]) == 0
    y = np.load(tmp_path / "y.npz")
    assert sorted(y.files) == ["cycles", "cycles_per_matrix", "q", "saturation",
                               "saturation_stages", "wraps", "y"]
    image = read_lstm_image(out)
    q_in = quantize_sequence(x, image.config)
    want = run_lstm(image, q_in)
    assert y["q"].shape == y["y"].shape == (3, 7, 3)
    np.testing.assert_array_equal(y["q"], want.q)
    np.testing.assert_array_equal(y["y"], want.q / 2.0 ** 11)
    assert y["cycles"].shape == (3, 7)
    np.testing.assert_array_equal(y["cycles"], lstm_cycles(image, q_in).cycles)
    assert y["cycles_per_matrix"].shape == (3, 7, 5)
    assert y["saturation_stages"].tolist() == ["gates", "table", "cell", "proj", "head"]
    assert y["saturation"].shape == (3, 5) and y["wraps"].shape == (3,)
    np.testing.assert_array_equal(
        y["saturation"], np.stack([want.saturation[k] for k in y["saturation_stages"]], -1))
    np.testing.assert_array_equal(y["wraps"], want.wraps)
    text = capsys.readouterr()
    assert f"wrote {tmp_path / 'y.npz'}: y [3, 7, 3], cycles per sequence" in text.out
    assert text.err == ""        # nothing saturated at this scale

    # one sequence [T, n_in] gives unbatched fields
    np.save(tmp_path / "x1.npy", x[1])
    assert main(["golden", str(out), "--input", str(tmp_path / "x1.npy"),
                 "-o", str(tmp_path / "y1.npz")]) == 0
    y1 = np.load(tmp_path / "y1.npz")
    assert y1["q"].shape == (7, 3) and y1["cycles"].shape == (7,)
    assert y1["saturation"].shape == (5,) and y1["wraps"].shape == ()
    np.testing.assert_array_equal(y1["q"], want.q[1])


def test_golden_warns_on_saturation(model_file, tmp_path, capsys):
    path = tmp_path / "big.pt"
    torch.save(LSTMHead(scale=4.0).state_dict(), path)
    assert main(["pack", str(path), "-o", str(tmp_path / "img"), "--pes", "2"]) == 0
    np.save(tmp_path / "x.npy", 6 * _sequences())
    capsys.readouterr()
    assert main(["golden", str(tmp_path / "img"), "--input", str(tmp_path / "x.npy"),
                 "-o", str(tmp_path / "y.npz")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("eie golden: warning: values saturated (gates ")
    y = np.load(tmp_path / "y.npz")
    assert f"table {y['saturation'][:, 1].sum()}," in err[0]
    assert y["saturation"].sum() > 0


# ---- inspect, sim ------------------------------------------------------------------------
def test_inspect(packed, capsys):
    out, _ = packed
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "ESE image: 2 channel(s) of 3 PEs" in text
    # 2 + 2 + 2 + 4 + 1 + 1 words of the activation map; 4 + 4 cells per PE
    assert "used                               12  of act_depth 256 (5%)" in text
    assert "cell memory per PE and channel: 8 of cell_depth 32 words (25%)" in text
    assert "lstm.l1.gates        48x12" in text and "imbalance" in text and "Huffman" in text


def test_sim_runs_lstm_images_on_the_ese_rtl(packed, tmp_path, capsys):
    """`eie sim` of an ESE image: the RTL's outputs and cycles with golden's fields."""
    out, _ = packed
    x = _sequences()
    np.save(tmp_path / "x.npy", x)
    assert main(["sim", str(out), "--input", str(tmp_path / "x.npy"),
                 "-o", str(tmp_path / "y")]) == 0
    assert "RTL against golden: bit-exact True, cycle-exact True" in capsys.readouterr().out
    got = np.load(tmp_path / "y.npz")
    gold = np.load((main(["golden", str(out), "--input", str(tmp_path / "x.npy"), "-o",
                          str(tmp_path / "g")]), tmp_path / "g.npz")[1])
    np.testing.assert_array_equal(got["q"], gold["q"])
    np.testing.assert_array_equal(got["cycles"], gold["cycles"])
    np.testing.assert_array_equal(got["model_cycles"], gold["cycles"])
    assert got["bit_exact"] and got["cycle_exact"]
    assert set(gold.files) <= set(got.files)


# ---- bad input: one line, exit 2, nothing written ------------------------------------------
def _one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"eie {command}: error: "), err
    return err


@pytest.mark.parametrize("x, message", [
    (np.zeros((3, 7, 4)), r"input must have shape \[T, 5\] or \[batch, T, 5\]"),
    (np.zeros(5), r"input must have shape \[T, 5\]"),
    (np.full((2, 3, 5), np.nan), "input holds 30 NaN/Inf values"),
    (np.zeros((2, 0, 5)), r"input has no frames \(T = 0\)"),
])
def test_golden_bad_inputs(packed, tmp_path, capsys, x, message):
    import re

    np.save(tmp_path / "x.npy", x)
    assert main(["golden", str(packed[0]), "--input", str(tmp_path / "x.npy"),
                 "-o", str(tmp_path / "y.npz")]) == 2
    assert re.search(message, _one_line_error(capsys, "golden"))
    assert not (tmp_path / "y.npz").exists()


def _state(kind):
    torch.manual_seed(0)
    if kind == "gru":
        return nn.GRU(4, 6, batch_first=True).state_dict()
    if kind == "bidirectional":
        return nn.LSTM(4, 6, bidirectional=True, batch_first=True).state_dict()
    state = LSTMHead().state_dict()
    if kind == "missing":
        del state["lstm.weight_hh_l1"]
    return state


@pytest.mark.parametrize("kind, flags, message", [
    ("missing", [], "LSTM layer 1: missing lstm.weight_hh_l1"),
    ("gru", [], "looks like a GRU's"),
    ("bidirectional", [], "bidirectional LSTMs are not supported"),
    ("lstm", ["--pes", "3", "--act-depth", "8"], "--act-depth 12 needed, 8 configured"),
    ("lstm", ["--pes", "3", "--cell-depth", "6"], "--cell-depth 8 needed, 6 configured"),
    ("lstm", ["--max-lstm-layers", "1"], "--max-lstm-layers 2 needed, 1 configured"),
    ("lstm", ["--ternary"], "--ternary do(es) not apply to LSTM models"),
    ("lstm", ["--balance"], "--balance needs --density"),
    ("lstm", ["--gate-frac", "11"], "gate_frac (11) must exceed the channel's act_frac (11)"),
])
def test_pack_bad_models(tmp_path, capsys, kind, flags, message):
    torch.save(_state(kind), tmp_path / "m.pt")
    out = tmp_path / "img"
    assert main(["pack", str(tmp_path / "m.pt"), "-o", str(out), *flags]) == 2
    assert message in _one_line_error(capsys, "pack")
    assert not out.exists()


def test_lstm_flags_on_an_mlp(tmp_path, capsys):
    torch.save(nn.Sequential(nn.Linear(4, 3)).state_dict(), tmp_path / "mlp.pt")
    assert main(["pack", str(tmp_path / "mlp.pt"), "-o", str(tmp_path / "img"),
                 "--channels", "2"]) == 2
    assert "--channels apply to LSTM models only" in _one_line_error(capsys, "pack")
    assert not (tmp_path / "img").exists()


# ---- the Python API dispatches on the model and the image ------------------------------------
def test_api_dispatch(tmp_path):
    config = eie.ESEConfig(channel=EIEConfig(n_pes=2, act_frac=11, acc_depth=16))
    image = eie.pack(LSTMHead(), tmp_path / "img", config=config, density=0.5, balance=True)
    assert isinstance(image, LSTMImage) and image.config == config
    x = _sequences(shape=(2, 4, 5))
    out = eie.golden(tmp_path / "img", x)
    np.testing.assert_array_equal(out["q"], run_lstm(image, quantize_sequence(x, config)).q)
    np.testing.assert_array_equal(eie.golden(image, x)["cycles"], out["cycles"])
    assert "cell memory per PE" in eie.inspect_image(tmp_path / "img")
    assert eie.inspect_image(image) == eie.inspect_image(tmp_path / "img")
    # an ESE image gives the ESE top (boards/ese_vivado.py, tests/test_ese_board.py)
    assert str(eie.verilog(tmp_path / "v", image=tmp_path / "img")[0]).endswith("ese_top.v")
    # an MLP still packs for EIE, from a module or a state_dict
    mlp = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    assert isinstance(eie.pack(mlp), PackedImage)
    assert isinstance(eie.pack(mlp.state_dict(), tmp_path / "mlp"), PackedImage)
    assert image_kind(tmp_path / "mlp") == "eie"
    with pytest.raises(ValueError, match="no LSTM weights"):
        eie.pack(mlp, config=config)

"""End-to-end CLI round trips and bad-input handling (no RTL here; see sim_tests/)."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from eie.cli import main


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 24), nn.ReLU(), nn.Linear(24, 7))
    path = tmp_path_factory.mktemp("model") / "mlp.pt"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def image_dir(model_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("img") / "image"
    assert main(["pack", str(model_file), "-o", str(out), "--pes", "3", "--density", "0.4",
                 "--balance", "--acc-depth", "4"]) == 0
    return out


def test_pack_writes_every_format(image_dir):
    manifest = json.loads((image_dir / "manifest.json").read_text())
    assert manifest["config"]["n_pes"] == 3 and manifest["config"]["acc_depth"] == 4
    # 24 rows over 3 PEs x 4 accumulators -> 2 tiles for fc1; 7 rows -> 1 tile
    assert [layer["n_tiles"] for layer in manifest["layers"]] == [2, 1]
    for suffix in ("mem", "coe", "bin"):
        assert (image_dir / f"pe002_spmat.{suffix}").is_file()
        assert (image_dir / f"program.{suffix}").is_file()


def test_golden_roundtrip_matches_api(image_dir, tmp_path, capsys):
    import golden
    from contract.image_read import read_image

    x = np.random.default_rng(1).uniform(-1, 1, size=(5, 20))
    np.save(tmp_path / "x.npy", x)
    assert main(["golden", str(image_dir), "--input", str(tmp_path / "x.npy"),
                 "-o", str(tmp_path / "y.npz")]) == 0
    y = np.load(tmp_path / "y.npz")
    image = read_image(image_dir)
    q = golden.run(image, golden.quantize_input(x, image.config)).q
    np.testing.assert_array_equal(y["q"], q)
    np.testing.assert_array_equal(y["y"], q / 2.0 ** image.config.act_frac)
    assert y["cycles"].shape == (5,) and np.all(y["cycles"] > 0)
    assert y["cycles_per_layer"].shape == (5, 2)
    np.testing.assert_array_equal(y["cycles_per_layer"].sum(axis=1) <= y["cycles"], True)
    # a single vector gives unbatched outputs
    np.save(tmp_path / "x1.npy", x[0])
    assert main(["golden", str(image_dir), "--input", str(tmp_path / "x1.npy"),
                 "-o", str(tmp_path / "y1.npz")]) == 0
    y1 = np.load(tmp_path / "y1.npz")
    assert y1["q"].shape == (7,) and y1["cycles"].shape == ()
    np.testing.assert_array_equal(y1["q"], q[0])


def test_inspect(image_dir, capsys):
    assert main(["inspect", str(image_dir)]) == 0
    text = capsys.readouterr().out
    assert "fc" in text or "0" in text
    assert "Huffman" in text and "compression" in text


def test_bad_inputs_give_one_line_errors(model_file, image_dir, tmp_path, capsys):
    np.save(tmp_path / "bad.npy", np.zeros((2, 19)))
    assert main(["golden", str(image_dir), "--input", str(tmp_path / "bad.npy"),
                 "-o", str(tmp_path / "y.npz")]) == 2
    assert "shape [20] or [batch, 20]" in capsys.readouterr().err
    assert not (tmp_path / "y.npz").exists()

    nan_model = nn.Sequential(nn.Linear(4, 3))
    with torch.no_grad():
        nan_model[0].weight[0, 0] = float("nan")
    torch.save(nan_model.state_dict(), tmp_path / "nan.pt")
    out = tmp_path / "nan_image"
    assert main(["pack", str(tmp_path / "nan.pt"), "-o", str(out)]) == 2
    assert "NaN" in capsys.readouterr().err
    assert not out.exists()

    # too big for the memories: names the memory, the PE and the bytes
    out = tmp_path / "big"
    assert main(["pack", str(model_file), "-o", str(out), "--pes", "2",
                 "--spmat-depth", "2"]) == 2
    err = capsys.readouterr().err
    assert "spmat" in err and "PE" in err and "bytes" in err
    assert not out.exists()

    # corrupt manifest
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{")
    assert main(["inspect", str(broken)]) == 2
    assert "manifest" in capsys.readouterr().err

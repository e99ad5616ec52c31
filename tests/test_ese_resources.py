"""ESE resource estimate (boards/ese_resources.py): parameter checks, the fit, the report,
one real estimate of a tiny engine (parts synthesised, cached on rerun), the `eie resources
--image` dispatch for ESE and EIE images, and (slow) the ESE-size projection."""

import json
import logging

import pytest

import boards.ese_resources as ese_resources
from boards.ese_resources import (
    _fit,
    estimate_ese,
    format_ese_report,
    shell_verilog,
    slot_words_for,
)
from boards.resources import ESE_KU060, KU060
from contract.config import EIEConfig
from contract.lstm_config import ESEConfig
from eie.cli import main

TINY = ESEConfig(channel=EIEConfig(n_pes=2, act_frac=11, acc_depth=8, act_depth=16,
                                   spmat_depth=32, ptr_depth=32, bias_depth=16,
                                   max_tiles=16),
                 channels=2, cell_depth=8)


def _tiny_image():
    from lstm_models import lstm_model

    from compiler.lstm_pack import compress_lstm, pack_lstm

    logging.getLogger("compiler.pack").setLevel(logging.ERROR)
    model = lstm_model(3, 4, 1, 0, ())
    return pack_lstm(compress_lstm(model, TINY, density=0.5, bits=4, balance=True), TINY)


@pytest.fixture(scope="module")
def tiny_image_dir(tmp_path_factory):
    from contract.lstm_image import write_lstm_image

    path = tmp_path_factory.mktemp("ese_img") / "img"
    write_lstm_image(_tiny_image(), path)
    return path


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("yosys_cache")


@pytest.fixture(scope="module")
def tiny_estimate(tmp_path_factory, cache):
    out = tmp_path_factory.mktemp("ese_res")
    lines = []
    result = estimate_ese(TINY, out_dir=out, points=(1, 2), slot_words=2, cache_dir=cache,
                          log=lines.append)
    return out, result, lines


# ---- parameters -----------------------------------------------------------------------------

def test_rejects_an_eie_config():
    with pytest.raises(TypeError, match=r"^Config must be an ESEConfig, not EIEConfig\("):
        estimate_ese(EIEConfig())


@pytest.mark.parametrize("points", [(1,), (2, 2), (0, 1), (1, 2.0), (True, 2)])
def test_rejects_bad_points(points):
    with pytest.raises(ValueError, match=r"^Points must be at least two different positive "
                                         r"channel counts, not "):
        estimate_ese(TINY, points=points)


def test_slot_words_hold_the_frames():
    image = _tiny_image()
    # 3 inputs and 4 outputs on 2 PEs: 2 words each
    assert slot_words_for(image) == 2


# ---- the fit ----------------------------------------------------------------------------------

def _point(lut, ff=0, dsp=0, bram36=0.0):
    return {"lut": lut, "ff": ff, "dsp": dsp, "bram36": bram36, "lut_memory": 0, "carry": 0}


def test_fit_is_exact_on_a_line_and_reports_residuals():
    fit = _fit({1: _point(110, 7, 2, 1.5), 2: _point(140, 9, 3, 2.0),
                4: _point(200, 13, 5, 3.0)})
    assert fit["lut"]["shared"] == pytest.approx(80)
    assert fit["lut"]["per_channel"] == pytest.approx(30)
    assert fit["dsp"]["shared"] == pytest.approx(1)
    assert fit["dsp"]["per_channel"] == pytest.approx(1)
    assert fit["bram36"]["per_channel"] == pytest.approx(0.5)
    assert all(abs(r) < 1e-9 for r in fit["lut"]["residuals"].values())
    bent = _fit({1: _point(100), 2: _point(100), 3: _point(130)})
    # least squares through (1, 100) (2, 100) (3, 130): b = 30/2, a = 110 - 2b
    assert bent["lut"]["per_channel"] == pytest.approx(15)
    assert bent["lut"]["shared"] == pytest.approx(80)
    assert bent["lut"]["residuals"] == pytest.approx({1: 5, 2: -10, 3: 5})
    assert bent["lut"]["max_relative_residual"] == pytest.approx(0.1)


# ---- the shell ---------------------------------------------------------------------------------

def test_shell_black_boxes_every_pe_position():
    text = shell_verilog(TINY, frame_slots=2, slot_words=2)
    assert "(* blackbox *)\nmodule ese_pe_blackbox (" in text
    assert text.count("ese_pe_blackbox ") == TINY.n_pes + 1   # instances + the declaration
    assert "module ese_shell" in text


# ---- a real estimate -------------------------------------------------------------------------

def test_tiny_estimate_adds_its_parts(tiny_estimate):
    out, result, lines = tiny_estimate
    parts = result["parts"]
    pe = parts["pe"]
    assert sorted(pe["points"]) == [1, 2] and pe["source"] == "synthesised"
    for k in ("lut", "ff", "dsp", "bram36"):
        assert result["total"][k] == TINY.n_pes * pe["points"][2][k] + parts["shell"][k]
        assert pe["at_channels"][k] == pe["points"][2][k]
    # what the engine has: DSP48E2 multipliers and block RAM in every PE, none in the shell
    assert pe["points"][1]["dsp"] >= 1 and pe["points"][2]["dsp"] > pe["points"][1]["dsp"]
    assert pe["points"][1]["bram36"] > 0 and parts["shell"]["dsp"] == 0
    assert result["fits_ku060"] is True and result["lut_below_ese"] is True
    assert result["n_pes"] == 2 and result["channels"] == 2
    written = json.loads((out / "resources.json").read_text())
    assert set(written["total"]) >= {"lut", "ff", "dsp", "bram36"}
    assert written["fits_ku060"] is True and written["ku060"] == KU060
    assert written["ese"] == ESE_KU060 and "black box" in written["method"]
    assert any("PE position, C=1: synthesising" in line for line in lines)
    assert lines[-1].lstrip("[ ").split("] ")[1].startswith("total LUT")


def test_rerun_comes_from_the_cache(tiny_estimate, cache, tmp_path):
    _, first, _ = tiny_estimate
    lines = []
    again = estimate_ese(TINY, out_dir=tmp_path, points=(1, 2), slot_words=2,
                         cache_dir=cache, log=lines.append)
    assert again["total"] == first["total"]
    assert again["parts"]["shell"]["cached"] is True
    assert all(p["cached"] for p in again["parts"]["pe"]["points"].values())
    assert sum("cached" in line for line in lines) == 3


def test_report_table(tiny_estimate):
    _, result, _ = tiny_estimate
    text = format_ese_report(result)
    for label in ("one PE position, C=1 (synthesised)", "fit a: shared by the channels",
                  "fit b: per channel", "shell (scanner/LNZD", "total", "XCKU060 capacity",
                  "ESE (recalled, unconfirmed)", "fits the XCKU060: yes", "method: "):
        assert label in text
    assert f"{KU060['lut']:,}" in text and f"{ESE_KU060['lut']:,}" in text


def test_report_says_what_is_over():
    point = {"lut": 12_000, "ff": 6_000, "dsp": 37, "bram36": 23.5, "lut_memory": 0,
             "carry": 0}
    total = {"lut": 400_000, "ff": 200_000, "dsp": 1_184, "bram36": 752.0}
    result = {"n_pes": 32, "channels": 32, "method": "m",
              "parts": {"pe": {"points": {1: point}, "fit": _fit({1: point, 2: point}),
                               "at_channels": point, "source": "projected"},
                        "pes": {"total": point, "shared": point, "per_channel": point},
                        "shell": point},
              "total": total, "ku060": KU060, "ese": ESE_KU060, "fits_ku060": False,
              "over": {"lut": total["lut"] - KU060["lut"]}, "lut_below_ese": False}
    text = format_ese_report(result)
    assert "fits the XCKU060: no (LUT over by 68,320)" in text
    assert "LUT below ESE's recalled 293,920: no" in text


# ---- eie resources --image ------------------------------------------------------------------

def test_cli_resources_on_an_ese_image(tiny_image_dir, cache, tmp_path, capsys, monkeypatch,
                                       tiny_estimate):
    monkeypatch.setenv("EIE_YOSYS_CACHE", str(cache))
    monkeypatch.setattr(ese_resources, "DEFAULT_POINTS", (1, 2))
    out = tmp_path / "res"
    assert main(["resources", "--image", str(tiny_image_dir), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "ESE engine, 2 channels x 2 PEs" in text and "(recalled, unconfirmed)" in text
    written = json.loads((out / "resources.json").read_text())
    assert written["total"] == json.loads(json.dumps(tiny_estimate[1]["total"]))
    assert written["fits_ku060"] is True


def test_cli_resources_image_flags_must_agree(tiny_image_dir, tmp_path, capsys):
    assert main(["resources", "--image", str(tiny_image_dir), "--pes", "4",
                 "-o", str(tmp_path)]) == 2
    assert "disagree with the ESE image's channel config" in capsys.readouterr().err


def test_cli_resources_on_an_eie_image_takes_its_config(tmp_path, capsys, monkeypatch):
    """An EIE image goes to the existing flow with the image's config."""
    import numpy as np

    import boards.resources
    from compiler.pack import pack
    from compiler.types import QuantLayer
    from contract.image_write import write_image

    config = EIEConfig(n_pes=2, spmat_depth=64, ptr_depth=32, act_depth=16, acc_depth=4,
                       bias_depth=16, max_layers=2, max_tiles=8)
    layer = QuantLayer("fc", np.ones((4, 4), np.uint8), np.linspace(0, 1, 16), None, False)
    write_image(pack([layer], config), tmp_path / "img")
    seen = []

    def fake(cfg, top="all", *, out_dir=None, **kwargs):
        seen.append(cfg)
        return {"top": "pe", "n_pes": cfg.n_pes, "lut": 1, "ff": 1, "dsp": 1, "bram36": 1,
                "carry": 0, "depth": 1, "dir": "d", "lut_memory": 0, "bram36_expected": 1,
                "depth_path": []}

    monkeypatch.setattr(boards.resources, "estimate", fake)
    assert main(["resources", "--image", str(tmp_path / "img"), "-o", str(tmp_path)]) == 0
    assert seen == [config]


# ---- the ESE-size engine -----------------------------------------------------------------------

@pytest.mark.slow
def test_ese_size_projection(tmp_path):
    """32 channels x 32 PEs (``ESEConfig.ese()``): the parts synthesise (minutes; cached),
    the fit is linear within 3% and the total is the sum of its parts. Whether it fits
    is reported, not asserted (docs/boards.md gives the figures)."""
    config = ESEConfig.ese()
    result = estimate_ese(config, out_dir=tmp_path, slot_words=16)
    fit = result["parts"]["pe"]["fit"]
    assert all(fit[k]["max_relative_residual"] < 0.03 for k in ("lut", "ff"))
    pe = result["parts"]["pe"]["at_channels"]
    for k in ("lut", "ff", "dsp", "bram36"):
        assert result["total"][k] == pytest.approx(32 * pe[k] + result["parts"]["shell"][k])
    assert result["fits_ku060"] == all(result["total"][k] <= KU060[k]
                                       for k in ("lut", "ff", "dsp", "bram36"))

"""``eie resources --pes N`` synthesises the N asked for (not only N = 2 and 4) and ``-o DIR``
writes ``resources.json`` (issue 9); the projection table stays for the other sizes."""

import json
import re

import pytest

import boards.resources as res
from contract.config import EIEConfig
from eie.cli import main

#: The smallest legal config (every memory at its minimum), as in tests/test_cli.py.
TINY = ["--queue-depth", "1", "--weight-bits", "2", "--index-bits", "2",
        "--entries-per-word", "2", "--pointer-bits", "4", "--spmat-depth", "4",
        "--ptr-depth", "4", "--act-depth", "4", "--acc-depth", "2",
        "--bias-depth", "2", "--max-layers", "1", "--max-tiles", "2",
        "--act-bits", "4", "--act-frac", "1", "--codebook-bits", "4", "--acc-bits", "8"]


def fake_run(config, top, work_dir):
    """Synthesis stand-in with known per-PE and fixed costs."""
    n = config.n_pes
    base = {"lut": 700 * n + 400, "ff": 300 * n + 600, "carry": 70 * n, "dsp": n,
            "bram36": 6.5 * n, "lut_memory": 90 * n + 40}
    if top == "pe":
        base = {k: v / n for k, v in base.items()}
    return {"top": top, "n_pes": n, **base, "depth": 5, "depth_path": ["LUT6"],
            "bram36_expected": 7.0, "dir": str(work_dir), "cells": {}}


@pytest.mark.parametrize("n, sizes", [(1, (1, 2)), (2, (1, 2)), (3, (2, 3)), (4, (2, 4)),
                                      (8, (2, 8)), (64, (2, 64))])
def test_fit_sizes_hold_the_size_asked_for(n, sizes):
    assert res.fit_sizes(n) == sizes


def test_fit_sizes_reject_a_bad_size():
    with pytest.raises(ValueError, match="n_pes must be a positive integer, not 0"):
        res.fit_sizes(0)


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match=r"Sizes must be two different positive integers, "
                                         r"not \(2, 2\)"):
        res.estimate(EIEConfig(), sizes=(2, 2))


def test_asked_size_is_synthesised_and_not_projected(monkeypatch, tmp_path):
    runs = []
    monkeypatch.setattr(res, "_run", lambda c, t, d: runs.append((t, c.n_pes)) or
                        fake_run(c, t, d))
    result = res.estimate(EIEConfig(n_pes=32), out_dir=tmp_path)
    assert runs == [("pe", 32), ("array", 2), ("array", 32)]
    assert list(result["arrays"]) == [2, 32] and result["n_pes"] == 32
    assert list(result["projection"]) == [16, 64]          # 32 is measured
    text = res.format_report(result)
    assert re.search(r"^array N=32\s", text, re.M)
    assert "array N=32 (projected)" not in text and "array N=64 (projected)" in text
    assert text.rstrip().endswith(f"wrote {tmp_path / 'resources.json'}")


def test_explicit_sizes_still_synthesise_the_asked_size(monkeypatch, tmp_path):
    monkeypatch.setattr(res, "_run", fake_run)
    result = res.estimate(EIEConfig(n_pes=8), out_dir=tmp_path, sizes=(2, 4))
    assert list(result["arrays"]) == [2, 4, 8] and result["sizes"] == [2, 4]
    assert result["fit"]["lut"] == {"per_pe": 700, "fixed": 400}
    assert result["arrays"][8]["lut"] == 700 * 8 + 400


def test_json_is_the_result(monkeypatch, tmp_path):
    monkeypatch.setattr(res, "_run", fake_run)
    result = res.estimate(EIEConfig(n_pes=3), out_dir=tmp_path)
    saved = json.loads((tmp_path / "resources.json").read_text())
    assert saved == json.loads(json.dumps(result))          # int keys become strings
    assert saved["arrays"]["3"]["ff"] == 300 * 3 + 600
    assert saved["json"] == str(tmp_path / "resources.json")


def test_no_json_without_out_dir(monkeypatch):
    monkeypatch.setattr(res, "_run", fake_run)
    assert "json" not in res.estimate(EIEConfig(n_pes=2))


def test_cli_pes_3_synthesises_n3(tmp_path, capsys):
    """Real Yosys runs on the smallest legal config: one PE, N = 2 (the fit) and N = 3."""
    out = tmp_path / "res"
    assert main(["resources", "--pes", "3", *TINY, "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    lines = captured.out.rstrip().splitlines()
    assert lines[-1] == f"wrote {out / 'resources.json'}"
    saved = json.loads((out / "resources.json").read_text())
    assert sorted(saved["arrays"]) == ["2", "3"] and saved["n_pes"] == 3
    assert (out / "array_n3" / "stat.txt").is_file() and not (out / "array_n4").exists()
    (row,) = [line for line in lines if re.match(r"^array N=3\s", line)]
    lut, ff = (float(v.replace(",", "")) for v in row.split()[2:4])
    assert (lut, ff) == (saved["arrays"]["3"]["lut"], saved["arrays"]["3"]["ff"])
    assert saved["arrays"]["2"]["lut"] < lut
    assert "array N=3 (projected)" not in captured.out
    assert any(line.startswith("array N=64 (projected)") for line in lines)


def test_plot_against_n(monkeypatch, tmp_path):
    """``-o DIR`` also writes ``resources.png`` (each resource as a share of the KU060
    against N); the report names it, and it can be redrawn from resources.json."""
    monkeypatch.setattr(res, "_run", fake_run)
    result = res.estimate(EIEConfig(n_pes=8), out_dir=tmp_path)
    png = tmp_path / "resources.png"
    assert result["plot"] == str(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {png}" in res.format_report(result)
    saved = json.loads((tmp_path / "resources.json").read_text())
    again = res.plot(saved, tmp_path / "again.png")
    assert again.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_plot_for_one_design(monkeypatch, tmp_path):
    monkeypatch.setattr(res, "_run", fake_run)
    result = res.estimate(EIEConfig(n_pes=2), top="pe", out_dir=tmp_path)
    assert "plot" not in result and not (tmp_path / "resources.png").exists()
    assert (tmp_path / "resources.json").is_file()

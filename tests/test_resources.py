"""Yosys resource estimate: stat parsing, grouping, logic depth, BRAM arithmetic, and one
small real synthesis (one PE) that must infer block RAM and a DSP48E2."""

import dataclasses

import pytest

from boards.resources import (
    ESE_KU060,
    KU060,
    bram36_estimate,
    estimate,
    format_report,
    logic_depth,
    parse_stat,
    summarize,
)
from contract.config import EIEConfig

STAT = """
3. Printing statistics.

=== eie_pe ===

        +----------Local Count, excluding submodules.
        |
      160 wires
      461 wire bits
      232 cells
        1   BUFG
       65   CARRY4
        1   DSP48E2
      400   FDRE
        5   FDSE
       50   INV
       61   LUT2
      134   LUT3
       66   LUT6
       14   RAM32M16
        6   RAM64M8
        2   RAMB36E2
        1   RAMB18E2
"""


def test_parse_and_summarize_stat():
    cells = parse_stat(STAT)
    assert cells["FDRE"] == 400 and cells["RAMB36E2"] == 2 and "wires" not in cells
    s = summarize(cells)
    assert s["lut_logic"] == 50 + 61 + 134 + 66
    assert s["lut_memory"] == 14 * 8 + 6 * 8
    assert s["lut"] == s["lut_logic"] + s["lut_memory"]
    assert s["ff"] == 405
    assert s["carry"] == 65 and s["dsp"] == 1
    assert s["bram36"] == 2.5


def _cell(kind, conns, dirs, params=None):
    return {"type": kind, "connections": conns, "port_directions": dirs,
            "parameters": params or {}}


def test_logic_depth_counts_luts_between_registers():
    # FF(q=2) -> LUT(3) -> LUT(4) -> CARRY4(5) -> LUT(6) -> FF(d)   : 3 LUT levels
    # FF(q=2) -> LUT(7) -> FF                                        : 1
    lut = {"I0": "input", "O": "output"}
    ff = {"C": "input", "D": "input", "Q": "output"}
    cells = {
        "ff0": _cell("FDRE", {"D": [9], "Q": [2], "C": [1]}, ff),
        "a": _cell("LUT1", {"I0": [2], "O": [3]}, lut),
        "b": _cell("LUT2", {"I0": [3], "O": [4]}, lut),
        "c": _cell("CARRY4", {"S": [4], "O": [5]}, {"S": "input", "O": "output"}),
        "d": _cell("LUT3", {"I0": [5], "O": [6]}, lut),
        "ff1": _cell("FDRE", {"D": [6], "Q": [8], "C": [1]}, ff),
        "e": _cell("LUT1", {"I0": [2], "O": [7]}, lut),
        "ff2": _cell("FDRE", {"D": [7], "Q": [9], "C": [1]}, ff),
    }
    depth, path = logic_depth({"modules": {"t": {"cells": cells}}}, "t")
    assert depth == 3
    assert path == ["LUT1", "LUT2", "CARRY4", "LUT3"]


def test_bram36_arithmetic():
    # 2048 x 64: 4 x (512 x 72) or 4 x (2K x 18); 256 x 16: one RAMB18 = 0.5
    cfg = EIEConfig(spmat_depth=2048, ptr_depth=32, act_depth=64, bias_depth=64,
                    max_layers=4)
    assert bram36_estimate(cfg, "pe") == 4
    assert bram36_estimate(cfg, "array") == 4 * cfg.n_pes
    paper = EIEConfig.paper()
    # spmat 16K x 64 alone: 32 BRAM36 per PE
    assert bram36_estimate(paper, "pe") >= 32


def test_estimate_rejects_bad_arguments():
    with pytest.raises(TypeError, match="EIEConfig"):
        estimate({"n_pes": 2})
    with pytest.raises(ValueError, match="Top must be"):
        estimate(EIEConfig(), top="board")


def test_report_tables_name_the_references():
    fake = {"top": "array", "n_pes": 2, "lut": 1000, "ff": 500, "dsp": 2, "bram36": 4.0,
            "carry": 10, "depth": 7, "lut_memory": 0, "bram36_expected": 4.0, "dir": "x"}
    text = format_report(fake)
    assert "array (N=2)" in text and "LUT 0.3%" in text  # 1000 / 331680
    assert KU060["dsp"] == 2760 and ESE_KU060["bram36"] == 947


SMALL = EIEConfig(n_pes=2, spmat_depth=512, ptr_depth=64, act_depth=32, acc_depth=8,
                  bias_depth=16, max_layers=2, max_tiles=4)


def test_one_pe_infers_bram_and_dsp(tmp_path):
    """One real Yosys run (about 10 s): spmat (512 x 64) must land in block RAM and the
    16x16 multiply in a DSP48E2."""
    result = estimate(SMALL, top="pe", out_dir=tmp_path)
    assert result["dsp"] >= 1
    assert result["cells"].get("RAMB36E2", 0) + result["cells"].get("RAMB18E2", 0) >= 1
    assert result["lut"] > 0 and result["ff"] > 0
    assert result["depth"] >= 1
    assert (tmp_path / "pe_n2" / "stat.txt").is_file()
    # the PE does not depend on n_pes except through the activation index width
    assert dataclasses.replace(SMALL, n_pes=3).spmat_depth == SMALL.spmat_depth


def test_all_fits_and_projects_linearly(monkeypatch, tmp_path):
    """The projection is fixed + per_pe * N through the two measured sizes (fake synthesis
    with known per-PE and fixed costs)."""
    import boards.resources as res

    def fake_run(config, top, work_dir):
        n = config.n_pes
        base = {"lut": 700 * n + 400, "ff": 300 * n + 600, "carry": 70 * n, "dsp": n,
                "bram36": 6.5 * n, "lut_memory": 90 * n + 40}
        if top == "pe":
            base = {k: v / n for k, v in base.items()}
        return {"top": top, "n_pes": n, **base, "depth": 5, "depth_path": ["LUT6"],
                "bram36_expected": 7.0, "dir": str(work_dir), "cells": {}}

    monkeypatch.setattr(res, "_run", fake_run)
    result = res.estimate(EIEConfig(n_pes=4), top="all", out_dir=tmp_path, sizes=(2, 4),
                          project=(64,))
    assert result["fit"]["lut"] == {"per_pe": 700, "fixed": 400}
    assert result["fit"]["bram36"] == {"per_pe": 6.5, "fixed": 0}
    assert result["projection"][64]["ff"] == 300 * 64 + 600
    text = format_report(result)
    assert "ESE paper, as recalled; unconfirmed" in text
    # BRAM: 1080 / 6.5 = 166 PEs, the tightest of the four -> BRAM36-bound
    assert "BRAM36 166" in text and "BRAM36-bound" in text
    assert "array N=64 (projected)" in text

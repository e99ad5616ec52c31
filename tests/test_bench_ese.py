"""`eie bench ese --quick`: the report's figures are consistent with each other and with
the config rules (no wall-clock assertion)."""

import json

import pytest

from contract.lstm_config import ESEConfig
from eie.bench_ese import bench_ese, index_variants


def test_bench_ese_quick(tmp_path):
    text = bench_ese(tmp_path, quick=True)
    data = json.loads((tmp_path / "ese.json").read_text())
    assert (tmp_path / "ese.md").read_text() == text + "\n"
    assert "| 4-bit index | 5-bit index |" in text
    assert data["model"]["quick"] and data["rtl"] is None
    four, five = data["variants"]
    assert (four["index_bits"], four["entries_per_word"]) == (4, 8)
    assert (five["index_bits"], five["entries_per_word"]) == (5, 4)
    # the same compressed model under both index widths
    assert four["nnz"] == five["nnz"]
    assert five["padding"] < four["padding"]
    for row in (four, five):
        assert row["word_bits"] <= 64
        assert row["ideal"] <= row["mac_busy"] <= row["compute"] <= row["steady_cycles"]
        assert row["elementwise_hidden"] + row["elementwise_exposed"] == row["elementwise"]
        assert row["mac_utilization"] == row["nnz"] / 32 / row["steady_cycles"]
        assert len(row["cycles_per_frame"]) == 2


def test_bench_ese_model_only_says_so(tmp_path):
    assert "RTL: not run (--model-only)" in bench_ese(tmp_path, quick=True)


@pytest.mark.slow
def test_bench_ese_quick_on_the_rtl(tmp_path):
    """The quick model on the 32-PE RTL (a 32-PE Verilator build: minutes)."""
    text = bench_ese(tmp_path, quick=True, model_only=False)
    data = json.loads((tmp_path / "ese.json").read_text())
    assert data["bit_exact"] and data["rtl"]["cycle_exact"]
    assert data["cycles_per_frame"] == data["model_cycles_per_frame"]
    five = data["variants"][1]
    assert data["cycles_per_frame"] == five["steady_cycles"]
    assert sum(data["rtl"]["breakdown"].values()) == data["cycles_per_frame"]
    assert data["torch_cpu_us_per_frame"] > 0
    assert (tmp_path / "ese_frame.png").stat().st_size > 0
    assert "## RTL" in text


def test_ese_default_is_the_five_bit_variant():
    base = ESEConfig.ese()
    assert (base.channel.index_bits, base.channel.entries_per_word) == (5, 4)
    assert index_variants(base)[1][1] == base

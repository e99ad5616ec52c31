"""`eie bench eie --quick` without the RTL: the report's bounds are consistent."""

import json

from eie.bench import bench_eie


def test_bench_eie_quick_model_only(tmp_path):
    text = bench_eie(tmp_path, quick=True, rtl=False)
    rows = json.loads((tmp_path / "eie.json").read_text())
    assert len(rows) == 9 and "max-PE bound" in text
    for row in rows:
        # ideal (perfect balance) <= busiest PE <= compute span <= whole layer
        assert row["ideal"] <= row["max_pe"] <= row["compute"] <= row["model_cycles"]
        assert row["efficiency"] == row["ideal"] / row["compute"]
    assert (tmp_path / "queue_sweep.png").stat().st_size > 0


def test_bench_eie_quick_balance_rows_table(tmp_path):
    text = bench_eie(tmp_path, quick=True, rtl=False, balance_rows=True)
    assert "--balance-rows" in text and "max-PE balanced" in text
    section = text.split("Balanced row assignment")[1].split("Queue-depth sweep")[0]
    table = [line for line in section.splitlines()
             if line.startswith("| ") and not line.startswith("| layer")]
    assert len(table) == 9
    for line in table:
        ideal, m0, r0, m1, r1 = (float(c) for c in line.strip("|").split("|")[1:6])
        assert ideal <= m0 and ideal <= m1
        assert abs(r0 - m0 / ideal) < 1e-3 and abs(r1 - m1 / ideal) < 1e-3

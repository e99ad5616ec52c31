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

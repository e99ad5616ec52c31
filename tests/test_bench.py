"""`eie bench eie --quick` without the RTL: the report's bounds are consistent; the N, D,
B flags; `eie bench scaling` on a tiny case against golden.cycles."""

import dataclasses
import json
import math

import numpy as np
import pytest

import golden
from compiler import pack
from contract.config import ConfigError, EIEConfig
from eie import cli
from eie.bench import (
    EIE_LAYERS,
    bench_eie,
    bench_scaling,
    eie_bench_config,
    random_activations,
    random_quant_layer,
    scaling_goals,
)


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


# ---- N, D, B flags (issue 13) ------------------------------------------------------------



def _cases(config, scale=8):
    """The bench's matrices and inputs, drawn here as bench_eie documents them."""
    rng = np.random.default_rng(0)
    cases = []
    for name, n_in, n_out, wd, ad, *_ in EIE_LAYERS:
        n_in, n_out = n_in // scale, n_out // scale
        layer = random_quant_layer(name, n_in, n_out, wd, rng)
        cases.append((layer, random_activations(n_in, ad, rng, config)))
    return cases


def test_bench_eie_quick_pes_width_depth(tmp_path):
    text = bench_eie(tmp_path, quick=True, rtl=False, balance_rows=True, n_pes=16,
                     queue_depth=4, broadcast_width=2)
    assert ("config: N = 16 PEs, queue depth D = 4, broadcast width B = 2, balanced row "
            "assignment (--balance-rows)") in text
    assert "cycle model only (--no-rtl)" in text
    rows = json.loads((tmp_path / "eie.json").read_text())
    config = eie_bench_config(quick=True, queue_depth=4, n_pes=16, broadcast_width=2)
    assert (config.n_pes, config.queue_depth, config.broadcast_width) == (16, 4, 2)
    for row, (layer, q) in zip(rows, _cases(config), strict=True):
        report = golden.cycles(pack([layer], config, balance_rows=True), q)
        assert row["model_cycles"] == report.total and row["rtl_cycles"] is None
    # B = 2 shortens the broadcast-bound layer (NT-We: dense input, few rows per PE)
    narrow = dataclasses.replace(config, broadcast_width=1)
    layer, q = _cases(narrow)[6]
    assert rows[6]["model_cycles"] < golden.cycles(
        pack([layer], narrow, balance_rows=True), q).total


def test_bench_cli_flags(tmp_path, capsys):
    out = tmp_path / "b"
    code = cli.main(["bench", "eie", "--quick", "--pes", "16", "--broadcast-width", "4",
                     "--queue-depth", "8", "--balance-rows", "--no-rtl", "-o", str(out)])
    stdout, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert ("N = 16 PEs, queue depth D = 8, broadcast width B = 4, balanced row "
            "assignment") in stdout
    assert (out / "eie.md").read_text() == stdout
    for argv, message in (
            (["compiler", "--quick", "--pes", "4"], "--pes do(es) not apply to eie bench "
                                                    "compiler"),
            (["scaling", "--broadcast-width", "2"], "--broadcast-width do(es) not apply to "
                                                    "eie bench scaling"),
            (["eie", "--quick", "--no-rtl", "--pes", "2", "--broadcast-width", "4"],
             "broadcast_width (4) must not exceed n_pes (2)")):
        code = cli.main(["bench", *argv, "-o", str(tmp_path / "x")])
        stdout, err = capsys.readouterr()
        assert code == 2 and stdout == "" and err.startswith("eie bench: error: ")
        assert message in err and len(err.splitlines()) == 1


def test_bench_config_sizes():
    # the hand-sized defaults (recorded tables, cached builds) are unchanged
    assert eie_bench_config() == EIEConfig.paper(
        queue_depth=8, spmat_depth=16384, ptr_depth=16384, act_depth=512, acc_depth=64,
        bias_depth=256, pointer_bits=17)
    assert eie_bench_config(n_pes=64, broadcast_width=2) == dataclasses.replace(
        eie_bench_config(), broadcast_width=2)
    for n in (16, 32, 128, 256):
        config = eie_bench_config(n_pes=n)
        assert config.n_pes == n
        for _name, n_in, n_out, *_ in EIE_LAYERS:
            tiles = -(-n_out // config.rows_per_tile)
            assert config.act_depth * n >= max(n_in, n_out)
            assert config.ptr_depth >= tiles * ((n_in + 2) // 2)
    with pytest.raises(ConfigError, match="8 PEs: layer VGG-6 needs spmat_depth .* use "
                                          "more PEs"):
        eie_bench_config(n_pes=8)
    # at --quick size every layer packs (balanced or not) on every scaling PE count
    for n in (4, 16, 32):
        config = eie_bench_config(quick=True, n_pes=n)
        for layer, _q in _cases(config):
            pack([layer], config, balance_rows=True)
            pack([layer], config)


def test_scaling_goals_by_hand():
    rows = [dict(layer=name, n_pes=n, broadcast_width=1, cycles=c, efficiency=e)
            for name, n, c, e in (("a", 2, 100, 0.9), ("a", 8, 30, 0.5),
                                  ("b", 2, 90, 0.97), ("b", 8, 20, 0.6))]
    goals = scaling_goals(rows, 2, 8)[1]
    assert goals["min_efficiency"] == 0.9 and goals["min_efficiency_layer"] == "a"
    assert goals["speedup_geomean"] == pytest.approx(math.sqrt(100 / 30 * 90 / 20))


def test_bench_scaling_tiny(tmp_path):
    pes, widths = (4, 8), (1, 2)
    text = bench_scaling(tmp_path, quick=True, pes=pes, widths=widths, base=4)
    data = json.loads((tmp_path / "scaling.json").read_text())
    assert (tmp_path / "scaling.md").read_text() == text + "\n"
    assert (tmp_path / "scaling.png").read_bytes().startswith(b"\x89PNG")
    assert data["pes"] == list(pes) and data["widths"] == list(widths)
    assert len(data["rows"]) == 9 * len(pes) * len(widths)
    assert set(data["rows"][0]) == {"layer", "n_pes", "broadcast_width", "cycles",
                                    "efficiency", "speedup"}
    # three tables (speedup, cycles, efficiency) of one row per layer and B
    tables = [line for line in text.splitlines() if line.startswith("| Alex-6 |")]
    assert len(tables) == 3 * len(widths)
    assert all(len(line.strip("|").split("|")) == 2 + len(pes) for line in tables)
    # every figure recomputed here from compiler.pack + golden.cycles
    cycles, eff = {}, {}
    for n in pes:
        config = EIEConfig.from_dict(data["configs"][str(n)])
        for layer, q in _cases(config):
            image = pack([layer], config, balance_rows=True)
            for b in widths:
                wide = dataclasses.replace(
                    image, config=dataclasses.replace(config, broadcast_width=b))
                report = golden.cycles(wide, q)
                cycles[layer.name, n, b] = report.total
                eff[layer.name, n, b] = report.layers[0].efficiency
    for row in data["rows"]:
        key = (row["layer"], row["n_pes"], row["broadcast_width"])
        assert row["cycles"] == cycles[key] and row["efficiency"] == eff[key]
        assert row["speedup"] == pytest.approx(cycles[key[0], 4, key[2]] / cycles[key])
    names = [spec[0] for spec in EIE_LAYERS]
    for b in widths:
        goal = data["goals"][str(b)]
        assert goal["min_efficiency"] == min(eff[name, 4, b] for name in names)
        ratios = [cycles[name, 4, b] / cycles[name, 8, b] for name in names]
        assert goal["speedup_geomean"] == pytest.approx(np.prod(ratios) ** (1 / 9))
        assert (f"| {b} | {goal['min_efficiency']:.3f} | {goal['min_efficiency_layer']} |"
                in text)

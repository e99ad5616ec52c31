"""``eie sweep`` (issue 14): the table of a small MLP and a small LSTM sweep, the same on the
process pool, inline and on Ray; the cache (reruns, resuming); the skipped points; the
pluggable ESE estimate; one-line refusals that write nothing."""

import dataclasses
import json
import sys

import numpy as np
import pytest
import torch
from torch import nn

import eie
import golden
from contract.config import EIEConfig
from contract.lstm_config import DEFAULT_CHANNEL, ESEConfig
from eie import cli, sweep_tasks
from eie.sweep import default_inputs, pareto
from tests.lstm_models import lstm_model

#: Small memories: packs in milliseconds, and 1 PE is too few for the model's biases.
SMALL = EIEConfig(spmat_depth=64, ptr_depth=32, act_depth=16, acc_depth=8, bias_depth=16,
                  max_tiles=16)
GRID = {"n_pes": [1, 2, 4, 8], "queue_depth": [2, 4, 8]}
LSTM_GRID = {"n_pes": [2, 4, 8], "queue_depth": [2, 4], "channels": [1, 2]}
COLUMNS = ("n_pes", "queue_depth", "status", "reason", "cycles_mean", "cycles_max",
           "latency_us", "lut", "bram36", "fits", "accuracy", "pareto")


@pytest.fixture(scope="module")
def mlp_file(tmp_path_factory):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 6))
    path = tmp_path_factory.mktemp("mlp") / "mlp.pt"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def lstm_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("lstm") / "lstm.pt"
    torch.save(lstm_model(n_in=5, hidden=8, layers=1, proj=4, head=(3,)).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    return {"x": rng.normal(0, 0.6, (40, 12)), "y": rng.integers(0, 6, 40)}


def run(model, tmp_path, name, **kw):
    kw.setdefault("grid", GRID)
    kw.setdefault("config", SMALL)
    kw.setdefault("rtl", False)
    kw.setdefault("resources", False)
    kw.setdefault("workers", 1)
    return eie.sweep(model, tmp_path / name, cache_dir=tmp_path / f"cache_{name}", **kw)


def table(records):
    return [{k: r.get(k) for k in (*COLUMNS, "channels", "config")} for r in records]


def test_mlp_sweep_table(mlp_file, data, tmp_path):
    records = run(mlp_file, tmp_path, "mlp", data=data)
    assert len(records) == 12
    assert [(r["n_pes"], r["queue_depth"]) for r in records] == [
        (n, q) for n in GRID["n_pes"] for q in GRID["queue_depth"]]
    skipped = [r for r in records if r["status"] == "skipped"]
    assert [r["n_pes"] for r in skipped] == [1, 1, 1]
    assert all("--bias-depth" in r["reason"] for r in skipped)
    ok = [r for r in records if r["status"] == "ok"]
    # the cycle model of an image packed by `eie pack`, on the sweep's inputs (the data's)
    for r in ok:
        image = eie.pack(mlp_file, config=dataclasses.replace(
            SMALL, n_pes=r["n_pes"], queue_depth=r["queue_depth"]))
        q = golden.quantize_input(data["x"][:16], image.config)
        cycles = [golden.cycles(image, v).total for v in q]
        assert r["cycles_mean"] == pytest.approx(np.mean(cycles))
        assert r["cycles_max"] == max(cycles)
        assert r["latency_us"] == pytest.approx(np.mean(cycles) / 200.0)
        y = golden.run(image, golden.quantize_input(data["x"], image.config)).y
        assert r["accuracy"] == pytest.approx(np.mean(np.argmax(y, axis=1) == data["y"]))
    # no resources estimated: the front is the lowest latency
    best = min(r["latency_us"] for r in ok)
    assert [r["index"] for r in records if r["pareto"]] == [
        r["index"] for r in ok if r["latency_us"] == best]
    assert records.recommended in [r["index"] for r in ok if r["pareto"]]
    names = sorted(p.name for p in (tmp_path / "mlp").iterdir())
    assert names == ["pareto.png", "report.md", "sweep.csv", "sweep.json"]
    saved = json.loads((tmp_path / "mlp" / "sweep.json").read_text())
    assert table(saved["points"]) == table(records)
    csv = (tmp_path / "mlp" / "sweep.csv").read_text().splitlines()
    assert len(csv) == 13 and csv[0].startswith("index,n_pes,queue_depth,status")
    report = (tmp_path / "mlp" / "report.md").read_text()
    assert f"eie pack {mlp_file} -o img" in report
    assert "eie build --board ku060 --image img" in report


def test_default_inputs_and_cache_resume(mlp_file, tmp_path):
    first = run(mlp_file, tmp_path, "a")
    r = next(r for r in first if r["status"] == "ok")
    image = eie.pack(mlp_file, config=EIEConfig.from_dict(r["config"]))
    q = golden.quantize_input(default_inputs(False, 12), image.config)
    assert r["cycles_mean"] == pytest.approx(np.mean([golden.cycles(image, v).total
                                                      for v in q]))
    assert first.stats["points_cached"] == 0
    again = eie.sweep(mlp_file, None, grid=GRID, config=SMALL, rtl=False, resources=False,
                      workers=1, cache_dir=tmp_path / "cache_a")
    assert again.stats["points_cached"] == 12          # a skipped point is stored too
    assert table(again) == table(first)
    # an interrupted sweep: some points never stored; the rerun computes only those
    stored = sorted((tmp_path / "cache_a" / "points").glob("*.json"))
    for path in stored[:4]:
        path.unlink()
    resumed = eie.sweep(mlp_file, None, grid=GRID, config=SMALL, rtl=False,
                        resources=False, workers=1, cache_dir=tmp_path / "cache_a")
    assert resumed.stats["points_cached"] == 8
    assert table(resumed) == table(first)


def test_lstm_sweep_and_pluggable_ese_estimate(lstm_file, tmp_path, monkeypatch):
    monkeypatch.setattr(sweep_tasks, "ese_estimator", lambda: None)
    records = run(lstm_file, tmp_path, "lstm", grid=LSTM_GRID, config=None, resources=True)
    assert len(records) == 12
    assert all(r["status"] == "ok" and r["lut"] is None and r["fits"] is None
               for r in records)
    assert all(r["estimate"].startswith("not available") for r in records)
    # per frame: the ESE cycle model of the image `eie pack` makes
    r = records[5]
    config = ESEConfig(channel=dataclasses.replace(DEFAULT_CHANNEL, n_pes=r["n_pes"],
                                                   queue_depth=r["queue_depth"]),
                       channels=r["channels"])
    image = eie.pack(lstm_file, config=config)
    out = eie.golden(image, default_inputs(True, 5))
    assert r["cycles_mean"] == pytest.approx(out["cycles"].mean())

    def fake(config, *, slot_words, cache_dir):
        n = config.n_pes * config.channels
        part = {"cached": True}
        return {"total": {"lut": 1000.0 * n, "ff": 10.0, "dsp": 1.0, "bram36": 2.0 * n},
                "parts": {"pe": {"points": {1: part}}, "shell": part}}

    monkeypatch.setattr(sweep_tasks, "ese_estimator", lambda: fake)
    estimated = run(lstm_file, tmp_path, "lstm2", grid=LSTM_GRID, config=None,
                    resources=True)
    assert [r["lut"] for r in estimated] == [1000.0 * r["n_pes"] * r["channels"]
                                             for r in estimated]
    assert all(r["fits"] for r in estimated)
    front = pareto(list(estimated))
    assert front == [r["index"] for r in estimated if r["pareto"]]
    for k in front:      # nothing beats a Pareto point on latency, LUT and BRAM together
        p = estimated[k]
        assert not any(o["latency_us"] <= p["latency_us"] and o["lut"] <= p["lut"]
                       and o["bram36"] <= p["bram36"] and o["index"] != k
                       and (o["latency_us"], o["lut"]) != (p["latency_us"], p["lut"])
                       for o in estimated)


def test_process_pool_and_ray_give_the_same_tables(mlp_file, lstm_file, data, tmp_path):
    pytest.importorskip("ray")
    pool = run(mlp_file, tmp_path, "pool", data=data, workers=2)
    lstm_inline = run(lstm_file, tmp_path, "lstm_inline", grid=LSTM_GRID, config=None)
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        on_ray = run(mlp_file, tmp_path, "ray", data=data, ray=True)
        lstm_ray = run(lstm_file, tmp_path, "lstm_ray", grid=LSTM_GRID, config=None, ray=True)
    finally:
        ray.shutdown()
    assert on_ray.stats["executor"] == "ray" and pool.stats["executor"] == "process pool"
    assert on_ray.stats["points_cached"] == 0
    assert table(pool) == table(on_ray)
    assert table(lstm_inline) == table(lstm_ray)
    assert len(lstm_ray) == 12


@pytest.mark.slow     # two Yosys syntheses of small arrays: minutes on a loaded machine
def test_resource_estimate_cached_by_verilog(mlp_file, tmp_path):
    """Two sizes synthesised per queue depth, then reused by every PE count and rerun."""
    grid = {"n_pes": [2, 4], "queue_depth": [2]}
    first = run(mlp_file, tmp_path, "res", grid=grid, resources=True)
    assert first.stats["designs"] == 2            # arrays of 1 and 2 PEs
    assert [r["estimate"] for r in first] == ["synthesised",
                                              "projected from arrays at N = 1, 2"]
    two, four = first
    assert two["lut"] > 0 and four["lut"] > two["lut"] and two["fits"] and four["fits"]
    again = run(mlp_file, tmp_path, "res", grid=grid, resources=True)
    assert again.stats["designs_synthesised"] == 0
    assert table(again) == table(first)



def test_broadcast_width_fits_through_b_and_2b(mlp_file, tmp_path, monkeypatch):
    """With B > 1 an array of fewer than B PEs is no config: the fit's two sizes are B and
    2 B (1 and 2 at B = 1), and N <= 2 B is synthesised itself. The synthesis is faked (a
    LUT count of 100 + 10 N, 1 BRAM36 per PE) so that the projection is checked exactly."""
    sizes = []

    def estimate(task):
        n = task["config"]["n_pes"]
        sizes.append((task["config"].get("broadcast_width", 1), n))
        return {"lut": 100.0 + 10 * n, "ff": 50.0 + n, "dsp": float(n),
                "bram36": float(n), "cached": False, "available": True}

    monkeypatch.setattr(sweep_tasks, "estimate_design", estimate)
    grid = {"n_pes": [2, 4, 8], "queue_depth": [4], "broadcast_width": [1, 2, 4]}
    records = run(mlp_file, tmp_path, "wide", grid=grid, resources=True)
    by = {(r["n_pes"], r["broadcast_width"]): r for r in records}
    assert by[(2, 4)]["status"] == "skipped"
    assert "broadcast_width (4) must not exceed n_pes (2)" in by[(2, 4)]["reason"]
    assert sorted(set(sizes)) == [(1, 1), (1, 2), (2, 2), (2, 4), (4, 4), (4, 8)]
    expected = {(2, 1): "synthesised", (4, 1): "projected from arrays at N = 1, 2",
                (8, 1): "projected from arrays at N = 1, 2", (2, 2): "synthesised",
                (4, 2): "synthesised", (8, 2): "projected from arrays at N = 2, 4",
                (4, 4): "synthesised", (8, 4): "synthesised"}
    for key, estimate_kind in expected.items():
        assert by[key]["estimate"] == estimate_kind, key
        assert by[key]["lut"] == 100 + 10 * key[0], key
        assert by[key]["bram36"] == key[0], key
    # the report's eie pack command of a B > 1 point names the flag (its default is 1)
    report = (tmp_path / "wide" / "report.md").read_text()
    best = records[records.recommended]
    assert (f"--broadcast-width {best['broadcast_width']}" in report) == (
        best["broadcast_width"] > 1)


def QUICK(tmp_path):
    return ["--no-rtl", "--no-resources", "--workers", "1", "--cache", tmp_path / "cache"]


def cli_run(args, capsys):
    try:
        code = cli.main(["sweep", *map(str, args)])
    except SystemExit as exc:          # argparse's refusals
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("args, message", [
    (["--pes", "8,x"], "expected a comma list of ints, got '8,x'"),
    (["--pes", "8,,16"], "expected a comma list of ints"),
    (["--pex", "8"], "unrecognized arguments: --pex 8"),
    (["--channels", "2"], "unknown config field(s): channels; channels apply to LSTM "
                          "models only"),
    (["--pes", "4,4"], "n_pes: repeated value"),
    (["--density", "0,0.5"], "density: values must be in (0, 1]"),
])
def test_bad_inputs_one_line_nothing_written(mlp_file, tmp_path, capsys, args, message):
    out = tmp_path / "out"
    code, _, err = cli_run([mlp_file, "-o", out, "--no-rtl", "--no-resources", "--cache",
                            tmp_path / "cache", *args], capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("eie sweep: error: ")
    assert message in err
    assert not out.exists()


def test_unwritable_output(mlp_file, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = cli_run([mlp_file, "-o", blocker / "out", "--pes", "2", *QUICK(tmp_path)],
                           capsys)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"eie sweep: error: -o {blocker / 'out'}: {blocker} is a file")
    readonly = tmp_path / "ro"
    readonly.mkdir()
    readonly.chmod(0o500)
    try:
        code, _, err = cli_run([mlp_file, "-o", readonly / "out", "--pes", "2",
                                *QUICK(tmp_path)], capsys)
    finally:
        readonly.chmod(0o700)
    if code:    # (root may write anywhere)
        assert code == 2 and "is not writable" in err and err.count("\n") == 1
        assert not (readonly / "out").exists()


def test_ray_missing_says_how_to_install(mlp_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)      # import ray raises ImportError
    out = tmp_path / "out"
    code, _, err = cli_run([mlp_file, "-o", out, "--pes", "2", "--ray", *QUICK(tmp_path)],
                           capsys)
    assert code == 2
    assert err == "eie sweep: error: --ray needs Ray: pip install 'eie-ese[cluster]'\n"
    assert not out.exists()


def test_cli_prints_the_recommendation(mlp_file, tmp_path, capsys):
    code, out, err = cli_run([mlp_file, "-o", tmp_path / "o", "--pes", "2,4",
                              "--queue-depth", "2", "--no-rtl", "--no-resources",
                              "--workers", "1", "--cache", tmp_path / "c"], capsys)
    assert code == 0, err
    assert out.splitlines()[0].startswith("2 points: 2 packed, fit unknown (no "
                                          "estimate), 1 Pareto-optimal; 0 from the cache")
    assert "recommended: point 1:" in out
    assert f"wrote {tmp_path / 'o' / 'report.md'}" in out


def test_api_rejects_unknown_fields(mlp_file):
    with pytest.raises(ValueError, match=r"unknown config field\(s\): n_pe; fields: n_pes"):
        eie.sweep(mlp_file, grid={"n_pe": [2]})
    with pytest.raises(ValueError, match="queue_depth: values must be integers"):
        eie.sweep(mlp_file, grid={"queue_depth": [2.5]})


@pytest.mark.slow     # a Verilator build of a 2-PE array
def test_rtl_spot_check_of_the_pareto_points(mlp_file, tmp_path):
    records = run(mlp_file, tmp_path, "rtl", grid={"n_pes": [2], "queue_depth": [2, 4]},
                  rtl=True)
    checked = [r for r in records if r["pareto"]]
    assert checked and all(r["rtl_bit_exact"] and r["rtl_cycle_exact"] for r in checked)
    assert all(r["rtl_bit_exact"] is None for r in records if not r["pareto"])

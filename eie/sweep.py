"""``eie sweep``: design-space exploration of one model on one board (docs/sweep.md).

Every point of the grid (the product of the config fields given as lists) is packed, run
on the cycle model and, when ``data`` is given, scored; every distinct design gets a Yosys
resource estimate cached by a hash of its Verilog; the Pareto-optimal points that fit the
board are checked on the RTL. The tasks run on a local process pool
(``concurrent.futures``) or, with ``ray``, as Ray tasks; the table is the same either way.

Each finished point is stored in the cache (``cache_dir``, default
``$EIE_SWEEP_CACHE`` or ``~/.cache/eie-ese/sweep``) under a hash of everything it depends
on, so an interrupted sweep rerun resumes where it stopped and a rerun costs nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import pickle
import sys
from pathlib import Path

import numpy as np

from contract.config import ConfigError, EIEConfig
from contract.lstm_config import DEFAULT_CHANNEL, ESEConfig

from . import sweep_tasks
from .inputs import read_xy
from .sweep_tasks import CLOCK_HZ, RESOURCES

__all__ = ["sweep", "SweepResult", "parse_list", "default_cache_dir", "EIE_FIELDS",
           "ESE_FIELDS", "NO_RAY", "DEFAULT_SAMPLES"]

#: The fields a sweep may vary: every EIEConfig field (an ESE channel's for an LSTM) ...
EIE_FIELDS = tuple(f.name for f in dataclasses.fields(EIEConfig))
#: ... and, for an LSTM, every ESEConfig field other than the channel.
ESE_FIELDS = tuple(f.name for f in dataclasses.fields(ESEConfig) if f.name != "channel")
#: Inputs of the cycle model taken from ``data`` (its first ones) or generated.
DEFAULT_SAMPLES = 16
#: Frames of a generated LSTM input sequence.
DEFAULT_FRAMES = 16
#: Points whose RTL is checked: at most this many Pareto points, inputs per check.
RTL_INPUTS = 4
#: The one-line refusal of ``ray=...`` without Ray installed.
NO_RAY = "--ray needs Ray: pip install 'eie-ese[cluster]'"
#: Changes whenever the meaning of a cached point changes.
_POINT_VERSION = "sweep-point-1"


def default_cache_dir(environ=os.environ) -> Path:
    """``$EIE_SWEEP_CACHE``, else ``$XDG_CACHE_HOME/eie-ese/sweep`` (an absolute
    ``XDG_CACHE_HOME`` only), else ``~/.cache/eie-ese/sweep``."""
    if environ.get("EIE_SWEEP_CACHE"):
        return Path(environ["EIE_SWEEP_CACHE"])
    xdg = environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path(environ.get("HOME", "~"),
                                                            ".cache").expanduser()
    return base / "eie-ese" / "sweep"


def parse_list(text: str, kind=int) -> list:
    """``"8,16,32"`` as ``[8, 16, 32]`` (``kind`` int or float); ``ValueError`` otherwise."""
    items = [t.strip() for t in str(text).split(",")]
    try:
        values = [kind(t) for t in items]
    except ValueError:
        raise ValueError(f"expected a comma list of {kind.__name__}s, got {text!r}") from None
    if not values or any(t == "" for t in items):
        raise ValueError(f"expected a comma list of {kind.__name__}s, got {text!r}")
    return values


class SweepResult(list):
    """The records of a sweep (a list of dicts, one per point in grid order), with
    ``stats`` (cache hits, wall time), ``recommended`` (the index of the recommended point
    or ``None``) and ``files`` (what was written)."""

    stats: dict
    recommended: int | None
    files: list

    def to_frame(self):
        """The table as a pandas DataFrame (pandas must be installed)."""
        import pandas

        return pandas.DataFrame(self)


# ---- the grid -----------------------------------------------------------------------------

def _check_grid(grid: dict, lstm: bool) -> dict[str, list]:
    """The grid's fields checked (known, lists of integers; ``density`` floats in [0, 1])."""
    if not isinstance(grid, dict):
        raise ValueError(f"grid must be a dict of field: list of values, not "
                         f"{type(grid).__name__}")
    known = (*EIE_FIELDS, *(ESE_FIELDS if lstm else ()), "density")
    unknown = [k for k in grid if k not in known]
    if unknown:
        hint = (f"; {', '.join(k for k in unknown if k in ESE_FIELDS)} apply to LSTM models "
                f"only" if any(k in ESE_FIELDS for k in unknown) else "")
        raise ValueError(f"unknown config field(s): {', '.join(map(str, unknown))}{hint}; "
                         f"fields: {', '.join(known)}")
    out = {}
    for name, values in grid.items():
        values = list(values) if isinstance(values, (list, tuple)) else [values]
        if not values:
            raise ValueError(f"{name}: empty list of values")
        for v in values:
            if name == "density":
                if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                                      or not 0.0 < v <= 1.0):
                    raise ValueError(f"density: values must be in (0, 1], got {v!r}")
            elif isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise ValueError(f"{name}: values must be integers, got {v!r}")
        if len(set(values)) != len(values):
            raise ValueError(f"{name}: repeated value in {values}")
        out[name] = [v if name == "density" or v is None else int(v) for v in values]
    return out


def _points(grid: dict[str, list]) -> list[dict]:
    names = list(grid)
    return [dict(zip(names, combo, strict=True))
            for combo in itertools.product(*(grid[n] for n in names))]


def _config_for(point: dict, base, lstm: bool) -> dict:
    """The config dict of a point: ``base`` with the point's fields (an MLP's
    ``entries_per_word``, when not swept, follows ``weight_bits`` as ``eie pack`` does)."""
    from .api import entries_per_word_that_fit

    fields = {k: v for k, v in point.items() if k != "density"}
    channel = base.channel.to_dict() if lstm else base.to_dict()
    channel.update({k: v for k, v in fields.items() if k in EIE_FIELDS})
    if "entries_per_word" not in fields:
        fit = entries_per_word_that_fit(channel["weight_bits"] + channel["index_bits"])
        if fit and channel["entries_per_word"] not in fit:
            channel["entries_per_word"] = fit[-1]
    if not lstm:
        return channel
    top = base.to_dict()
    top.update({k: v for k, v in fields.items() if k in ESE_FIELDS})
    top["channel"] = channel
    return top


def _digest(*parts) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else
                 json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"\0")
    return h.hexdigest()[:32]


def _array_digest(a) -> bytes:
    a = np.ascontiguousarray(a)
    return str(a.dtype).encode() + str(a.shape).encode() + a.tobytes()


# ---- inputs -------------------------------------------------------------------------------

def _read_data(data, lstm: bool, n_in: int):
    """``(x, y)`` of a ``.npz`` path or a mapping: ``x`` ``[N, n_in]`` (an MLP) or
    ``[N, T, n_in]`` (an LSTM), ``y`` integer class labels or float targets ``[N, ...]``."""
    what, x, y = read_xy(data)
    rank = 3 if lstm else 2
    if (x.ndim != rank or x.shape[-1] != n_in or len(x) < 1 or y.shape[:1] != x.shape[:1]
            or not np.issubdtype(x.dtype, np.number)
            or not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.floating))):
        shape = "[N, T, n_in]" if lstm else "[N, n_in]"
        raise ValueError(f"{what}: x must be numeric {shape} with n_in = {n_in} and y [N] "
                         f"labels or targets, got x {list(x.shape)} {x.dtype} and y "
                         f"{list(y.shape)} {y.dtype}")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what}: x holds NaN or Inf")
    return x, (y.astype(np.int64) if np.issubdtype(y.dtype, np.integer) else
               y.astype(np.float64))


def default_inputs(lstm: bool, n_in: int, samples: int = DEFAULT_SAMPLES) -> np.ndarray:
    """The cycle model's inputs without ``data``: ``samples`` vectors (an LSTM: sequences of
    :data:`DEFAULT_FRAMES` frames) of a seeded normal distribution (sigma 0.5); an MLP's
    are ReLU'd (about half zero, as the output of a ReLU layer), since EIE's cycles depend
    on the input's zeros."""
    rng = np.random.default_rng(0)
    if lstm:
        return rng.normal(0.0, 0.5, (samples, DEFAULT_FRAMES, n_in))
    return np.maximum(rng.normal(0.0, 0.5, (samples, n_in)), 0.0)


# ---- compression --------------------------------------------------------------------------

def _compress(model, lstm: bool, state, config: dict, density, balance: bool):
    """The compressed model for one point's compression settings (density, the weight bits;
    an LSTM's layout and a balanced MLP's pruning depend on the PE count too)."""
    if lstm:
        from compiler.lstm_pack import compress_lstm

        cfg = ESEConfig.from_dict(config)
        return compress_lstm(state, cfg, density=density, bits=cfg.channel.weight_bits,
                             balance=balance)
    import compiler

    return compiler.compress(model, density=density, bits=config["weight_bits"],
                             balance=balance, n_pes=config["n_pes"] if balance else None).layers


def _compression_key(config: dict, lstm: bool, density, balance: bool) -> tuple:
    channel = config["channel"] if lstm else config
    n = channel["n_pes"] if (lstm or balance) else None
    return (density, channel["weight_bits"], balance, n)


# ---- execution ----------------------------------------------------------------------------

class _Executor:
    """Runs task functions on a process pool, inline (``workers=1``), or on Ray."""

    def __init__(self, workers, ray):
        self.ray = None
        self.pool = None
        self.started_ray = False
        self.width = 1
        if ray is not None and ray is not False:
            try:
                import ray as ray_module
            except ImportError:
                raise ValueError(NO_RAY) from None
            self.ray = ray_module
            if not ray_module.is_initialized():
                address = None if ray is True or ray == "" else str(ray)
                # the workers import the project as the driver does (a source tree on
                # PYTHONPATH travels with the environment)
                env = {"PYTHONPATH": os.environ.get("PYTHONPATH", "")}
                ray_module.init(address=address, include_dashboard=False,
                                log_to_driver=False, configure_logging=False,
                                runtime_env={"env_vars": env} if address is None else None)
                self.started_ray = True
            self._remote = {}
            self.width = max(1, int(ray_module.cluster_resources().get("CPU", 1)))
        elif (workers or os.cpu_count() or 1) > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # spawn, not fork: the driver has torch (and its threads) loaded
            self.width = workers or os.cpu_count()
            self.pool = ProcessPoolExecutor(max_workers=workers or os.cpu_count(),
                                            mp_context=multiprocessing.get_context("spawn"))

    def map(self, fn, tasks: list, desc: str) -> list:
        """``[fn(t) for t in tasks]``, in parallel, with a progress bar on a terminal."""
        bar = _bar(len(tasks), desc)
        results = [None] * len(tasks)
        try:
            if self.ray is not None:
                remote = self._remote.setdefault(fn, self.ray.remote(fn))
                refs = {remote.remote(t): k for k, t in enumerate(tasks)}
                pending = list(refs)
                while pending:
                    done, pending = self.ray.wait(pending, num_returns=1)
                    for ref in done:
                        results[refs[ref]] = self.ray.get(ref)
                        bar.update()
            elif self.pool is not None:
                from concurrent.futures import as_completed

                futures = {self.pool.submit(fn, t): k for k, t in enumerate(tasks)}
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    bar.update()
            else:
                for k, t in enumerate(tasks):
                    results[k] = fn(t)
                    bar.update()
        finally:
            bar.close()
        return results

    def close(self):
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
        if self.started_ray:
            self.ray.shutdown()


def _bar(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, file=sys.stderr, leave=False,
                disable=not sys.stderr.isatty())


# ---- Pareto -------------------------------------------------------------------------------

def pareto(records: list[dict]) -> list[int]:
    """Indices of the points that fit (or whose fit is unknown) and that no other such
    point beats: none has a lower or equal latency, LUT and BRAM36 with one strictly lower
    (a resource not estimated is left out of the comparison)."""
    keys = ("latency_us", "lut", "bram36")
    cands = [r for r in records if r["status"] == "ok" and r["fits"] is not False]

    def vec(r):
        return [r[k] for k in keys if r.get(k) is not None]

    out = []
    for r in cands:
        v = vec(r)
        beaten = any(len(vec(o)) == len(v) and all(a <= b for a, b in zip(vec(o), v, strict=True))
                     and vec(o) != v for o in cands)
        if not beaten:
            out.append(r["index"])
    return out


def recommend(records: list[dict]) -> int | None:
    """The fitting Pareto point with the lowest latency (then fewest LUTs, BRAM36)."""
    best = [r for r in records if r["pareto"]]
    if not best:
        return None
    return min(best, key=lambda r: (r["latency_us"], r.get("lut") or 0,
                                    r.get("bram36") or 0, r["index"]))["index"]


# ---- the sweep ----------------------------------------------------------------------------

def sweep(model, output=None, *, grid: dict, data=None, board: str = "ku060", config=None,
          balance: bool = False, rtl: bool = True, resources: bool = True,
          samples: int = DEFAULT_SAMPLES, workers: int | None = None, ray=None,
          cache_dir=None, rtl_build_dir=None):
    """``eie sweep``: every point of ``grid`` for ``model`` on ``board`` (docs/sweep.md).

    Parameters
    ----------
    model : an MLP or an LSTM, as :func:`eie.pack` takes it.
    output : folder for ``sweep.csv``, ``sweep.json``, ``pareto.png`` and ``report.md``
        (checked before any work; nothing is written there unless the sweep succeeds).
    grid : ``{field: [values]}``; fields of :class:`EIEConfig` (an LSTM: of its channel)
        and, for an LSTM, of :class:`ESEConfig`, and ``density`` (prune in one shot to each
        density; ``None`` or absent: pack the model's zeros as they are).
        ``weight_bits`` is also the compression's bits.
    data : ``.npz`` path or mapping with ``x`` and ``y`` (class labels or float targets):
        the accuracy (or MSE) of golden on all of it, and the cycle model's inputs (its
        first ``samples``); without it, :func:`default_inputs`.
    config : the base config (fields not swept); default ``EIEConfig()`` / ``ESEConfig()``.
    balance : load-balance-aware pruning (needs densities in the grid).
    rtl : check the Pareto points (at most ``RTL_INPUTS`` inputs each) on the RTL.
    resources : the Yosys estimates (off: every resource column ``None``, fits unknown).
    workers : processes of the local pool (default the CPU count; 1: no pool).
    ray : ``True`` or ``""`` for a local Ray instance, an address for a cluster; the tasks
        then run as Ray tasks.
    cache_dir : default :func:`default_cache_dir`.

    Returns
    -------
    SweepResult (a list of dicts) or, when pandas is installed, a pandas DataFrame of the
    same records with the result's ``stats``, ``recommended`` and ``files`` in ``attrs``.

    Raises
    ------
    ValueError
        A bad field, list, board, model or data, ``ray`` without Ray, an unusable
        ``output``.
    """
    import time

    from . import api, sweep_report

    start = time.perf_counter()
    if board != "ku060":
        raise ValueError(f"board must be 'ku060', not {board!r}")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be a positive integer, not {samples!r}")
    folder = None if output is None else sweep_report.check_folder(output)
    lstm = api.is_lstm_model(model)
    grid = _check_grid(grid, lstm)
    if balance and not any(d is not None for d in grid.get("density", [])):
        raise ValueError("balance needs densities to prune to (density in the grid)")
    base = config
    if base is None:
        base = ESEConfig() if lstm else EIEConfig()
    if lstm:
        base = base if isinstance(base, ESEConfig) else ESEConfig(
            channel=base if isinstance(base, EIEConfig) else DEFAULT_CHANNEL)
    elif not isinstance(base, EIEConfig):
        raise ValueError(f"an MLP sweeps EIEConfig fields; config must be an EIEConfig, not "
                         f"{type(base).__name__}")
    state = api.model_state(model) if lstm else None
    n_in = _n_in(model, state, lstm)
    data_x = data_y = None
    if data is not None:
        data_x, data_y = _read_data(data, lstm, n_in)
        x = data_x[:samples]
    else:
        x = default_inputs(lstm, n_in, samples)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    kind = "ese" if lstm else "eie"
    points = _points(grid)
    records, tasks, compressed = [], [], {}
    executor = _Executor(workers, ray)
    try:
        inputs_key = _digest(_array_digest(x), b"" if data_x is None else
                             _array_digest(data_x) + _array_digest(data_y))
        for index, point in enumerate(points):
            density = point.get("density")
            record = {"index": index, **point}
            records.append(record)
            try:
                cfg = _config_for(point, base, lstm)
                sweep_tasks.config_of(kind, cfg)
            except ConfigError as exc:
                record.update(_skipped(exc))
                continue
            ckey = _compression_key(cfg, lstm, density, balance)
            if ckey not in compressed:
                layers = _compress(model, lstm, state, cfg, density, balance)
                compressed[ckey] = (layers, _digest(pickle.dumps(layers, protocol=4)))
            layers, model_key = compressed[ckey]
            key = _digest(_POINT_VERSION, kind, cfg, model_key, inputs_key)
            record.update({"config": cfg, "_key": key, "_ckey": ckey})
            tasks.append({"kind": kind, "config": cfg, "compressed": layers, "x": x,
                          "data_x": data_x, "data_y": data_y, "key": key,
                          "index": index})
        stats = {"points": len(points), "points_cached": 0}
        _run_points(executor, tasks, records, cache, stats)
        for r in records:
            r.setdefault("accuracy", None)
        if resources:
            _estimate(executor, kind, records, cache, stats)
        for r in records:
            _fits(r, resources)
        for k in pareto(records):
            records[k]["pareto"] = True
        for r in records:
            r.setdefault("pareto", False)
            r.update({f: r.get(f) for f in ("rtl_bit_exact", "rtl_cycle_exact")})
        if rtl:
            checks = [{"kind": kind, "config": records[t["index"]]["config"],
                       "compressed": t["compressed"], "x": x[:RTL_INPUTS],
                       "build_dir": rtl_build_dir}
                      for t in tasks if records[t["index"]]["pareto"]]
            for check, result in zip(checks, executor.map(sweep_tasks.check_rtl, checks,
                                                          "RTL spot checks"), strict=True):
                index = next(t["index"] for t in tasks if t["config"] is check["config"])
                records[index].update({k: result[k] for k in ("rtl_bit_exact",
                                                              "rtl_cycle_exact")})
    finally:
        executor.close()
    table = SweepResult(_clean(r, kind) for r in records)
    table.recommended = recommend(table)
    stats["seconds"] = round(time.perf_counter() - start, 2)
    stats["executor"] = ("ray" if ray not in (None, False) else
                         "inline" if executor.pool is None else "process pool")
    table.stats = stats
    table.files = []
    if folder is not None:
        table.files = sweep_report.write(folder, table, model=model, lstm=lstm, base=base,
                                         config_given=config is not None, balance=balance,
                                         grid=grid, data=data, stats=stats)
    return _as_frame(table)


def _n_in(model, state, lstm: bool) -> int:
    if lstm:
        from compiler.lstm_model import load_lstm

        return load_lstm(state).n_in
    import compiler

    return compiler.model.import_model(model).layers[0].n_in


def _skipped(exc) -> dict:
    return {"status": "skipped", "reason": " ".join(str(exc).split())}


def _point_path(cache: Path, key: str) -> Path:
    return cache / "points" / f"{key}.json"


def _run_points(executor, tasks, records, cache: Path, stats) -> None:
    todo = []
    for task in tasks:
        path = _point_path(cache, task["key"])
        if path.exists():
            records[task["index"]].update(json.loads(path.read_text()))
            stats["points_cached"] += 1
        else:
            todo.append(task)
    # each point is stored when its batch comes back, so an interrupted sweep resumes
    batch = 4 * executor.width
    for k in range(0, len(todo), batch):
        part = todo[k:k + batch]
        for task, result in zip(part, executor.map(sweep_tasks.evaluate_point, part,
                                                   "points"), strict=True):
            records[task["index"]].update(result)
            _store(_point_path(cache, task["key"]), result)


def _store(path: Path, value: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value) + "\n")
    os.replace(tmp, path)


def _fit_sizes(cfg: dict) -> list[int]:
    """The PE counts synthesised for an EIE point: ``B`` and ``2 B`` (``B`` the broadcast
    width, 1 when absent), the two smallest arrays of a shape a config accepts (``B`` must
    not exceed ``n_pes``), or the point's own N when it is at most ``2 B``."""
    width = cfg.get("broadcast_width", 1)
    return [cfg["n_pes"]] if cfg["n_pes"] <= 2 * width else [width, 2 * width]


def _designs(kind: str, record: dict) -> list[dict]:
    """The designs whose estimates give a point's resources: an EIE array at ``B`` and
    ``2 B`` PEs (:func:`_fit_sizes`; 1 and 2 at ``B = 1``); the ESE engine with the point's
    frame rings."""
    cfg = record["config"]
    if kind == "ese":
        return [{"kind": "ese", "config": cfg, "slot_words": record["slot_words"]}]
    return [{"kind": "eie", "config": {**cfg, "n_pes": n}} for n in _fit_sizes(cfg)]


def _estimate(executor, kind, records, cache: Path, stats) -> None:
    ok = [r for r in records if r["status"] == "ok"]
    unique = {}
    for r in ok:
        for d in _designs(kind, r):
            unique.setdefault(_digest(d), {**d, "cache": str(cache)})
    keys = list(unique)
    results = dict(zip(keys, executor.map(sweep_tasks.estimate_design,
                                          [unique[k] for k in keys], "Yosys estimates"),
                       strict=True))
    lookups = sum(len(_designs(kind, r)) for r in ok)
    fresh = sum(not v["cached"] for v in results.values())
    stats.update({"designs": len(unique), "design_lookups": lookups,
                  "designs_synthesised": fresh})
    for r in ok:
        found = [results[_digest(d)] for d in _designs(kind, r)]
        if not all(f["available"] for f in found):
            r.update({k: None for k in RESOURCES})
            r["estimate"] = "not available (boards.ese_resources not installed)"
            continue
        if len(found) == 1:
            r.update({k: float(found[0][k]) for k in RESOURCES})
            r["estimate"] = ("synthesised" if kind == "eie" else
                             "boards.ese_resources (parts synthesised)")
            continue
        n = r["config"]["n_pes"]
        low, high = _fit_sizes(r["config"])
        one, two = found
        # linear in N through the two arrays (boards.resources' projection)
        r.update({k: float(one[k] + (two[k] - one[k]) * (n - low) / (high - low))
                  for k in RESOURCES})
        r["estimate"] = f"projected from arrays at N = {low}, {high}"


def _fits(record: dict, resources: bool) -> None:
    from boards.resources import KU060

    if record["status"] != "ok" or not resources or record.get("lut") is None:
        record["fits"] = None
        for k in RESOURCES:
            record.setdefault(k, None)
        record.setdefault("estimate", None)
        return
    record["fits"] = all(record[k] <= KU060[k] for k in RESOURCES)


#: The columns of the table, in order (the swept fields come after ``index``).
COLUMNS = ("status", "reason", "cycles_mean", "cycles_max", "latency_us", *RESOURCES,
           "fits", "estimate", "accuracy", "pareto", "rtl_bit_exact", "rtl_cycle_exact")


def _clean(record: dict, kind: str) -> dict:
    swept = [k for k in record if k not in COLUMNS and not k.startswith("_")
             and k not in ("index", "config", "slot_words")]
    out = {"index": record["index"], **{k: record[k] for k in swept}}
    for k in COLUMNS:
        out[k] = record.get(k)
    out["engine"] = kind
    out["config"] = record.get("config")
    out["clock_mhz"] = CLOCK_HZ / 1e6
    return out


def _as_frame(table: SweepResult):
    try:
        import pandas
    except ImportError:
        return table
    frame = pandas.DataFrame(list(table))
    frame.attrs.update({"stats": table.stats, "recommended": table.recommended,
                        "files": table.files})
    return frame

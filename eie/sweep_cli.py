"""The ``eie sweep`` subcommand's parser and printout (the work is :func:`eie.sweep.sweep`);
``eie.cli`` adds it to its subcommands."""

from __future__ import annotations

import argparse
import json

from contract.config import ConfigError, EIEConfig
from contract.lstm_config import DEFAULT_CHANNEL, ESEConfig

__all__ = ["add_sweep_command", "run_sweep"]

#: Flag aliases, as ``eie.cli``'s.
_ALIASES = {"n_pes": ["--pes"]}


def add_sweep_command(sub, fmt) -> None:
    from .sweep import EIE_FIELDS, ESE_FIELDS, parse_list

    def ints(text):
        try:
            return parse_list(text, int)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    def floats(text):
        try:
            return parse_list(text, float)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    p = sub.add_parser("sweep", formatter_class=fmt,
                       help="design-space sweep of a model over config lists (Pareto plot)",
                       epilog="examples:\n  eie sweep mlp.pt --data d.npz --board ku060 --pes "
                              "8,16,32,64 --queue-depth 4,8,16 -o sweep\n  eie sweep lstm.pt "
                              "--pes 8,16 --channels 1,2 --no-rtl --ray -o sweep_lstm")
    p.add_argument("model", help="an MLP or LSTM model file, as eie pack takes it")
    p.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="sweep.csv, sweep.json, pareto.png, report.md")
    p.add_argument("--data", metavar="D.npz", default=None,
                   help="arrays x (MLP [N, n_in], LSTM [N, T, n_in]) and y (labels or "
                        "targets): golden's accuracy on all of it; the cycle model runs on "
                        "its first --samples inputs")
    p.add_argument("--board", choices=("ku060",), default="ku060")
    p.add_argument("--config", metavar="FILE", help="base config (fields not swept)")
    p.add_argument("--density", type=floats, default=None, metavar="D1,D2",
                   help="prune in one shot to each density (default: the model's zeros)")
    p.add_argument("--bits", type=ints, default=None, metavar="B1,B2",
                   help="codebook index bits (the --weight-bits list)")
    p.add_argument("--balance", action="store_true", help="load-balance-aware pruning")
    p.add_argument("--samples", type=int, default=16, help="cycle-model inputs (default 16)")
    p.add_argument("--no-rtl", action="store_true",
                   help="no Verilator check of the Pareto-optimal points")
    p.add_argument("--no-resources", action="store_true", help="no Yosys estimates")
    p.add_argument("--workers", type=int, default=None, help="local processes (default: CPUs)")
    p.add_argument("--ray", nargs="?", const=True, default=None, metavar="ADDRESS",
                   help="run the points as Ray tasks (a local instance without ADDRESS); "
                        "pip install 'eie-ese[cluster]'")
    p.add_argument("--cache", metavar="DIR", default=None,
                   help="cache of points and Yosys results (default $EIE_SWEEP_CACHE or "
                        "~/.cache/eie-ese/sweep)")
    group = p.add_argument_group("config fields as comma lists (an LSTM's EIE fields set its "
                                 "channel)")
    for name in (*EIE_FIELDS, *ESE_FIELDS):
        flags = [*_ALIASES.get(name, []), "--" + name.replace("_", "-")]
        group.add_argument(*flags, dest="grid_" + name, type=ints, metavar="N1,N2")


def _lstm_config(path) -> ESEConfig:
    # as `eie pack`'s --config of an LSTM: an ESEConfig, or EIEConfig fields for the channel
    # over the LSTM channel default
    with open(path) as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    if isinstance(data, dict) and "channel" in data:
        return ESEConfig.from_dict(data)
    if not isinstance(data, dict):
        EIEConfig.from_dict(data)   # raises: not a JSON object
    return ESEConfig(channel=EIEConfig.from_dict({**DEFAULT_CHANNEL.to_dict(), **data}))


def run_sweep(args) -> None:
    from .sweep import EIE_FIELDS, ESE_FIELDS, sweep

    grid = {name: getattr(args, "grid_" + name) for name in (*EIE_FIELDS, *ESE_FIELDS)
            if getattr(args, "grid_" + name) is not None}
    if args.bits is not None:
        if "weight_bits" in grid:
            raise ValueError("--bits and --weight-bits: give one (--bits sets --weight-bits)")
        grid["weight_bits"] = args.bits
    if args.density is not None:
        grid["density"] = args.density
    config = None
    if args.config:
        from . import api

        config = (_lstm_config(args.config) if api.is_lstm_model(args.model)
                  else EIEConfig.load(args.config))
    table = sweep(args.model, args.output, grid=grid, data=args.data, board=args.board,
                  config=config, balance=args.balance, rtl=not args.no_rtl,
                  resources=not args.no_resources, samples=args.samples,
                  workers=args.workers, ray=args.ray, cache_dir=args.cache)
    records = table.to_dict("records") if hasattr(table, "to_dict") else table
    stats = table.attrs["stats"] if hasattr(table, "attrs") else table.stats
    best = table.attrs["recommended"] if hasattr(table, "attrs") else table.recommended
    files = table.attrs["files"] if hasattr(table, "attrs") else table.files
    ok = sum(r["status"] == "ok" for r in records)
    fit = (f"{sum(r['fits'] is True for r in records)} fit the KU060"
           if any(r["fits"] is not None for r in records) else "fit unknown (no estimate)")
    print(f"{len(records)} points: {ok} packed, {fit}, "
          f"{sum(bool(r['pareto']) for r in records)} Pareto-optimal; "
          f"{stats['points_cached']} from the cache ({stats['executor']}, "
          f"{stats['seconds']:.1f} s)")
    if best is not None:
        r = records[best]
        def count(v):
            return "n/a" if v is None else f"{v:,.0f}"

        print(f"recommended: point {best}: {r['latency_us']:.4g} us, LUT {count(r['lut'])}, "
              f"BRAM36 {count(r['bram36'])}")
    for path in files:
        print(f"wrote {path}")



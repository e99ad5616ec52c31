"""The ``eie`` command: parses arguments, calls the Python API (``eie.api``, ``eie.bench``,
``eie.demo``) and prints. It does no work of its own."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np

from boards.ese_resources import format_ese_report
from boards.resources import format_report
from contract.config import ConfigError, EIEConfig
from contract.image_read import image_kind
from contract.image_write import FORMATS
from contract.lstm_config import DEFAULT_CHANNEL, ESEConfig

from . import __version__, api, bench, demo, lstm_demo, progress
from .bench_ese import bench_ese
from .cli_parser import EieArgumentParser
from .inputs import npz_path
from .sweep_cli import add_sweep_command, run_sweep

__all__ = ["main", "add_config_flags", "config_from_args", "add_lstm_flags",
           "lstm_config_from_args"]

_ALIASES = {"n_pes": ["--pes"]}


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per EIEConfig field (``--queue-depth``...), plus ``--config FILE``.

    A flag overrides the config file; unspecified fields keep the file's (or the default)
    value.
    """
    group = parser.add_argument_group(
        "architecture (EIEConfig; a flag overrides --config)")
    group.add_argument("--config", metavar="FILE",
                       help="JSON file with EIEConfig fields, or an image's manifest.json")
    for field in dataclasses.fields(EIEConfig):
        flags = [*_ALIASES.get(field.name, []), "--" + field.name.replace("_", "-")]
        group.add_argument(*flags, dest="cfg_" + field.name, type=int, metavar="N",
                           help=f"default {field.default}")


def _overrides(args, cls, prefix: str) -> dict:
    return {f.name: getattr(args, prefix + f.name) for f in dataclasses.fields(cls)
            if getattr(args, prefix + f.name, None) is not None}


def config_from_args(args, base: EIEConfig | None = None) -> EIEConfig:
    config = base or EIEConfig()
    if getattr(args, "config", None):
        config = EIEConfig.load(args.config)
    return dataclasses.replace(config, **_overrides(args, EIEConfig, "cfg_"))


#: The ESEConfig fields with a flag of their own (the channel has the EIE flags).
_LSTM_FIELDS = [f for f in dataclasses.fields(ESEConfig) if f.name != "channel"]


def add_lstm_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per ESEConfig field other than the channel (``--channels``,
    ``--gate-frac``...); they apply to LSTM models only."""
    group = parser.add_argument_group(
        "ESE (ESEConfig; LSTM models only). The architecture flags set its channel, over "
        "the LSTM channel default (act_frac 11, acc_depth 64); --config may be an ESEConfig "
        "(with 'channel') or EIEConfig fields for the channel")
    for field in _LSTM_FIELDS:
        group.add_argument("--" + field.name.replace("_", "-"), dest="ese_" + field.name,
                           type=int, metavar="N", help=f"default {field.default}")


def lstm_config_from_args(args) -> ESEConfig:
    """The ESEConfig of an LSTM ``eie pack``: ``--config`` (an ESEConfig, or EIEConfig fields
    over ``DEFAULT_CHANNEL``), then the architecture flags on the channel and the ESE flags.
    An EIE flag overrides the channel's default, it does not reset it to EIE's."""
    config = ESEConfig()
    if getattr(args, "config", None):
        with open(args.config) as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{args.config}: not valid JSON ({exc})") from None
        if isinstance(data, dict) and "channel" in data:
            config = ESEConfig.from_dict(data)
        elif isinstance(data, dict):
            config = ESEConfig(channel=EIEConfig.from_dict({**DEFAULT_CHANNEL.to_dict(), **data}))
        else:
            EIEConfig.from_dict(data)   # raises: not a JSON object
    channel = dataclasses.replace(config.channel, **_overrides(args, EIEConfig, "cfg_"))
    return dataclasses.replace(config, channel=channel, **_overrides(args, ESEConfig, "ese_"))


def _formats(text: str) -> tuple[str, ...]:
    formats = tuple(f.strip() for f in text.split(",") if f.strip())
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise argparse.ArgumentTypeError(
            f"formats must be a comma list of mem, coe, bin; got {text!r}")
    return formats


def _density(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"density must be in [0, 1], got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = EieArgumentParser(
        prog="eie", formatter_class=fmt,
        description="EIE sparse-accelerator generator: compress, pack, simulate, build.",
        epilog=textwrap.dedent("""\
            examples:
              eie demo -o build/demo
              eie pack model.pt -o img --pes 4 --density 0.1 --bits 4 --balance
              eie pack lstm.pt -o lstm_img --pes 4 --density 0.15 --balance --channels 2
              eie golden img --input x.npy -o y.npz
              eie inspect img
              eie verilog --pes 8 --queue-depth 4 -o rtl_out
              eie sim img --input x.npy -o y_rtl.npz
              eie build --board ku060 --pes 4 --image img -o vivado_proj
              eie resources --pes 2
              eie bench compiler
              eie sweep model.pt --data d.npz --pes 8,16,32 --queue-depth 4,8 -o sweep
            """))
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=EieArgumentParser)

    p = sub.add_parser("pack", formatter_class=fmt, help="compress a model and pack an image",
                       epilog="examples:\n  eie pack mlp.safetensors -o img --pes 4 "
                              "--density 0.1 --balance --formats mem,coe\n"
                              "  eie pack lstm.pt -o img --pes 4 --density 0.15 --balance "
                              "--channels 2 --cell-depth 64")
    p.add_argument("model", help="state_dict file (.pt/.pth, loaded with weights_only=True) "
                                 "or .safetensors holding a stack of nn.Linear layers, or an "
                                 "nn.LSTM (with an optional nn.Linear head) for ESE")
    p.add_argument("-o", "--output", required=True, metavar="IMAGE_DIR")
    p.add_argument("--density", type=_density, default=None,
                   help="target weight density; omit to pack an already-pruned model as is")
    p.add_argument("--bits", type=int, default=None,
                   help="codebook index bits (sets --weight-bits); 2**bits-1 shared values")
    p.add_argument("--balance", action="store_true",
                   help="ESE load-balance-aware pruning (equal non-zeros per PE)")
    p.add_argument("--balance-rows", action="store_true",
                   help="MLP: assign output rows to PEs to balance their entries (instead of "
                        "row i to PE i mod N); the order is recorded in the manifest")
    p.add_argument("--scope", choices=("layer", "global"), default="layer",
                   help="magnitude-pruning threshold per layer or global")
    p.add_argument("--ternary", action="store_true", help="TTQ-style {-Wn, 0, +Wp} codebook")
    p.add_argument("--final-relu", action="store_true", help="ReLU after the last layer too")
    p.add_argument("--formats", type=_formats, default=FORMATS,
                   help="comma list of mem,coe,bin (default all)")
    p.add_argument("--layers", metavar="A,B,C", default=None,
                   help="MLP layer order by name (as in the state_dict, without .weight); "
                        "default: the file's order (.safetensors: its eie.layers metadata)")
    p.add_argument("--data", metavar="D.npz", default=None,
                   help="MLP: arrays x [N, n_in] and y: class labels [N] (integers) or "
                        "regression targets [N] / [N, n_out] (floats); with --density prune "
                        "while retraining; fine-tune the centroids; check saturation and "
                        "wraps on it; report held-out float / compressed float / golden "
                        "accuracy (or MSE)")
    add_config_flags(p)
    add_lstm_flags(p)

    p = sub.add_parser("golden", formatter_class=fmt, help="bit-exact golden inference",
                       epilog="example:\n  eie golden img --input x.npy -o y.npz")
    p.add_argument("image", metavar="IMAGE_DIR")
    p.add_argument("--input", required=True, metavar="X.npy",
                   help="float input, shape [n_in] or [batch, n_in]; for an LSTM image "
                        "frames [T, n_in] or [batch, T, n_in]")
    p.add_argument("-o", "--output", required=True, metavar="Y.npz")

    p = sub.add_parser("inspect", formatter_class=fmt,
                       help="per-layer/per-PE statistics of an image",
                       epilog="examples:\n  eie inspect img\n  eie inspect img -o img_pics")
    p.add_argument("image", metavar="IMAGE_DIR")
    p.add_argument("-o", "--output", default=None, metavar="DIR",
                   help="also write DIR/pe_balance.png (per-PE non-zeros and padding per "
                        "layer)")

    p = sub.add_parser("demo", formatter_class=fmt,
                       help="the main job on the built-in digits MLP (--lstm: a "
                            "trained sparse LSTM on MNIST-1D)",
                       epilog="examples:\n  eie demo -o build/demo\n"
                              "  eie demo --no-rtl --pes 8\n  eie demo --lstm -o build/demo_lstm")
    p.add_argument("-o", "--output", default=None, metavar="DIR",
                   help="default build/demo (build/demo_lstm with --lstm)")
    p.add_argument("--no-rtl", action="store_true",
                   help="skip the Verilog, Verilator, Vivado-project and Yosys steps (pack "
                        "and golden only)")
    p.add_argument("--lstm", action="store_true",
                   help="train, prune (load-balance-aware) + share an LSTM classifier on "
                        "MNIST-1D (generated, no download), pack it for ESE, run golden")
    add_config_flags(p)

    p = sub.add_parser("bench", formatter_class=fmt, help="benchmarks (reports, not tests)",
                       epilog="examples:\n  eie bench compiler\n  eie bench eie --quick -o "
                              "build/bench\n  eie bench eie --pes 256 --broadcast-width 2 "
                              "--balance-rows --no-rtl\n  eie bench scaling -o build/bench\n"
                              "  eie bench ese --model-only")
    p.add_argument("what", choices=("compiler", "eie", "scaling", "ese"))
    p.add_argument("-o", "--output", default="build/bench", metavar="DIR")
    p.add_argument("--quick", action="store_true", help="smaller run for a smoke check")
    p.add_argument("--model-only", action="store_true",
                   help="ese: cycle model only (no RTL run)")
    p.add_argument("--balance-rows", action="store_true",
                   help="eie: pack every layer with balanced row assignment (the table also "
                        "gives the default layout's max-PE load)")
    p.add_argument("--no-rtl", action="store_true",
                   help="eie: cycle model only (no Verilator build or run)")
    p.add_argument("--pes", "--n-pes", dest="bench_pes", type=int, metavar="N", default=None,
                   help="eie: PEs (default 64, 8 with --quick; memories sized for N)")
    p.add_argument("--broadcast-width", dest="bench_width", type=int, metavar="B", default=None,
                   help="eie: non-zero activations the LNZD broadcasts per cycle (default 1)")
    p.add_argument("--queue-depth", dest="bench_depth", type=int, metavar="D", default=None,
                   help="eie, scaling: activation-queue depth (default 8)")

    _add_rtl_commands(sub, fmt)
    add_sweep_command(sub, fmt)
    return parser


def _add_rtl_commands(sub, fmt) -> None:
    p = sub.add_parser("verilog", formatter_class=fmt, help="emit Verilog for a config",
                       epilog="example:\n  eie verilog --pes 8 --queue-depth 4 -o out\n"
                              "  eie verilog --config cfg.json --image img -o out")
    p.add_argument("-o", "--output", required=True, metavar="DIR")
    p.add_argument("--image", metavar="IMAGE_DIR",
                   help="bake this image in as memory init ($readmemh side files)")
    add_config_flags(p)

    p = sub.add_parser("sim", formatter_class=fmt, help="run an image on the RTL (Verilator)",
                       epilog="example:\n  eie sim img --input x.npy -o y.npz --waves out.fst")
    p.add_argument("image", metavar="IMAGE_DIR")
    p.add_argument("--input", required=True, metavar="X.npy")
    p.add_argument("-o", "--output", required=True, metavar="Y.npz")
    p.add_argument("--waves", metavar="FILE.fst", help="dump waveforms")
    p.add_argument("--host", choices=("port", "axi"), default="port",
                   help="port: testbench on the core's host port; axi: the host driver "
                        "(eie.driver) over the AXI4-Lite wrapper, as on a board")
    p.add_argument("--axi-stall", type=float, default=0.0, metavar="P",
                   help="with --host axi: probability that the AXI master stalls each "
                        "channel each cycle (random backpressure)")

    p = sub.add_parser("build", formatter_class=fmt, help="write a Vivado project",
                       epilog="example:\n  eie build --board ku060 --pes 4 --image img -o proj")
    p.add_argument("--board", choices=("ku060",), default="ku060")
    p.add_argument("--image", metavar="IMAGE_DIR")
    p.add_argument("-o", "--output", required=True, metavar="BUILD_DIR")
    p.add_argument("--run", action="store_true", help="run vivado if it is on PATH")
    p.add_argument("--clock-hz", type=float, default=None, metavar="HZ",
                   help="core clock, made by the board's MMCM from the oscillator "
                        "(default 200e6; the closest achievable one is used and printed)")
    p.add_argument("--pin-file", metavar="FILE",
                   help="board pin file (.json or .py, docs/boards.md) replacing the "
                        "placeholder KCU105 pins; its clock is the oscillator")
    add_config_flags(p)

    p = sub.add_parser("resources", formatter_class=fmt,
                       help="Yosys synth_xilinx resource estimate",
                       epilog="example:\n  eie resources --pes 2\n"
                              "  eie resources --image lstm_img -o build/resources")
    p.add_argument("-o", "--output", default="build/resources", metavar="DIR")
    p.add_argument("--image", metavar="IMAGE_DIR",
                   help="estimate the design that runs this image (EIE or ESE; an ESE "
                        "engine is projected from synthesised parts, docs/boards.md)")
    add_config_flags(p)


def _pack(args) -> None:
    lstm = api.is_lstm_model(args.model)
    ese_flags = ["--" + f.name.replace("_", "-") for f in _LSTM_FIELDS
                 if getattr(args, "ese_" + f.name) is not None]
    if lstm:
        config = lstm_config_from_args(args)
        wrong = [flag for flag, on in (("--scope global", args.scope != "layer"),
                                       ("--ternary", args.ternary),
                                       ("--final-relu", args.final_relu)) if on]
        if args.layers is not None:
            wrong.append("--layers")
        if args.data is not None:
            wrong.append("--data")
        if args.balance_rows:
            wrong.append("--balance-rows")
        if wrong:
            raise ValueError(f"{', '.join(wrong)} do(es) not apply to LSTM models")
        bits = args.bits
    else:
        if ese_flags:
            raise ValueError(f"{', '.join(ese_flags)} apply to LSTM models only; {args.model} "
                             f"holds no recurrent weights (weight_ih_l0)")
        config, bits = _mlp_pack_config(args)
    if args.balance and args.density is None:
        raise ValueError("--balance needs --density (the density to prune to)")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", api.PackWarning)
        _, text = api.pack_report(args.model, args.output, config=config,
                                  density=args.density, bits=bits, balance=args.balance,
                                  scope=args.scope, ternary=args.ternary,
                                  final_relu=args.final_relu, formats=args.formats,
                                  layers=args.layers, data=args.data,
                                  balance_rows=args.balance_rows)
    for warning in caught:
        if issubclass(warning.category, api.PackWarning):
            print(f"eie pack: warning: {warning.message}", file=sys.stderr)
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename,
                                 warning.lineno)
    print(text)
    print(f"wrote {args.output}")


def _mlp_pack_config(args) -> tuple[EIEConfig, None]:
    """The EIEConfig of an MLP ``eie pack``: ``--bits`` is ``--weight-bits`` (both given
    must agree), and ``--entries-per-word``, when not given, becomes the largest power of
    two whose word fits 64 bits if the configured one does not (the note is printed)."""
    flag_bits = args.cfg_weight_bits
    if args.bits is not None and flag_bits is not None and args.bits != flag_bits:
        raise ValueError(f"--bits {args.bits} and --weight-bits {flag_bits} disagree "
                         f"(--bits sets --weight-bits; give one)")
    if args.bits is not None:
        args.cfg_weight_bits = args.bits
    base = EIEConfig.load(args.config) if getattr(args, "config", None) else EIEConfig()
    fields = {**base.to_dict(), **_overrides(args, EIEConfig, "cfg_")}
    entry_bits = fields["weight_bits"] + fields["index_bits"]
    fit = api.entries_per_word_that_fit(entry_bits) if entry_bits > 0 else []
    if fit and fields["entries_per_word"] not in fit:
        if args.cfg_entries_per_word is not None:
            raise ValueError(
                f"--entries-per-word {fields['entries_per_word']}: that many entries of "
                f"{entry_bits} bits do not fit a 64-bit word; values that fit: "
                f"{', '.join(map(str, fit))}")
        print(f"entries per word: {fit[-1]} ({fields['entries_per_word']} entries of "
              f"{entry_bits} bits do not fit a 64-bit word; set --entries-per-word to "
              f"choose)")
        args.cfg_entries_per_word = fit[-1]
    return config_from_args(args), None


def _golden(args) -> None:
    if args.command == "golden":
        out = api.golden(args.image, args.input, args.output)
    else:
        out = api.sim(args.image, args.input, args.output, waves=args.waves, host=args.host,
                      axi_stall=args.axi_stall)
    args.output = npz_path(args.output)     # the file written: -o y writes y.npz
    if "saturation_stages" not in out:
        print(f"wrote {args.output}: y {list(out['y'].shape)}, "
              f"cycles {np.atleast_1d(out['cycles']).tolist()[:8]}")
        layers = [str(name) for name in out["layers"]]
        saturated = out["saturation"].reshape(-1, len(layers)).sum(axis=0)
        wraps = out["wraps"].reshape(-1, len(layers)).sum(axis=0)
        if saturated.any() or wraps.any():
            counts = ", ".join(f"{name} {int(s)} saturated / {int(w)} wrapped" for name, s, w
                               in zip(layers, saturated, wraps, strict=True))
            print(f"eie {args.command}: warning: values saturated or accumulators wrapped "
                  f"(per layer: {counts}); the output is bit-exact but may be far from float "
                  f"(docs/numerics.md)", file=sys.stderr)
        return
    per_sequence = np.atleast_1d(out["cycles"].sum(axis=-1))
    print(f"wrote {args.output}: y {list(out['y'].shape)}, cycles per sequence "
          f"{per_sequence.tolist()[:8]} ({out['cycles'].shape[-1]} frames)")
    if "bit_exact" in out:
        print(f"RTL against golden: bit-exact {bool(out['bit_exact'])}, cycle-exact "
              f"{bool(out['cycle_exact'])}")
    saturated = out["saturation"].reshape(-1, len(out["saturation_stages"])).sum(axis=0)
    wraps = int(np.sum(out["wraps"]))
    if saturated.any() or wraps:
        counts = ", ".join(f"{stage} {int(c)}" for stage, c in
                           zip(out["saturation_stages"], saturated, strict=True))
        print(f"eie {args.command}: warning: values saturated ({counts}); {wraps} accumulator "
              f"wrap(s) (docs/ese.md, Numerics)", file=sys.stderr)


def _bench(args) -> None:
    with progress.stage(f"eie bench {args.what}"):
        text = _bench_text(args)
    print(text)


#: The ``eie bench`` flags refused for the other subjects (``--model-only`` and
#: ``--balance-rows`` predate the check and stay ignored there).
_BENCH_FLAGS = {"--no-rtl": ("no_rtl", ("eie",)),
                "--pes": ("bench_pes", ("eie",)),
                "--broadcast-width": ("bench_width", ("eie",)),
                "--queue-depth": ("bench_depth", ("eie", "scaling"))}


def _bench_text(args) -> str:
    wrong = [flag for flag, (dest, subjects) in _BENCH_FLAGS.items()
             if getattr(args, dest) not in (None, False) and args.what not in subjects]
    if wrong:
        raise ValueError(f"{', '.join(wrong)} do(es) not apply to eie bench {args.what}")
    if args.what == "ese":
        return bench_ese(Path(args.output), quick=args.quick, model_only=args.model_only)
    depth = 8 if args.bench_depth is None else args.bench_depth
    return bench.run(args.what, Path(args.output), quick=args.quick,
                     balance_rows=args.balance_rows, rtl=not args.no_rtl,
                     n_pes=args.bench_pes, queue_depth=depth,
                     broadcast_width=1 if args.bench_width is None else args.bench_width)


def _run(args) -> None:
    command = args.command
    if command == "pack":
        _pack(args)
    elif command in ("golden", "sim"):
        _golden(args)
    elif command == "inspect":
        print(api.inspect_image(args.image, args.output))
    elif command == "demo":
        if args.lstm:
            lstm_demo.run_lstm_demo(Path(args.output or "build/demo_lstm"),
                                    lstm_config_from_args(args), rtl=not args.no_rtl)
        else:
            demo.run_demo(Path(args.output or "build/demo"), config_from_args(args),
                          rtl=not args.no_rtl)
    elif command == "bench":
        _bench(args)
    elif command == "verilog":
        ese = _ese_image(args)
        image = ese or (None if args.image is None else api.as_image(args.image))
        config = None if ese else _design_config(args, image)
        for path in api.verilog(args.output, config, image):
            print(path)
    elif command == "build":
        ese = _ese_image(args)
        image = ese or (None if args.image is None else api.as_image(args.image))
        path = api.build(args.output, None if ese else _design_config(args, image),
                         args.image, board=args.board, run=args.run,
                         clock_hz=args.clock_hz, pin_file=args.pin_file)
        print(f"wrote Vivado project {path}")
        record = json.loads((path.parent / "project.json").read_text())
        if record["achieved_clock_hz"] != record["clock_hz"]:
            mmcm = record["mmcm"]
            print(f"core clock: {record['achieved_clock_hz'] / 1e6:.6f} MHz (asked "
                  f"{record['clock_hz'] / 1e6:.6f} MHz; the closest the MMCM makes: "
                  f"M {mmcm['clkfbout_mult_f']:g}, D {mmcm['divclk_divide']}, "
                  f"O {mmcm['clkout0_divide_f']:g})")
    elif command == "sweep":
        run_sweep(args)
    elif command == "resources":
        ese = _ese_image(args)
        if ese is not None:
            print(format_ese_report(api.resources(output=args.output, image=ese)))
        else:
            image = None if args.image is None else api.as_image(args.image)
            print(format_report(api.resources(_design_config(args, image), args.output,
                                              image=image)))


def _ese_image(args):
    """The ESE image of ``--image`` (None without one or for an EIE image): the design
    takes its config, so the architecture flags given must agree with its channel."""
    if args.image is None or image_kind(args.image) != "lstm":
        return None
    image = api.load_image(args.image)
    if args.config:
        raise ConfigError("--config does not apply to an ESE image: the design takes the "
                          "image's config")
    channel = image.config.channel
    if dataclasses.replace(channel, **_overrides(args, EIEConfig, "cfg_")) != channel:
        raise ConfigError("the architecture flags disagree with the ESE image's channel "
                          "config")
    return image


def _design_config(args, image) -> EIEConfig:
    """With an image the design takes the image's config: the flags given (and a
    ``--config`` file) must agree with it; flags not given keep the image's values."""
    return config_from_args(args, base=None if image is None else image.config)


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        _run(args)
    except (ConfigError, ValueError, OSError) as exc:
        # OSError: an output path that is a file, a directory, unwritable, ... (one line).
        print(f"eie {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

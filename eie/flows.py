"""Python API behind each ``eie`` command. The CLI only parses arguments and calls these."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np

from contract.config import EIEConfig

__all__ = ["dispatch", "pack_model", "golden_file", "inspect_report", "load_input"]


def _progress(iterable, desc: str, total=None):
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, file=sys.stderr, leave=False,
                disable=not sys.stderr.isatty())


def pack_model(model, out_dir, config: EIEConfig, *, density=None, bits=None, balance=False,
               scope="layer", ternary=False, final_relu=False,
               formats=("mem", "coe", "bin")):
    """Compress ``model`` (a file path or an nn.Module) and write its image to ``out_dir``.

    Returns ``(compressed, image)``. Nothing is written unless every step succeeds.
    """
    from compiler import compress, pack, write_image

    if bits is not None:
        config = dataclasses.replace(config, weight_bits=bits)
    compressed = compress(model, density=density, bits=config.weight_bits, scope=scope,
                          balance=balance, n_pes=config.n_pes if balance else None,
                          ternary=ternary, final_relu=final_relu)
    image = pack(compressed.layers, config)
    write_image(image, out_dir, formats=formats)
    return compressed, image


def load_input(path, n_in: int) -> np.ndarray:
    """Load a float input ``[n_in]`` or ``[batch, n_in]`` from a .npy file (no pickles)."""
    try:
        x = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise ValueError(f"{path}: not a plain .npy array ({exc})") from None
    if x.ndim not in (1, 2) or x.shape[-1] != n_in:
        raise ValueError(f"{path}: input must have shape [{n_in}] or [batch, {n_in}], "
                         f"got {list(x.shape)}")
    if not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"{path}: input must be numeric, got dtype {x.dtype}")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{path}: input holds {int(np.sum(~np.isfinite(x)))} NaN/Inf values")
    return x


def _load_run(image_dir, input_path):
    """The image, the float input as given and its quantized ``[batch, n_in]`` form."""
    import golden
    from contract.image_read import read_image

    image = read_image(image_dir)
    x = load_input(input_path, image.n_in)
    return image, x, golden.quantize_input(np.atleast_2d(x), image.config)


def _save_run(output_path, image, batch_shape, q, cycles, cycles_per_layer) -> dict:
    """The ``.npz`` of ``eie golden`` and ``eie sim``, shaped like the input's batch."""
    import golden

    q = np.asarray(q).reshape(batch_shape + (image.n_out,))
    out = {
        "y": golden.dequantize(q, image.config),
        "q": q,
        "cycles": np.asarray(cycles, np.int64).reshape(batch_shape),
        "cycles_per_layer": np.asarray(cycles_per_layer, np.int64).reshape(
            batch_shape + (len(image.layers),)),
    }
    np.savez(output_path, **out)
    return out


def golden_file(image_dir, input_path, output_path) -> dict:
    """``eie golden``: bit-exact inference plus the cycle model, written to an .npz."""
    import golden

    image, x, q_in = _load_run(image_dir, input_path)
    result = golden.run(image, q_in)
    tiles = golden.decode_program(image)
    cycles = [golden.cycles(image, q, tiles=tiles) for q in _progress(q_in, "cycle model")]
    return _save_run(output_path, image, x.shape[:-1], result.q, [c.total for c in cycles],
                     [[layer.cycles for layer in c.layers] for c in cycles])


def inspect_report(image) -> str:
    """Per-layer and per-PE statistics: non-zeros, padding, imbalance, memory, Huffman."""
    from .inspect import image_stats

    return image_stats(image).format()


def dispatch(args):
    from .cli import config_from_args

    command = args.command
    if command == "pack":
        config = config_from_args(args)
        compressed, image = pack_model(
            args.model, args.output, config, density=args.density, bits=args.bits,
            balance=args.balance, scope=args.scope, ternary=args.ternary,
            final_relu=args.final_relu, formats=args.formats)
        print(inspect_report(image))
        print(f"wrote {args.output}")
    elif command in ("golden", "sim"):
        if command == "golden":
            out = golden_file(args.image, args.input, args.output)
        else:
            out = sim_file(args.image, args.input, args.output, waves=args.waves)
        print(f"wrote {args.output}: y {list(out['y'].shape)}, "
              f"cycles {np.atleast_1d(out['cycles']).tolist()[:8]}")
    elif command == "inspect":
        from contract.image_read import read_image

        print(inspect_report(read_image(args.image)))
    elif command == "demo":
        from .demo import run_demo

        run_demo(Path(args.output), config_from_args(args), rtl=not args.no_rtl)
    elif command == "bench":
        from . import bench

        print(bench.run(args.what, Path(args.output), quick=args.quick))
    elif command == "verilog":
        from rtl.verilog import generate

        image = _maybe_image(args.image)
        config = _config_for_image(config_from_args(args), image)
        paths = generate(config, args.output, image=image)
        for path in paths:
            print(path)
    elif command == "build":
        from boards.vivado import write_project

        image = _maybe_image(args.image)
        config = _config_for_image(config_from_args(args), image)
        path = write_project(args.output, config, image_dir=args.image, run=args.run)
        print(f"wrote Vivado project {path}")
    elif command == "resources":
        from boards.resources import estimate, format_report

        print(format_report(estimate(config_from_args(args), out_dir=args.output)))
    return 0


def _maybe_image(image_dir):
    if image_dir is None:
        return None
    from contract.image_read import read_image

    return read_image(image_dir)


def _config_for_image(config: EIEConfig, image) -> EIEConfig:
    """With an image, the design takes the image's config; explicit flags must agree."""
    if image is None:
        return config
    if config != EIEConfig() and config != image.config:
        from contract.image_read import check_config

        check_config(image, config)
    return image.config


def sim_file(image_dir, input_path, output_path, waves=None) -> dict:
    """``eie sim``: run the image on the RTL under Verilator; same fields as ``eie golden``."""
    from sim_tests.runner import simulate

    image, x, q_in = _load_run(image_dir, input_path)
    result = simulate(image, q_in, waves=waves)
    return _save_run(output_path, image, x.shape[:-1], result["q"], result["cycles_total"],
                     result["cycles_per_layer"])

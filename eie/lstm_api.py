"""The LSTM (ESE) half of the Python API: what ``eie.pack``, ``eie.golden`` and
``eie.inspect_image`` do for an LSTM model or image (docs/ese.md). ``eie.api`` dispatches
here on the model's keys or the image's kind; nothing here parses arguments or prints.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from compiler.lstm_pack import CompressedLSTM, compress_lstm, pack_lstm
from contract.config import EIEConfig
from contract.image_write import FORMATS
from contract.lstm_config import ESEConfig
from contract.lstm_image import LSTMImage, read_lstm_image, write_lstm_image
from golden.lstm_cycles import lstm_cycles
from golden.lstm_model import decode_matrices, quantize_sequence, run_lstm
from sim_tests.ese_runner import simulate_lstm

from .inputs import finite_float, read_input

__all__ = ["SATURATION_STAGES", "lstm_config", "as_lstm_image", "load_sequence",
           "pack_lstm_model", "describe_pack", "golden_lstm", "sim_lstm"]

#: Order of the stages in the ``saturation`` array of :func:`golden_lstm`'s result
#: (``golden.lstm_model.LSTMResult.saturation``).
SATURATION_STAGES = ("gates", "table", "cell", "proj", "head")


def lstm_config(config) -> ESEConfig:
    """The ESE config for an LSTM model: ``config`` itself, ``ESEConfig()`` for ``None``, or
    an :class:`EIEConfig` taken whole as the channel (every field as given, so pass
    ``contract.lstm_config.DEFAULT_CHANNEL`` with changes to keep the LSTM defaults)."""
    if config is None:
        return ESEConfig()
    if isinstance(config, ESEConfig):
        return config
    if isinstance(config, EIEConfig):
        return ESEConfig(channel=config)
    raise TypeError(f"config must be an ESEConfig or an EIEConfig, not {type(config).__name__}")


def as_lstm_image(image) -> LSTMImage:
    """``image`` itself, or the ESE image read (and checked) from a directory."""
    if isinstance(image, LSTMImage):
        return image
    return read_lstm_image(image)


def load_sequence(x, n_in: int) -> np.ndarray:
    """A float frame sequence ``[T, n_in]`` or a batch ``[batch, T, n_in]`` (batch first),
    from an array or a ``.npy`` file (loaded without pickles).

    Raises
    ------
    ValueError
        Not a plain numeric array, the wrong shape, no frames (``T = 0``), an empty batch,
        or NaN/Inf values.
    """
    what, x = read_input(x)
    if x.ndim not in (2, 3) or x.shape[-1] != n_in:
        raise ValueError(f"{what}: input must have shape [T, {n_in}] or [batch, T, {n_in}] "
                         f"(frames of {n_in} values, batch first), got {list(x.shape)}")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise ValueError(f"{what}: input must be real numbers, got dtype {x.dtype}")
    if x.shape[-2] == 0:
        raise ValueError(f"{what}: input has no frames (T = 0)")
    if x.ndim == 3 and x.shape[0] == 0:
        raise ValueError(f"{what}: input batch is empty")
    return finite_float(x, what)


def pack_lstm_model(state, config: ESEConfig, *, density=None, bits=None, balance=False,
                    output=None, formats=FORMATS) -> tuple[LSTMImage, CompressedLSTM]:
    """Compress (prune to ``density`` when given, k-means share with ``bits``-bit indices,
    which sets ``config.channel.weight_bits``) and pack an LSTM; write the image to
    ``output`` when given, only once every step has succeeded."""
    if bits is not None:
        config = dataclasses.replace(
            config, channel=dataclasses.replace(config.channel, weight_bits=bits))
    compressed = compress_lstm(state, config, density=density, bits=config.channel.weight_bits,
                               balance=balance)
    image = pack_lstm(compressed, config)
    if output is not None:
        write_lstm_image(image, output, formats=formats)
    return image, compressed


def _role(role: tuple[str, int], compressed: CompressedLSTM) -> str:
    kind, index = role
    if kind == "head":
        return f"head {index}"
    name = {"gates": "gates", "proj": "projection"}[kind]
    return f"{name} of {compressed.spec.layers[index].name}"


def describe_pack(image: LSTMImage, compressed: CompressedLSTM, density) -> str:
    """What ``eie pack`` packed: the compression, each matrix (name, role, shape, non-zeros,
    density, weight-sharing error) and the head in the order it runs."""
    ch = image.config.channel
    lines = []
    if density is None:
        lines.append(f"no --density: the model packs with the zeros it has (not pruned); "
                     f"every matrix is still shared by its own {ch.weight_bits}-bit k-means "
                     f"codebook")
    else:
        lines.append(f"pruned to density {density} per matrix, shared by a {ch.weight_bits}-bit "
                     f"k-means codebook per matrix")
    width = max(len(s["name"]) for s in compressed.stats) + 2
    lines += ["", f"{'matrix':<{width}}{'role':<24}{'shape':>12}{'nnz':>9}{'density':>9}"
                  f"{'rms sharing error':>19}"]
    for s, role in zip(compressed.stats, compressed.roles, strict=True):
        shape = "x".join(str(d) for d in s["shape"])
        lines.append(f"{s['name']:<{width}}{_role(role, compressed):<24}{shape:>12}"
                     f"{s['nnz']:>9}{s['density']:>9.3f}{s['rms_error']:>19.3g}")
    mats = image.matrices.layers
    if image.head:
        order = " -> ".join(f"{mats[k].name}{' (ReLU)' if mats[k].relu else ''}"
                            for k in image.head)
        lines.append(f"head, every frame, in the state_dict's key order: "
                     f"{image.layers[-1].name} -> {order}")
    else:
        lines.append(f"no head: the output is h of {image.layers[-1].name}")
    return "\n".join(lines)


def _golden(image, q_in):
    matrices = decode_matrices(image)
    result = run_lstm(image, q_in, matrices=matrices, trace=True)
    return result, lstm_cycles(image, q_in, matrices=matrices, result=result)


def sim_lstm(image, x, output=None, *, host: str = "port", axi_stall: float = 0.0) -> dict:
    """``eie sim`` of an ESE image: the frames through the ESE RTL under Verilator (one
    run per group of ``channels`` sequences, every frame loaded before the run starts).

    Returns (and writes to ``output``) the fields of :func:`golden_lstm`, with ``y``/``q``
    and ``cycles`` from the RTL, plus ``model_cycles`` (the cycle model's) and
    ``bit_exact``/``cycle_exact`` (RTL against golden). ``saturation`` and ``wraps`` are
    golden's counts for the same input (the RTL has no counters; it equals golden bit for
    bit, which ``bit_exact`` checks). ``host="axi"``: through the host driver on the
    AXI4-Lite wrapper with the board's frame rings (``eie.axi_sim``).
    """
    image = as_lstm_image(image)
    x = load_sequence(x, image.n_in)
    single = x.ndim == 2
    q_in = quantize_sequence(x if not single else x[None], image.config)
    result, report = _golden(image, q_in)
    if host == "axi":       # the host driver over the AXI4-Lite wrapper (eie.axi_sim)
        from .axi_sim import simulate_axi

        rtl = simulate_axi(image, q_in, stall=axi_stall)
    else:
        rtl = simulate_lstm(image, q_in)
    per_matrix = np.array([[frame.per_matrix for frame in frames] for frames in report.frames],
                          np.int64)
    out = {
        "y": rtl["q"] / float(1 << image.config.channel.act_frac),
        "q": rtl["q"],
        "cycles": np.asarray(rtl["cycles"], np.int64),
        "model_cycles": np.asarray(report.cycles, np.int64),
        "cycles_per_matrix": per_matrix,
        "saturation": np.stack([result.saturation[k] for k in SATURATION_STAGES], axis=-1),
        "saturation_stages": np.array(SATURATION_STAGES),
        "wraps": np.asarray(result.wraps, np.int64),
        "bit_exact": np.array(bool(np.array_equal(rtl["q"], result.q))),
        "cycle_exact": np.array(bool(np.array_equal(rtl["cycles"], report.cycles))),
    }
    if single:
        out = {k: (v[0] if v.ndim and k not in ("saturation_stages",) else v)
               for k, v in out.items()}
    if output is not None:
        np.savez(output, **out)
    return out


def golden_lstm(image, x, output=None) -> dict:
    """Bit-exact ESE inference plus the cycle model, for a frame sequence or a batch.

    Returns (and writes to ``output`` as ``.npz`` when given) ``y`` (float, ``[..., T,
    n_out]``), ``q`` (raw integers, same shape), ``cycles`` (per frame, ``[..., T]``),
    ``cycles_per_matrix`` (``[..., T, matrices]``), ``saturation`` (values saturated per
    sequence and stage, ``[..., 5]``, stages in ``saturation_stages``) and ``wraps``
    (accumulators that wrapped, per sequence); ``...`` is the input's batch axis, if any.
    """
    image = as_lstm_image(image)
    x = load_sequence(x, image.n_in)
    single = x.ndim == 2
    q_in = quantize_sequence(x if not single else x[None], image.config)
    result, report = _golden(image, q_in)
    per_matrix = np.array([[frame.per_matrix for frame in frames] for frames in report.frames],
                          np.int64)
    out = {
        "y": result.y,
        "q": result.q,
        "cycles": np.asarray(report.cycles, np.int64),
        "cycles_per_matrix": per_matrix,
        "saturation": np.stack([result.saturation[k] for k in SATURATION_STAGES], axis=-1),
        "saturation_stages": np.array(SATURATION_STAGES),
        "wraps": np.asarray(result.wraps, np.int64),
    }
    if single:
        out = {k: (v if k == "saturation_stages" else v[0]) for k, v in out.items()}
    if output is not None:
        np.savez(output, **out)
    return out

"""The Python API that mirrors the ``eie`` command, one function per subcommand.

``eie.pack``, ``eie.golden``, ``eie.sim``, ``eie.verilog``, ``eie.build``,
``eie.resources`` and ``eie.inspect_image`` do the work; ``eie.cli`` only parses arguments,
calls them and prints. Images may be given as a :class:`~contract.image.PackedImage` (an
:class:`~contract.lstm_image.LSTMImage` for ESE) or as an image directory; inputs as an
array or a ``.npy`` path. ``pack``, ``golden`` and ``inspect_image`` take LSTM models and
images too: they dispatch on the model's keys and the image's kind (``eie.lstm_api``).

Imports of the project's own layers are at module level. ``torch`` (through
``compiler``'s functions), ``tqdm`` and the cocotb runner are imported where they are used,
inside the layers below, so that ``eie --help`` stays fast.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np

import compiler
import golden as golden_model
from boards import ese_resources, ese_vivado, vivado
from boards import resources as board_resources
from compiler.compress import layer_stats
from compiler.lstm_model import is_lstm_state, load_state
from contract.config import EIEConfig
from contract.errors import ConfigError, ImageError
from contract.host_map import HOST_DATA_BITS
from contract.image import PackedImage
from contract.image_read import check_config, image_kind, read_image
from contract.image_write import FORMATS, write_image
from contract.lstm_config import ESEConfig
from contract.lstm_image import LSTMImage, read_lstm_image
from rtl import verilog as rtl_verilog
from rtl.ese_verilog import generate_ese
from sim_tests import runner

from . import lstm_api, progress
from .inputs import check_output, finite_float, read_input, read_xy, write_npz
from .inspect import image_stats, lstm_image_stats

__all__ = ["pack", "pack_report", "PackWarning", "entries_per_word_that_fit", "golden", "sim",
           "verilog", "build", "resources", "inspect_image", "load_input", "load_sequence",
           "as_image", "load_image",
           "model_state", "is_lstm_model"]

#: The one-line refusal of every RTL command given an ESE image.
NO_ESE_RTL = "LSTM images need the ESE RTL (not built yet)"

load_sequence = lstm_api.load_sequence


def _progress(iterable, desc: str, total=None):
    # tqdm is only needed when a long step runs; keep it off the import path of `eie`.
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, total=total, file=sys.stderr, leave=False,
                disable=not sys.stderr.isatty())


def load_image(image) -> PackedImage | LSTMImage:
    """``image`` itself, or the image read (and checked) from a directory with the reader
    of its kind (``contract.image_read.image_kind``)."""
    if isinstance(image, (PackedImage, LSTMImage)):
        return image
    if image_kind(image) == "lstm":
        return read_lstm_image(image)
    return read_image(image)


def as_image(image) -> PackedImage:
    """An EIE image: ``image`` itself, or the image read (and checked) from a directory.

    Raises
    ------
    ValueError
        an ESE (LSTM) image: the commands that take only EIE images run on the EIE RTL.
    """
    if isinstance(image, PackedImage):
        return image
    if isinstance(image, LSTMImage) or image_kind(image) == "lstm":
        raise ImageError(NO_ESE_RTL)
    return read_image(image)


def model_state(model):
    """The state_dict of ``model`` (an ``nn.Module``, a mapping, or a ``.pt``/``.pth``/
    ``.safetensors`` file loaded with ``weights_only=True``)."""
    return load_state(model)


def _state_of(model):
    """The state_dict of a model given as a module, a mapping or a file; ``None`` for
    anything else (a list of ``compiler.DenseLayer``; ``compiler.compress`` judges it)."""
    if isinstance(model, (str, os.PathLike, Mapping)) or hasattr(model, "state_dict"):
        return load_state(model)
    return None


def is_lstm_model(model) -> bool:
    """Whether ``model`` (anything :func:`model_state` takes, or a list of
    ``compiler.DenseLayer``) holds recurrent weights and so packs for ESE."""
    state = _state_of(model)
    return state is not None and is_lstm_state(state)


def load_input(x, n_in: int) -> np.ndarray:
    """A float input ``[n_in]`` or ``[batch, n_in]``, from an array or a ``.npy`` file
    (loaded without pickles).

    Raises
    ------
    ValueError
        Not a plain numeric array, the wrong shape, or NaN/Inf values.
    """
    what, x = read_input(x)
    if x.ndim not in (1, 2) or x.shape[-1] != n_in:
        raise ValueError(f"{what}: input must have shape [{n_in}] or [batch, {n_in}], "
                         f"got {list(x.shape)}")
    if not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"{what}: input must be numeric, got dtype {x.dtype}")
    return finite_float(x, what)


class PackWarning(UserWarning):
    """A packed MLP that is probably not what the user wanted (``eie pack`` prints these
    as ``eie pack: warning: ...``): one-shot pruning far below 50 % density, a global
    threshold that left a layer far below the target, a layer order that was guessed."""


def entries_per_word_that_fit(entry_bits: int) -> list[int]:
    """The ``entries_per_word`` values (powers of two, as the spmat reader needs) whose
    word of ``entry_bits``-bit entries fits the 64-bit host data port, largest last."""
    fit, epw = [], 1
    while epw * entry_bits <= HOST_DATA_BITS:
        fit.append(epw)
        epw *= 2
    return fit


def pack(model, output=None, *, config: EIEConfig | ESEConfig | None = None, density=None,
         bits=None, balance=False, scope="layer", ternary=False, final_relu=False,
         formats=FORMATS, layers=None, data=None,
         balance_rows=False) -> PackedImage | LSTMImage:
    """``eie pack``: compress ``model`` (a state_dict file, a state_dict or an nn.Module)
    and pack it for ``config``; write the image to ``output`` when given.

    An MLP packs for an :class:`EIEConfig` (default ``EIEConfig()``) into a
    :class:`PackedImage`. A model with recurrent weights (``...weight_ih_l0``) packs for an
    :class:`ESEConfig` (default ``ESEConfig()``; an ``EIEConfig`` is taken as its channel,
    see ``eie.lstm_api.lstm_config``) into an :class:`LSTMImage`; ``scope``, ``ternary``
    and ``final_relu`` do not apply to it. ``bits`` sets the (channel's) ``weight_bits``;
    for an MLP, when ``config.entries_per_word`` entries of the new width no longer fit a
    64-bit word, the largest power of two that fits is taken. ``layers`` (MLP only) is the
    layer order by name (``compiler.model.import_model``'s ``order``). A
    :class:`PackWarning` is issued for one-shot pruning below 50 % density, a global
    threshold that left a layer under a quarter of the target, and a layer order taken
    from the file when the shapes chain in more than one order. ``data`` (MLP only; a
    ``.npz`` path or a mapping with arrays ``x`` ``[N, n_in]`` and integer class labels
    ``y`` ``[N]``): with ``density``, prune while retraining on a training split
    (``compiler.iterative_prune``, 3 steps, ``compiler.classifier_train_fn``) instead of
    one shot; in any case report the held-out accuracy of float, compressed float and
    golden (:func:`pack_report`'s text). ``balance_rows`` (MLP only): assign output rows to
    PEs to balance their entries (``compiler.balance``; the order goes to the manifest).
    Nothing is written unless every step succeeds.
    """
    return pack_report(model, output, config=config, density=density, bits=bits,
                       balance=balance, scope=scope, ternary=ternary, final_relu=final_relu,
                       formats=formats, layers=layers, data=data,
                       balance_rows=balance_rows)[0]


def pack_report(model, output=None, *, config: EIEConfig | ESEConfig | None = None,
                density=None, bits=None, balance=False, scope="layer", ternary=False,
                final_relu=False, formats=FORMATS, layers=None,
                data=None, balance_rows=False) -> tuple[PackedImage | LSTMImage, str]:
    """:func:`pack`, and what ``eie pack`` prints about it: for an LSTM what was pruned and
    shared per matrix and the head order, then :func:`inspect_image` of the image; for an
    MLP the layer order and where it came from, the entries per word when derived, the
    pruning and sharing per layer, then :func:`inspect_image`."""
    # An MLP is imported again from ``model`` itself: compiler.compress reads ReLU flags
    # from a module and orders a .safetensors file's layers by name.
    state = _state_of(model)
    if isinstance(config, ESEConfig) or (state is not None and is_lstm_state(state)):
        unsupported = [name for name, value in (("scope='global'", scope != "layer"),
                                                ("ternary", ternary),
                                                ("final_relu", final_relu),
                                                ("balance_rows", balance_rows)) if value]
        if layers is not None:
            unsupported.append("layers")
        if data is not None:
            unsupported.append("data")
        if unsupported:
            raise ValueError(f"{', '.join(unsupported)} do(es) not apply to LSTM models")
        if state is None:
            raise ValueError("an LSTM packs from a state_dict, an nn.Module or a file")
        image, compressed = lstm_api.pack_lstm_model(
            state, lstm_api.lstm_config(config), density=density, bits=bits, balance=balance,
            output=output, formats=formats)
        text = lstm_api.describe_pack(image, compressed, density)
        return image, text + "\n\n" + inspect_image(image)
    config = config or EIEConfig()
    lines = []
    if bits is not None and bits != config.weight_bits:
        config, line = _with_weight_bits(config, bits)
        lines += [line] if line else []
    if data is None:
        compressed = compiler.compress(model, density=density, bits=config.weight_bits,
                                       scope=scope, balance=balance,
                                       n_pes=config.n_pes if balance else None,
                                       ternary=ternary, final_relu=final_relu, order=layers)
        image = compiler.pack(compressed.layers, config, balance_rows=balance_rows)
        lines = [_order_line(compressed)] + lines + _compression_lines(compressed, density,
                                                                       ternary)
        pruned, observed = compressed.source, None
        lines.append(_bound_line(image, compressed))
    else:
        image, compressed, data_lines, pruned, observed = _pack_with_data(
            model, data, config, density=density, scope=scope, balance=balance,
            ternary=ternary, final_relu=final_relu, layers=layers, balance_rows=balance_rows)
        lines = [_order_line(compressed)] + lines + data_lines
    retrained = data is not None
    messages = _pack_warnings(compressed, None if retrained else density, scope)
    if observed is not None:
        line, warning = _observed_lines(image, *observed)
        lines.append(line)
        messages += [warning] if warning else []
    for message in messages:
        warnings.warn(message, PackWarning, stacklevel=3)
    if output is not None:
        # rendered before the image is written, so a failure leaves nothing behind
        side = _side_files(compressed, pruned)
        write_image(image, output, formats=formats)
        for name, (content, what) in side.items():
            (Path(output) / name).write_bytes(content)
            lines.append(f"wrote {Path(output) / name} ({what})")
    return image, "\n".join(lines) + "\n\n" + inspect_image(image)


#: The files ``eie pack`` writes into an MLP image folder besides the image itself.
COMPRESSED_MODEL = "compressed.pt"
WEIGHTS_PNG = "weights.png"


def _side_files(compressed, pruned) -> dict[str, tuple[bytes, str]]:
    """The compressed float model (a state_dict of tensors only, keys ``<layer>.weight`` /
    ``<layer>.bias`` as in the source model, loadable with ``torch.load(...,
    weights_only=True)`` and ``load_state_dict``) and the weight histograms, as bytes."""
    import io

    import torch

    from .plots import weight_histograms_png

    state = {}
    for layer in compressed.layers:
        state[f"{layer.name}.weight"] = torch.from_numpy(layer.dense().astype(np.float32))
        if layer.bias is not None:
            state[f"{layer.name}.bias"] = torch.from_numpy(
                np.asarray(layer.bias, np.float32).copy())
    buffer = io.BytesIO()
    torch.save(state, buffer)
    survivors = [np.asarray(p.weight)[q.indices != 0]
                 for p, q in zip(pruned, compressed.layers, strict=True)]
    png = weight_histograms_png([q.name for q in compressed.layers], survivors,
                                [q.codebook for q in compressed.layers])
    return {COMPRESSED_MODEL: (buffer.getvalue(), "compressed float model: shared weights, "
                               "a state_dict for torch.load(weights_only=True)"),
            WEIGHTS_PNG: (png, "weight histogram per layer with its shared values")}


def _bound_line(image, compressed) -> str:
    """Without data: whether any input could make an accumulator wrap, said as the
    worst-case bound it is (every input at full scale with the worst signs)."""
    from compiler.fixed_point import layer_numerics, worst_case_accumulator

    cfg = image.config
    _, qcodebooks, qbiases = layer_numerics(compressed.layers, cfg)
    worst = [worst_case_accumulator(q.indices, qc, qb, cfg)
             for q, qc, qb in zip(compressed.layers, qcodebooks, qbiases, strict=True)]
    over = [(q.name, w) for q, w in zip(compressed.layers, worst, strict=True)
            if w >= 1 << (cfg.acc_bits - 1)]
    if not over:
        return f"accumulators ({cfg.acc_bits}-bit): no input can make one wrap"
    full_scale = (1 << (cfg.act_bits - 1)) / (1 << cfg.act_frac)
    which = ", ".join(f"{name} 2**{np.log2(w):.1f}" for name, w in over)
    return (f"accumulators ({cfg.acc_bits}-bit): a worst-case bound only (every input at "
            f"+-{full_scale:g} with the worst signs) exceeds 2**{cfg.acc_bits - 1} in {which}; "
            f"real inputs rarely come near it: eie golden counts actual saturation and wraps "
            f"on your inputs, and pack --data checks its data")


def _observed_lines(image, what, x) -> tuple[str, str | None]:
    """With data: golden on every sample of it, and the per-layer saturation and wrap
    counts (a line for the report, and a warning saying what to change when any is non-zero)."""
    cfg = image.config
    q_in = golden_model.quantize_input(x, cfg)
    result = golden_model.run(image, q_in)
    saturated, wrapped = result.saturation.sum(axis=0), result.wraps.sum(axis=0)
    clipped = int(np.sum(np.abs(x * (1 << cfg.act_frac) - q_in) > 0.5))
    head = f"golden on all {len(x)} samples of {what}"
    if not (saturated.any() or wrapped.any() or clipped):
        return f"{head}: no input clipped, no value saturated, no accumulator wrapped", None
    affected = int(np.sum((result.saturation.sum(axis=1) + result.wraps.sum(axis=1)) > 0))
    counts = ", ".join(f"{info.name} {int(s)} saturated / {int(w)} wrapped"
                       for info, s, w in zip(image.layers, saturated, wrapped, strict=True))
    full_scale = (1 << (cfg.act_bits - 1)) / (1 << cfg.act_frac)
    fixes = []
    if clipped or saturated.any():
        fixes.append(f"lower --act-frac (now {cfg.act_frac}: values beyond +-{full_scale:g} "
                     f"saturate) or scale the inputs down")
    if wrapped.any():
        fixes.append(f"raise --acc-bits (now {cfg.acc_bits})")
    text = (f"{head}: {clipped} input value(s) clipped; per layer: {counts} "
            f"({affected} sample(s) affected)")
    return text, (f"{text}; the output is bit-exact but not close to float there: "
                  f"{'; '.join(fixes)} (docs/numerics.md)")


#: Held-out share of ``eie pack --data`` and the prune-and-retrain schedule it uses.
DATA_HOLDOUT = 0.2
DATA_STEPS = 3
DATA_EPOCHS = 5


def _read_data(data) -> tuple[str, np.ndarray, np.ndarray]:
    """The name for messages, ``x`` (float64 ``[N, n_in]``) and ``y`` of a ``.npz`` path (no
    pickles) or a mapping: int64 class labels ``[N]`` (an integer ``y``) or float64
    regression targets ``[N]`` / ``[N, n_out]`` (a float ``y``)."""
    what, x, y = read_xy(data)
    if x.ndim != 2 or y.ndim not in (1, 2) or y.shape[0] != x.shape[0] or x.shape[0] < 2:
        raise ValueError(f"{what}: x must be [N, n_in] and y [N] (or [N, n_out] targets) "
                         f"with N >= 2, got x {list(x.shape)} and y {list(y.shape)}")
    if not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"{what}: x must be numeric, got dtype {x.dtype}")
    if np.issubdtype(y.dtype, np.integer):
        if y.ndim != 1 or (y < 0).any():
            raise ValueError(f"{what}: integer y must hold class labels (non-negative, "
                             f"shape [N]); give float targets for regression")
        return what, finite_float(x, f"{what}: x"), y.astype(np.int64)
    if not np.issubdtype(y.dtype, np.floating):
        raise ValueError(f"{what}: y must be integer class labels or float regression "
                         f"targets, got dtype {y.dtype}")
    return what, finite_float(x, f"{what}: x"), finite_float(y, f"{what}: y")


#: Steps of centroid fine-tuning (``compiler.finetune_codebooks``) in ``eie pack --data``.
DATA_FINETUNE_STEPS = 30


def _pack_with_data(model, data, config, *, density, scope, balance, ternary, final_relu,
                    layers, balance_rows=False):
    """Prune while retraining (with ``density``) or not, share, fine-tune the centroids
    (not a ternary codebook), pack; the lines that report it with the held-out accuracy
    (class labels) or mean squared error (float targets) of float, compressed float and
    golden; the pruned float layers; and ``(what, x)`` for the saturation check."""
    import torch

    what, x, y = _read_data(data)
    imported = compiler.model.import_model(model, final_relu=final_relu, order=layers)
    source = imported.layers
    regression = y.dtype != np.int64
    if x.shape[1] != source[0].n_in:
        raise ValueError(f"{what}: x has {x.shape[1]} features, the model takes "
                         f"{source[0].n_in}")
    n_out = source[-1].n_out
    if regression and (y.ndim == 1 and n_out != 1 or y.ndim == 2 and y.shape[1] != n_out):
        raise ValueError(f"{what}: float y (regression targets) of shape {list(y.shape)} "
                         f"does not match the model's {n_out} output(s)")
    if not regression and y.max() >= n_out:
        raise ValueError(f"{what}: label {int(y.max())} needs at least {int(y.max()) + 1} "
                         f"outputs, the model has {n_out}")
    order = np.random.default_rng(0).permutation(len(x))
    n_test = max(1, round(DATA_HOLDOUT * len(x)))
    test, train = order[:n_test], order[n_test:]
    if density is None:
        pruned, how = source, "nothing pruned (no density given), not retrained"
    else:
        make = compiler.regression_train_fn if regression else compiler.classifier_train_fn
        train_fn = make(x[train], y[train], epochs=DATA_EPOCHS)
        with progress.steps("prune and retrain", DATA_STEPS) as advance:
            def counted(module, masks):
                train_fn(module, masks)
                advance()

            pruned = compiler.iterative_prune(source, density, DATA_STEPS, train_fn=counted,
                                              scope=scope, balance=balance,
                                              n_pes=config.n_pes if balance else None)
        how = (f"pruned to density {density:g} while retraining ({DATA_STEPS} steps of "
               f"{DATA_EPOCHS} epochs on {len(train)} samples)")
    for layer, src in zip(pruned, source, strict=True):
        layer.relu = src.relu
    compressed = compiler.compress(pruned, bits=config.weight_bits, ternary=ternary)
    lines = []
    if not ternary:
        with progress.stage("fine-tuning the centroids"):
            tuned, before, after = compiler.finetune_codebooks(
                compressed.layers, x[train], y[train], loss="mse" if regression else
                "cross_entropy", steps=DATA_FINETUNE_STEPS)
        stats = [layer_stats(s, p, q)
                 for s, p, q in zip(source, pruned, tuned, strict=True)]
        compressed = compiler.Compressed(layers=tuned, source=source, stats=stats)
        lines.append(f"centroids fine-tuned ({DATA_FINETUNE_STEPS} steps on {len(train)} "
                     f"samples): training {'MSE' if regression else 'loss'} {before:.4g} -> "
                     f"{after:.4g}")
    compressed.source = source
    compressed.order_source = imported.order_source
    compressed.order_ambiguous = imported.ambiguous
    compressed.order_note = imported.note
    image = compiler.pack(compressed.layers, config, balance_rows=balance_rows)

    x_test = torch.from_numpy(x[test].astype(np.float32))

    def score(outputs) -> float:
        outputs = np.asarray(outputs, np.float64)
        if regression:
            return float(np.mean((outputs.reshape(len(test), -1)
                                  - y[test].reshape(len(test), -1)) ** 2))
        return float(np.mean(np.argmax(outputs, axis=1) == y[test]))

    with torch.no_grad():
        float_score = score(compiler.layers_to_torch(source)(x_test).numpy())
        shared_score = score(compressed.to_torch()(x_test).numpy())
    q = golden_model.run(image, golden_model.quantize_input(x[test], image.config)).q
    golden_score = score(golden_model.dequantize(np.asarray(q), image.config))
    codebook = ("a ternary codebook {0, -Wn, +Wp}" if ternary else
                f"k-means, up to {len(compressed.layers[0].codebook) - 1} values per layer")
    per_layer = ", ".join(f"{s['name']} {s['density']:.3f}/{s['rms_error']:.4g}"
                          for s in compressed.stats)
    metric = "mean squared error" if regression else "accuracy"
    return image, compressed, [
        f"{how}; weights shared by {codebook}", *lines,
        f"per layer density/RMS sharing error: {per_layer}",
        f"held-out {metric} ({n_test} of {len(x)} samples): float {float_score:.4f}, "
        f"compressed float {shared_score:.4f}, golden {golden_score:.4f}"], pruned, (what, x)


def _with_weight_bits(config: EIEConfig, bits) -> tuple[EIEConfig, str | None]:
    """``config`` with ``weight_bits = bits``; when its ``entries_per_word`` entries no longer
    fit a word, the largest power of two that does, and the line that says so."""
    entry_bits = bits + config.index_bits if isinstance(bits, int) else None
    fit = entries_per_word_that_fit(entry_bits) if entry_bits and entry_bits > 0 else []
    if not fit or config.entries_per_word in fit:
        return dataclasses.replace(config, weight_bits=bits), None
    epw = fit[-1]
    return (dataclasses.replace(config, weight_bits=bits, entries_per_word=epw),
            f"entries per word: {epw} ({config.entries_per_word} entries of {entry_bits} bits "
            f"do not fit a {HOST_DATA_BITS}-bit word)")


def _order_line(compressed) -> str:
    names = ", ".join(layer.name for layer in compressed.layers)
    note = f"; the forward pass could not be traced ({compressed.order_note})" \
        if compressed.order_note else ""
    return f"layers (from {compressed.order_source}{note}): {names}"


def _compression_lines(compressed, density, ternary: bool) -> list[str]:
    how = ("a ternary codebook {0, -Wn, +Wp}" if ternary else
           f"k-means, up to {len(compressed.layers[0].codebook) - 1} values per layer")
    pruned = ("nothing pruned (no density given)" if density is None else
              f"pruned to density {density:g} in one shot (no retraining)")
    per_layer = ", ".join(f"{s['name']} {s['rms_error']:.4g}" for s in compressed.stats)
    return [f"{pruned}; weights shared by {how}",
            f"RMS sharing error per layer: {per_layer}"]


def _pack_warnings(compressed, density, scope: str) -> list[str]:
    out = []
    if compressed.order_ambiguous:
        out.append(f"the layer shapes chain in more than one order; the order was taken "
                   f"from {compressed.order_source}; set it with --layers a,b,c (Python: "
                   f"layers=[...])")
    if density is None:
        return out
    stats = compressed.stats
    low = [s for s in stats if s["density"] < 0.5 and s["density"] < s["source_density"]]
    if low:
        which = ", ".join(f"{s['name']} {s['density']:.3f}" for s in low)
        out.append(f"one-shot pruning without retraining left layer(s) under 50% density "
                   f"({which}), which usually costs accuracy; prune while retraining with "
                   f"--data D.npz (arrays x and y; Python: data=...) or "
                   f"compiler.iterative_prune (docs/compression.md)")
    if scope == "global":
        far = [s for s in stats if s["density"] < density / 4]
        if far:
            which = ", ".join(f"{s['name']} {s['density']:.3f}" for s in far)
            out.append(f"global pruning left layer(s) under a quarter of the {density:g} "
                       f"target ({which}); use per-layer pruning (--scope layer) to keep "
                       f"each layer at the target")
    return out


def _inputs(image, x):
    image = as_image(image)
    x = load_input(x, image.n_in)
    return image, x, golden_model.quantize_input(np.atleast_2d(x), image.config)


def _result(output, image, batch_shape, q, cycles, cycles_per_layer, counts) -> dict:
    """The arrays of ``eie golden`` and ``eie sim``, shaped like the input's batch, written
    to ``output`` (``.npz``) when given. ``counts`` is the golden run of the same input,
    whose per-layer ``saturation`` and ``wraps`` counts the RTL shares (it is bit-exact)."""
    q = np.asarray(q).reshape(batch_shape + (image.n_out,))
    per_layer = batch_shape + (len(image.layers),)
    out = {
        "y": golden_model.dequantize(q, image.config),
        "q": q,
        "cycles": np.asarray(cycles, np.int64).reshape(batch_shape),
        "cycles_per_layer": np.asarray(cycles_per_layer, np.int64).reshape(per_layer),
        "saturation": np.asarray(counts.saturation, np.int64).reshape(per_layer),
        "wraps": np.asarray(counts.wraps, np.int64).reshape(per_layer),
        "layers": np.array([info.name for info in image.layers]),
    }
    if output is not None:
        write_npz(output, out)
    return out


def golden(image, x, output=None) -> dict:
    """``eie golden``: bit-exact inference plus the cycle model.

    ``output`` is checked before any work (``eie.inputs.check_output``: not a folder, not
    inside the image folder, a writable place; ``.npz`` is appended when missing, missing
    folders are made) and written only when everything succeeded.

    Returns (and writes to ``output`` when given) ``y`` (float), ``q`` (raw integers),
    ``cycles`` (per sample), ``cycles_per_layer``, and per sample and layer the
    ``saturation`` (write-back values that saturated) and ``wraps`` (accumulators whose
    exact value left the ``acc_bits`` range) counts, with the layer names in ``layers``.
    For an ESE image ``x`` is a frame
    sequence ``[T, n_in]`` or a batch ``[batch, T, n_in]``, and the fields are those of
    ``eie.lstm_api.golden_lstm`` (``cycles`` per frame, ``saturation``, ``wraps``).
    """
    path = None if output is None else check_output(output, image=image)
    image = load_image(image)
    if isinstance(image, LSTMImage):
        out = lstm_api.golden_lstm(image, x)
        if path is not None:
            write_npz(path, out)
        return out
    image, x, q_in = _inputs(image, x)
    result = golden_model.run(image, q_in)
    tiles = golden_model.decode_program(image)
    cycles = [golden_model.cycles(image, q, tiles=tiles)
              for q in _progress(q_in, "cycle model")]
    return _result(path, image, x.shape[:-1], result.q, [c.total for c in cycles],
                   [[layer.cycles for layer in c.layers] for c in cycles], result)


def sim(image, x, output=None, *, waves=None, host: str = "port",
        axi_stall: float = 0.0) -> dict:
    """``eie sim``: run the image on the RTL under Verilator; the fields of :func:`golden`,
    with measured cycles. An ESE image runs on the ESE RTL (``eie.lstm_api.sim_lstm``:
    also ``model_cycles``, ``bit_exact`` and ``cycle_exact``); waves are EIE only.
    ``host="axi"`` runs the host driver (``eie.driver``) on the design behind its AXI4-Lite
    wrapper (``eie.axi_sim``) instead of the testbench on the core's host port, with
    random backpressure ``axi_stall`` (stall probability per channel and cycle)."""
    if host not in ("port", "axi"):
        raise ValueError(f"host must be 'port' or 'axi', not {host!r}")
    if host == "axi" and waves is not None:
        raise ValueError("--waves is not supported with --host axi")
    path = None if output is None else check_output(output, image=image)
    loaded = load_image(image)
    if isinstance(loaded, LSTMImage):
        if waves is not None:
            raise ValueError("--waves is not supported for ESE images yet")
        out = lstm_api.sim_lstm(loaded, x, host=host, axi_stall=axi_stall)
        if path is not None:
            write_npz(path, out)
        return out
    image, x, q_in = _inputs(image, x)
    with progress.stage(f"Verilator build and simulation of {len(q_in)} input(s)"):
        if host == "axi":
            from . import axi_sim  # Amaranth and cocotb only for this path

            result = axi_sim.simulate_axi(image, q_in, stall=axi_stall)
            result["cycles_total"] = result["cycles"]
        else:
            result = runner.simulate(image, q_in, waves=waves)
    return _result(path, image, x.shape[:-1], result["q"], result["cycles_total"],
                   result["cycles_per_layer"], golden_model.run(image, q_in))


def inspect_image(image, output=None) -> str:
    """``eie inspect``: per-layer and per-PE non-zeros, padding, imbalance, memory use and
    the Huffman figure, as a table; for an ESE image also the LSTM layers, the activation
    memory map and the cell memory against their capacity.

    With ``output`` (a folder, made when missing; an existing file is refused before any
    work), also ``output/pe_balance.png``: per layer, each PE's non-zeros and padding
    entries; the text then ends with the line naming it.
    """
    folder = None if output is None else _picture_folder(output)
    image = load_image(image)
    matrices = image.matrices if isinstance(image, LSTMImage) else image
    stats = image_stats(matrices)
    text = lstm_image_stats(image) if isinstance(image, LSTMImage) else stats.format()
    if folder is not None:
        from .plots import pe_balance_png

        png = pe_balance_png(stats)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "pe_balance.png"
        path.write_bytes(png)
        text += f"\n\nwrote {path} (per-PE non-zeros and padding entries per layer)"
    return text


def _picture_folder(output) -> Path:
    """``output`` as a folder to write pictures into: not a file, not under a file."""
    folder = Path(output)
    for parent in (folder, *folder.parents):
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"-o {os.fspath(output)}: {parent} is a file, expected a "
                                 f"folder")
            if not os.access(parent, os.W_OK | os.X_OK) or not parent.stat().st_mode & 0o222:
                raise ValueError(f"-o {os.fspath(output)}: folder {parent} is read-only")
            break
    return folder


def _design(config: EIEConfig | None, image):
    """The design's config and image: with an image, the image's config; a ``config``
    given with it must equal it (the CLI passes the image's config with the flags the user
    gave applied, so a flag equal to EIE's default is still checked)."""
    image = None if image is None else as_image(image)
    if image is None:
        return config or EIEConfig(), None
    if config is not None and config != image.config:
        check_config(image, config)
    return image.config, image


def _ese_design(config, image) -> LSTMImage | None:
    """The ESE image when ``image`` is one (an ``LSTMImage`` or an LSTM image directory),
    else None; a ``config`` given with it must be the image's."""
    if image is None or isinstance(image, PackedImage):
        return None
    if not isinstance(image, LSTMImage):
        if image_kind(image) != "lstm":
            return None
        image = read_lstm_image(image)
    if config is not None and config != image.config:
        raise ConfigError(f"the design takes the ESE image's config (config_id "
                          f"{image.config.config_id:#010x}); the config given differs")
    return image


def verilog(output, config: EIEConfig | None = None, image=None) -> list[Path]:
    """``eie verilog``: the array top's Verilog (and ``$readmemh`` side files for a baked
    image) in ``output``; returns the paths written. An ESE image gives the ESE top
    (``rtl.ese_verilog.generate_ese``, frame rings sized for the image) and its waivers."""
    ese = _ese_design(config, image)
    if ese is not None:
        return generate_ese(ese.config, output, image=ese,
                            slot_words=ese_resources.slot_words_for(ese))
    config, image = _design(config, image)
    return rtl_verilog.generate(config, output, image=image)


def build(output, config: EIEConfig | None = None, image=None, *, board: str = "ku060",
          run: bool = False, clock_hz: float | None = None, pin_file=None) -> Path:
    """``eie build``: a Vivado project for ``board`` in ``output`` (docs/boards.md).

    ``image`` must be an image directory: the project references its memory files.
    ``clock_hz`` (the core clock, default 200 MHz) and ``pin_file`` go to
    ``boards.vivado.write_project``.
    """
    board_args = {"clock_hz": clock_hz, "pin_file": pin_file}
    if board != "ku060":
        raise ValueError(f"board must be 'ku060', not {board!r}")
    if _ese_design(config, image) is not None:     # an ESE image: boards/ese_vivado.py
        if isinstance(image, LSTMImage):
            raise ValueError("an ESE project needs the image directory (it copies its files)")
        return ese_vivado.write_ese_project(output, image, run=run, **board_args)
    config, _ = _design(config, image)
    if not run:
        return vivado.write_project(output, config, image_dir=image, run=run, **board_args)
    with progress.stage("Vivado project (and a Vivado run if vivado is on PATH)"):
        return vivado.write_project(output, config, image_dir=image, run=run, **board_args)


def resources(config: EIEConfig | None = None, output="build/resources", *,
              image=None) -> dict:
    """``eie resources``: the Yosys ``synth_xilinx -family xcu`` estimate of the design
    for ``config``, or for ``image`` (a report dict; ``boards.resources.format_report``
    prints it). An ESE image is estimated by ``boards.ese_resources.estimate_ese`` (parts
    synthesised and projected; ``format_ese_report`` prints it; progress on a terminal)."""
    ese = _ese_design(config, image)
    if ese is not None:
        log = ese_resources.stderr_log if progress.enabled() else None
        return ese_resources.estimate_ese(ese.config, out_dir=output, log=log,
                                          slot_words=ese_resources.slot_words_for(ese))
    if image is not None:
        config, _ = _design(config, image)
    with progress.stage("Yosys synth_xilinx"):
        return board_resources.estimate(config or EIEConfig(), out_dir=output)

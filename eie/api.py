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
from collections.abc import Mapping
from pathlib import Path

import numpy as np

import compiler
import golden as golden_model
from boards import resources as board_resources
from boards import vivado
from compiler.lstm_model import is_lstm_state, load_state
from contract.config import EIEConfig
from contract.errors import ImageError
from contract.image import PackedImage
from contract.image_read import check_config, image_kind, read_image
from contract.image_write import FORMATS, write_image
from contract.lstm_config import ESEConfig
from contract.lstm_image import LSTMImage, read_lstm_image
from rtl import verilog as rtl_verilog
from sim_tests import runner

from . import lstm_api
from .inputs import check_output, finite_float, read_input, write_npz
from .inspect import image_stats, lstm_image_stats

__all__ = ["pack", "pack_report", "golden", "sim", "verilog", "build", "resources",
           "inspect_image", "load_input", "load_sequence", "as_image", "load_image",
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


def pack(model, output=None, *, config: EIEConfig | ESEConfig | None = None, density=None,
         bits=None, balance=False, scope="layer", ternary=False, final_relu=False,
         formats=FORMATS) -> PackedImage | LSTMImage:
    """``eie pack``: compress ``model`` (a state_dict file, a state_dict or an nn.Module)
    and pack it for ``config``; write the image to ``output`` when given.

    An MLP packs for an :class:`EIEConfig` (default ``EIEConfig()``) into a
    :class:`PackedImage`. A model with recurrent weights (``...weight_ih_l0``) packs for an
    :class:`ESEConfig` (default ``ESEConfig()``; an ``EIEConfig`` is taken as its channel,
    see ``eie.lstm_api.lstm_config``) into an :class:`LSTMImage`; ``scope``, ``ternary``
    and ``final_relu`` do not apply to it. ``bits`` sets the (channel's) ``weight_bits``.
    Nothing is written unless every step succeeds.
    """
    return pack_report(model, output, config=config, density=density, bits=bits,
                       balance=balance, scope=scope, ternary=ternary, final_relu=final_relu,
                       formats=formats)[0]


def pack_report(model, output=None, *, config: EIEConfig | ESEConfig | None = None,
                density=None, bits=None, balance=False, scope="layer", ternary=False,
                final_relu=False, formats=FORMATS) -> tuple[PackedImage | LSTMImage, str]:
    """:func:`pack`, and what ``eie pack`` prints about it: for an LSTM what was pruned and
    shared per matrix and the head order, then :func:`inspect_image` of the image."""
    # An MLP is imported again from ``model`` itself: compiler.compress reads ReLU flags
    # from a module and orders a .safetensors file's layers by name.
    state = _state_of(model)
    if isinstance(config, ESEConfig) or (state is not None and is_lstm_state(state)):
        unsupported = [name for name, value in (("scope='global'", scope != "layer"),
                                                ("ternary", ternary),
                                                ("final_relu", final_relu)) if value]
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
    if bits is not None:
        config = dataclasses.replace(config, weight_bits=bits)
    compressed = compiler.compress(model, density=density, bits=config.weight_bits,
                                   scope=scope, balance=balance,
                                   n_pes=config.n_pes if balance else None,
                                   ternary=ternary, final_relu=final_relu)
    image = compiler.pack(compressed.layers, config)
    if output is not None:
        write_image(image, output, formats=formats)
    return image, inspect_image(image)


def _inputs(image, x):
    image = as_image(image)
    x = load_input(x, image.n_in)
    return image, x, golden_model.quantize_input(np.atleast_2d(x), image.config)


def _result(output, image, batch_shape, q, cycles, cycles_per_layer) -> dict:
    """The arrays of ``eie golden`` and ``eie sim``, shaped like the input's batch, written
    to ``output`` (``.npz``) when given."""
    q = np.asarray(q).reshape(batch_shape + (image.n_out,))
    out = {
        "y": golden_model.dequantize(q, image.config),
        "q": q,
        "cycles": np.asarray(cycles, np.int64).reshape(batch_shape),
        "cycles_per_layer": np.asarray(cycles_per_layer, np.int64).reshape(
            batch_shape + (len(image.layers),)),
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
    ``cycles`` (per sample) and ``cycles_per_layer``. For an ESE image ``x`` is a frame
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
                   [[layer.cycles for layer in c.layers] for c in cycles])


def sim(image, x, output=None, *, waves=None) -> dict:
    """``eie sim``: run the image on the RTL under Verilator; the fields of :func:`golden`,
    with measured cycles. An ESE image is refused (``ValueError``): no ESE RTL yet."""
    path = None if output is None else check_output(output, image=image)
    image, x, q_in = _inputs(image, x)
    result = runner.simulate(image, q_in, waves=waves)
    return _result(path, image, x.shape[:-1], result["q"], result["cycles_total"],
                   result["cycles_per_layer"])


def inspect_image(image) -> str:
    """``eie inspect``: per-layer and per-PE non-zeros, padding, imbalance, memory use and
    the Huffman figure, as a table; for an ESE image also the LSTM layers, the activation
    memory map and the cell memory against their capacity."""
    image = load_image(image)
    if isinstance(image, LSTMImage):
        return lstm_image_stats(image)
    return image_stats(image).format()


def _design(config: EIEConfig | None, image):
    """The design's config and image: with an image, the image's config (a ``config``
    other than the default must agree with it)."""
    image = None if image is None else as_image(image)
    config = config or EIEConfig()
    if image is None:
        return config, None
    if config != EIEConfig() and config != image.config:
        check_config(image, config)
    return image.config, image


def verilog(output, config: EIEConfig | None = None, image=None) -> list[Path]:
    """``eie verilog``: the array top's Verilog (and ``$readmemh`` side files for a baked
    image) in ``output``; returns the paths written."""
    config, image = _design(config, image)
    return rtl_verilog.generate(config, output, image=image)


def build(output, config: EIEConfig | None = None, image=None, *, board: str = "ku060",
          run: bool = False) -> Path:
    """``eie build``: a Vivado project for ``board`` in ``output`` (docs/boards.md).

    ``image`` must be an image directory: the project references its memory files.
    """
    if board != "ku060":
        raise ValueError(f"board must be 'ku060', not {board!r}")
    config, _ = _design(config, image)
    return vivado.write_project(output, config, image_dir=image, run=run)


def resources(config: EIEConfig | None = None, output="build/resources") -> dict:
    """``eie resources``: the Yosys ``synth_xilinx -family xcu`` estimate (a report dict;
    ``boards.resources.format_report`` prints it)."""
    return board_resources.estimate(config or EIEConfig(), out_dir=output)

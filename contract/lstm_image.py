"""In-memory form of a packed ESE (sparse-LSTM) image, and its on-disk form as an EIE image
with an ``"lstm"`` extension (docs/ese.md; docs/image-format.md, "Extensions").

The matrices (each layer's gate matrix and projection, then the head layers) are packed as
the layers of one :class:`PackedImage` for the channel config; the LSTM adds the layer
table, the activation memory map, the σ/tanh tables and the peephole memory.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from .errors import ConfigError, ImageError
from .image import ImageExtension, PackedImage
from .image_read import read_image_extension
from .image_write import FORMATS, write_image
from .lstm_config import ESEConfig
from .lstm_layout import MemoryMap, memory_map, padded

__all__ = ["LSTMLayerInfo", "LSTMImage", "write_lstm_image", "read_lstm_image"]


@dataclass(frozen=True)
class LSTMLayerInfo:
    """One LSTM layer of an image.

    Attributes
    ----------
    name : the layer's name (``lstm.l0`` for ``nn.LSTM`` layer 0 under ``lstm.``).
    n_in, hidden, proj : input width ``I``, cells ``H``, ``proj_size`` ``P`` (0: none).
    gates : index in ``matrices.layers`` of the gate matrix ``[W_ih | W_hh]``.
    projection : index of ``W_hr`` (-1 without projection).
    peephole : whether ``p_ci, p_cf, p_co`` are used; ``peep_frac`` their fraction bits.
    cell_base : first cell-memory word of the layer's cells (local cell ``k`` at
        ``cell_base + k``; peephole weights at ``3 * (cell_base + k) + 0..2``).
    """

    name: str
    n_in: int
    hidden: int
    proj: int
    gates: int
    projection: int
    peephole: bool
    peep_frac: int
    cell_base: int

    @property
    def n_out(self) -> int:
        """Width of ``h``: ``proj`` with a projection, else ``hidden``."""
        return self.proj or self.hidden


@dataclass
class LSTMImage:
    """Every memory of an ESE image plus its description.

    - ``matrices``: the channel's :class:`PackedImage` (gate matrices, projections, head).
    - ``sigmoid``, ``tanh``: int64 ``[table_size]`` signed ``gate_bits`` samples.
    - ``peephole``: int64 ``[n_pes, 3 * cell_depth]`` signed ``codebook_bits`` weights.
    """

    config: ESEConfig
    matrices: PackedImage
    layers: list[LSTMLayerInfo]
    head: list[int]
    memory: MemoryMap
    sigmoid: np.ndarray
    tanh: np.ndarray
    peephole: np.ndarray = field(default=None)

    def __post_init__(self):
        if self.peephole is None:
            self.peephole = np.zeros((self.config.n_pes, 3 * self.config.cell_depth), np.int64)

    @property
    def n_in(self) -> int:
        return self.layers[0].n_in

    @property
    def n_out(self) -> int:
        """Width of the output ``y``: the last head layer's, else the last LSTM layer's."""
        if self.head:
            return self.matrices.layers[self.head[-1]].n_out
        return self.layers[-1].n_out


def _extension(image: LSTMImage) -> ImageExtension:
    cfg = image.config
    ch = cfg.channel
    memories = {
        "sigmoid": (cfg.gate_bits, cfg.table_size, image.sigmoid, True),
        "tanh": (cfg.gate_bits, cfg.table_size, image.tanh, True),
    }
    for p in range(cfg.n_pes):
        memories[f"pe{p:03d}_peephole"] = (ch.codebook_bits, 3 * cfg.cell_depth,
                                           image.peephole[p], True)
    data = {"config": cfg.to_dict(), "config_id": cfg.config_id,
            "layers": [dataclasses.asdict(info) for info in image.layers],
            "head": list(image.head), "memory": image.memory.to_dict()}
    return ImageExtension(kind="lstm", data=data, memories=memories, chained=False)


def write_lstm_image(image: LSTMImage, out_dir, formats=FORMATS):
    """Write ``image`` as an EIE image with an ``"lstm"`` extension (atomically, as
    :func:`contract.image_write.write_image`)."""
    return write_image(image.matrices, out_dir, formats, extension=_extension(image))


def _need(cond: bool, msg: str) -> None:
    if not cond:
        raise ImageError(f"manifest.json: lstm: {msg}")


def _signed(words, width: int) -> np.ndarray:
    v = np.asarray(words, np.uint64).astype(np.int64)
    return np.where(v >= (1 << (width - 1)), v - (1 << width), v)


def _layer(rec, k: int, n_matrices: int) -> LSTMLayerInfo:
    names = {f.name: f.type for f in dataclasses.fields(LSTMLayerInfo)}
    _need(isinstance(rec, dict) and set(rec) == set(names),
          f"layer {k} must have exactly the fields {sorted(names)}")
    for name in names:
        value = rec[name]
        if name == "name":
            _need(isinstance(value, str), f"layer {k}: name must be a string")
        elif name == "peephole":
            _need(isinstance(value, bool), f"layer {k}: peephole must be a bool")
        else:
            _need(isinstance(value, int) and not isinstance(value, bool),
                  f"layer {k}: {name} must be an integer")
    info = LSTMLayerInfo(**rec)
    _need(info.n_in >= 1 and info.hidden >= 1 and info.proj >= 0,
          f"layer {k}: sizes must be positive")
    _need(0 <= info.gates < n_matrices and -1 <= info.projection < n_matrices
          and (info.projection == -1) == (info.proj == 0),
          f"layer {k}: matrix indices out of range")
    return info


def read_lstm_image(path) -> LSTMImage:
    """Load and validate an ESE image directory: everything :func:`read_image` checks, plus
    that the LSTM section agrees with the matrices, the memory map and the config.

    Raises
    ------
    ImageError
        anything wrong (the message names it).
    """
    matrices, ext = read_image_extension(path, "lstm")
    data = ext.data
    try:
        cfg = ESEConfig.from_dict(data.get("config"))
    except ConfigError as exc:
        raise ImageError(f"manifest.json: lstm: bad config ({exc})") from None
    _need(data.get("config_id") == cfg.config_id, "config_id does not match its config")
    _need(cfg.channel == matrices.config, "the channel config differs from the image's config")
    n = cfg.n_pes
    mats = matrices.layers
    raw = data.get("layers")
    _need(isinstance(raw, list) and 1 <= len(raw) <= cfg.max_lstm_layers,
          f"'layers' must list 1..{cfg.max_lstm_layers} layers")
    layers = [_layer(rec, k, len(mats)) for k, rec in enumerate(raw)]
    head = data.get("head")
    _need(isinstance(head, list) and all(isinstance(h, int) and not isinstance(h, bool)
                                         and 0 <= h < len(mats) for h in head),
          "'head' must list matrix indices")
    try:
        mem = MemoryMap(**{k: tuple(v) if isinstance(v, list) else v
                           for k, v in data.get("memory", {}).items()})
    except TypeError as exc:
        raise ImageError(f"manifest.json: lstm: bad memory map ({exc})") from None
    _need(mem.words <= cfg.channel.act_depth,
          f"the memory map needs {mem.words} activation words per PE, act_depth is "
          f"{cfg.channel.act_depth}")
    width_in = layers[0].n_in
    cell_next = 0
    for k, info in enumerate(layers):
        gates = mats[info.gates]
        _need(gates.n_out == 4 * padded(info.hidden, n)
              and gates.n_in == padded(width_in, n) + padded(info.n_out, n),
              f"layer {k}: gate matrix {gates.name} is {gates.n_out}x{gates.n_in}")
        if info.proj:
            proj = mats[info.projection]
            _need(proj.n_out == info.proj and proj.n_in == padded(info.hidden, n),
                  f"layer {k}: projection {proj.name} is {proj.n_out}x{proj.n_in}")
        _need(info.n_in == width_in, f"layer {k}: n_in does not chain")
        _need(info.cell_base == cell_next, f"layer {k}: cell_base does not follow")
        cell_next += padded(info.hidden, n) // n
        width_in = info.n_out
    _need(cell_next <= cfg.cell_depth,
          f"{cell_next} cells per PE exceed cell_depth {cfg.cell_depth}")
    for h in head:
        _need(mats[h].n_in == width_in, f"head matrix {mats[h].name} does not chain")
        width_in = mats[h].n_out
    layout = memory_map(layers[0].n_in, [info.n_out for info in layers],
                        [info.hidden for info in layers], [mats[h].n_out for h in head], n)
    _need(mem == layout, f"the memory map {mem.to_dict()} is not the layout's "
                         f"{layout.to_dict()}")
    expected = {"sigmoid": (cfg.gate_bits, cfg.table_size),
                "tanh": (cfg.gate_bits, cfg.table_size)}
    for p in range(n):
        expected[f"pe{p:03d}_peephole"] = (cfg.channel.codebook_bits, 3 * cfg.cell_depth)
    got = {name: (w, d) for name, (w, d, _, _) in ext.memories.items()}
    _need(got == expected, f"memories {sorted(got)} are not {sorted(expected)} with their "
                           f"widths and depths")
    words = {name: words for name, (_, _, words, _) in ext.memories.items()}
    peephole = np.stack([_signed(words[f"pe{p:03d}_peephole"], cfg.channel.codebook_bits)
                         for p in range(n)])
    return LSTMImage(config=cfg, matrices=matrices, layers=layers, head=head, memory=mem,
                     sigmoid=_signed(words["sigmoid"], cfg.gate_bits),
                     tanh=_signed(words["tanh"], cfg.gate_bits), peephole=peephole)

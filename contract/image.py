"""In-memory form of a packed EIE image, shared by compiler, golden model, RTL and CLI.

The on-disk form (``manifest.json`` plus ``.mem``/``.coe``/``.bin`` files) is described in
``docs/image-format.md``; ``contract.image_write`` writes it and ``contract.image_read`` reads it.
This module holds only the container and the tile-descriptor codec, so it imports neither
Amaranth nor torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .config import EIEConfig

__all__ = ["Descriptor", "LayerInfo", "PackedImage", "ImageExtension", "IMAGE_FORMAT_VERSION"]

IMAGE_FORMAT_VERSION = 1


@dataclass(frozen=True)
class Descriptor:
    """One row tile of one layer: the word the array's sequencer reads from ``program``.

    Fields are documented in docs/image-format.md ("program").
    """

    in_local: int
    out_local: int
    out_base: int
    ptr_base: int
    spmat_base: int
    bias_base: int
    slot: int
    shift: int
    relu: bool
    bias_en: bool
    swap: bool
    last: bool

    def encode(self, config: EIEConfig) -> int:
        value, pos = 0, 0
        for name, width in config.descriptor_layout().items():
            v = int(getattr(self, name))
            if not 0 <= v < (1 << width):
                raise ValueError(f"descriptor field {name}={v} does not fit {width} bits")
            value |= v << pos
            pos += width
        return value

    @classmethod
    def decode(cls, word: int, config: EIEConfig) -> Descriptor:
        fields, pos = {}, 0
        for name, width in config.descriptor_layout().items():
            fields[name] = (int(word) >> pos) & ((1 << width) - 1)
            pos += width
        for flag in ("relu", "bias_en", "swap", "last"):
            fields[flag] = bool(fields[flag])
        return cls(**fields)


@dataclass
class LayerInfo:
    """Per-layer facts recorded in the manifest."""

    name: str
    n_in: int
    n_out: int
    slot: int                 # codebook slot
    w_frac: int               # codebook fraction bits == write-back shift
    relu: bool
    has_bias: bool
    codebook: list[float]     # float centroids, index 0 == 0.0
    first_tile: int           # index into the program of this layer's first tile
    n_tiles: int
    nnz: int = 0              # non-zero weights (excluding padding)
    padding: int = 0          # padding entries inserted
    # float bias as given to the packer (None when the layer has no bias), in hardware row
    # order like the memories
    bias: list[float] | None = None
    # balanced row assignment (``pack(..., balance_rows=True)``): hardware output row h is
    # the model's row row_order[h], and the next layer's column h the model's column
    # row_order[h]. None: the identity (every image packed without it).
    row_order: list[int] | None = None


@dataclass
class PackedImage:
    """Every memory of one EIE array image, as integers, plus its description.

    Arrays (unsigned raw words unless noted):

    - ``spmat``     uint64 ``[n_pes, spmat_depth]``: 64-bit words of 8 entries.
    - ``ptr_even``  uint32 ``[n_pes, ptr_depth]``; ``ptr_odd`` likewise.
    - ``bias``      int64  ``[n_pes, bias_depth]``: signed accumulator-format biases.
    - ``codebook``  int64  ``[max_layers * 2**weight_bits]``: signed codebook values.
    - ``program``   list[Descriptor], one per tile, in execution order.
    """

    config: EIEConfig
    layers: list[LayerInfo]
    spmat: np.ndarray
    ptr_even: np.ndarray
    ptr_odd: np.ndarray
    bias: np.ndarray
    codebook: np.ndarray
    program: list[Descriptor]
    # per-PE usage: entries (incl. padding), padding entries, words, pointer/bias entries
    stats: dict = field(default_factory=dict)

    @property
    def n_in(self) -> int:
        return self.layers[0].n_in

    @property
    def n_out(self) -> int:
        return self.layers[-1].n_out

    def model_order(self, q):
        """Outputs ``q`` [..., n_out] in hardware row order -> the model's order (the last
        layer's ``row_order``; ``q`` itself when the rows were not reordered)."""
        order = self.layers[-1].row_order if self.layers else None
        if order is None:
            return q
        q = np.asarray(q)
        out = np.empty_like(q)
        out[..., np.asarray(order, np.int64)] = q
        return out

    @property
    def output_bank(self) -> int:
        """Activation buffer (0 or 1) holding the final output after the program runs."""
        return sum(d.swap for d in self.program) % 2

    @classmethod
    def empty(cls, config: EIEConfig, layers=None, program=None) -> PackedImage:
        n = config.n_pes
        return cls(
            config=config,
            layers=list(layers or []),
            spmat=np.zeros((n, config.spmat_depth), np.uint64),
            ptr_even=np.zeros((n, config.ptr_depth), np.uint32),
            ptr_odd=np.zeros((n, config.ptr_depth), np.uint32),
            bias=np.zeros((n, config.bias_depth), np.int64),
            codebook=np.zeros(config.max_layers * config.codebook_size, np.int64),
            program=list(program or []),
        )


@dataclass
class ImageExtension:
    """What an engine built on the EIE array (ESE's LSTM scheduler) adds to an image.

    The EIE part of the image (the matrices' memories and tile program) is written and read
    as for an MLP; the extension adds memories of its own and a JSON section under
    ``manifest["extension"]`` (docs/image-format.md, "Extensions"). The engine's own reader
    checks that the memories and the section are what its config needs.

    Attributes
    ----------
    kind : the engine (``"lstm"``); a plain reader refuses an image with an extension.
    data : JSON-compatible description, written as ``manifest["extension"]["data"]``.
    memories : ``name -> (width, depth, words, signed)``, written like the EIE memories.
    chained : whether consecutive layers chain (layer ``k + 1``'s ``n_in`` equals layer
        ``k``'s ``n_out``); an engine whose matrices read different vectors sets False.
    """

    kind: str
    data: dict = field(default_factory=dict)
    memories: dict = field(default_factory=dict)
    chained: bool = True

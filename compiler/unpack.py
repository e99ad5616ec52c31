"""Unpacker: an image's index matrices, weights and biases decoded back from its raw memories
(words, pointer banks, descriptors) with the contract layer's decoder (``contract.decode``),
the one the golden model executes. ``unpack(pack(layers))`` is the identity on the indices.
"""

from __future__ import annotations

import numpy as np

from contract.decode import column_pointers, decode_pe
from contract.errors import ImageDecodeError
from contract.image import Descriptor, LayerInfo, PackedImage

__all__ = ["unpack", "unpack_values"]


def _tile_matrix(image: PackedImage, info: LayerInfo, d: Descriptor, t: int, out: np.ndarray):
    """Decode tile ``t`` of one layer from the raw memories into ``out`` (indices)."""
    n = image.config.n_pes
    row0 = t * image.config.rows_per_tile
    where = f"layer {info.name} tile {t}"
    pointers = column_pointers(image, d, info.n_in, where=where)
    for p in range(n):
        if pointers[p, -1] == 0:
            continue
        entries = decode_pe(image, d, p, pointers[p], where=where)
        keep = entries.v != 0
        rows = row0 + entries.rows[keep] * n + p
        if rows.size and int(rows.max()) >= info.n_out:
            raise ImageDecodeError(f"{where}: PE {p} has a non-zero entry at row "
                                   f"{int(rows.max())}, past the layer's {info.n_out} rows")
        out[rows, entries.cols[keep]] = entries.v[keep]


def unpack(image: PackedImage) -> list[np.ndarray]:
    """Decode every layer's codebook-index matrix ``[n_out, n_in]`` (uint8) from the memories.

    Only the raw words, pointer banks and program descriptors are used (plus each layer's
    ``n_in``/``n_out``/``first_tile``/``n_tiles`` from ``image.layers``).

    Raises
    ------
    contract.errors.ImageDecodeError
        (an ``ImageError``) when pointers or entries are inconsistent (a corrupt image), or
        a non-zero entry lands on a row past the layer's ``n_out``.
    """
    result = []
    for info in image.layers:
        out = np.zeros((info.n_out, info.n_in), np.uint8)
        for t in range(info.n_tiles):
            _tile_matrix(image, info, image.program[info.first_tile + t], t, out)
        result.append(out)
    return result


def unpack_values(image: PackedImage) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Integer weights and biases as the array sees them.

    Returns
    -------
    values : list of int64 ``[n_out, n_in]``: the signed codebook value of every weight
        (``w_frac`` fraction bits), read through the layer's codebook slot.
    biases : list of int64 ``[n_out]``: accumulator-format biases read from the bias
        memory (``act_frac + w_frac`` fraction bits); all zeros for layers without bias.
    """
    cfg = image.config
    cs = cfg.codebook_size
    values, biases = [], []
    for info, idx in zip(image.layers, unpack(image), strict=True):
        first = image.program[info.first_tile]
        values.append(image.codebook[first.slot * cs + idx.astype(np.int64)].astype(np.int64))
        bias = np.zeros(info.n_out, np.int64)
        for t in range(info.n_tiles):
            d = image.program[info.first_tile + t]
            if not d.bias_en:
                continue
            seg = image.bias[:, d.bias_base:d.bias_base + d.out_local].T.reshape(-1)
            row0 = t * cfg.rows_per_tile
            rows = min(cfg.rows_per_tile, info.n_out - row0)
            bias[row0:row0 + rows] = seg[:rows]
        biases.append(bias)
    return values, biases

"""The one decoder of a tile's sparse-matrix entries (docs/image-format.md, "Sparse matrix
entries" and "Column pointers").

The golden model executes what this returns (``golden.decode_tile``), the unpacker rebuilds
the index matrices from it (``compiler.unpack``) and ``eie inspect`` counts its raw entries
(padding included) for the Huffman figure. It reads only the raw memories and one
descriptor, in three steps a caller can also take one by one:

1. :func:`column_pointers`: ``P_0 .. P_n`` of every PE from the even/odd pointer banks;
2. :func:`raw_entries` and :func:`split_entries`: one PE's entries ``(v, z)`` from the
   packed spmat words, first entry in the least-significant bits;
3. :func:`entry_positions`: each entry's local row and column by the relative-index rule
   ``r_k = r_{k-1} + z_k + 1`` with ``r_{-1} = -1``, restarted at each column.

:func:`decode_pe` does steps 2 and 3 for one PE. Every range check the hardware would
silently get wrong raises :class:`contract.errors.ImageDecodeError`, whose message starts
with the caller's ``where`` (e.g. ``"tile 3 (layer 1)"``). NumPy only.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .config import EIEConfig
from .errors import ImageDecodeError
from .image import Descriptor, PackedImage

__all__ = ["PEEntries", "column_pointers", "raw_entries", "split_entries", "entry_positions",
           "decode_pe"]


class PEEntries(NamedTuple):
    """Every entry of one PE's part of one tile, in stream order (column by column).

    Attributes
    ----------
    v : int64 [E] codebook index (0 for a padding entry or an explicit zero).
    z : int64 [E] relative index: zero rows skipped since the previous entry.
    rows : int64 [E] local row (accumulator) of the entry.
    cols : int64 [E] column (activation index) of the entry.
    """

    v: np.ndarray
    z: np.ndarray
    rows: np.ndarray
    cols: np.ndarray


def column_pointers(image: PackedImage, desc: Descriptor, n_cols: int, *,
                    where: str = "tile") -> np.ndarray:
    """Column pointers ``P_0 .. P_{n_cols}`` of every PE for the tile of ``desc``.

    ``P_j`` sits in the even bank at ``ptr_base + j/2`` for even ``j``, in the odd bank at
    ``ptr_base + (j-1)/2`` for odd ``j``. Column ``j`` of PE ``p`` holds the tile's entries
    ``[P[p, j], P[p, j+1])``.

    Returns
    -------
    int64 [n_pes, n_cols + 1]

    Raises
    ------
    ImageDecodeError
        ``P_{n_cols}`` lies past ``ptr_depth``; a PE's pointers decrease (the lowest such
        PE is named); a PE's ``P_0`` is not 0 (checked after the decrease of every PE).
    """
    cfg = image.config
    last = desc.ptr_base + n_cols // 2                  # bank address of P_{n_cols}
    if last >= cfg.ptr_depth:
        raise ImageDecodeError(f"{where}: pointer address {last} is past ptr_depth "
                               f"{cfg.ptr_depth}")
    half = n_cols // 2 + 1
    pointers = np.empty((cfg.n_pes, 2 * half), np.int64)
    pointers[:, 0::2] = image.ptr_even[:, desc.ptr_base:desc.ptr_base + half]
    pointers[:, 1::2] = image.ptr_odd[:, desc.ptr_base:desc.ptr_base + half]
    pointers = pointers[:, :n_cols + 1]
    decrease = pointers[:, 1:] < pointers[:, :-1]
    if np.any(decrease):
        p = int(np.argwhere(decrease)[0, 0])
        raise ImageDecodeError(f"{where}: PE {p} column pointers decrease")
    nonzero_first = np.flatnonzero(pointers[:, 0])
    if nonzero_first.size:
        p = int(nonzero_first[0])
        raise ImageDecodeError(f"{where}: PE {p} first pointer P_0 is {int(pointers[p, 0])}, "
                               "not 0")
    return pointers


def raw_entries(image: PackedImage, desc: Descriptor, pe: int, count: int, *,
                where: str = "tile") -> np.ndarray:
    """The first ``count`` raw entries ``v | z << weight_bits`` of PE ``pe``'s part of the
    tile: entry ``e`` is bits ``[entry_bits*(e mod m) +: entry_bits]`` of spmat word
    ``spmat_base + e div m`` (``m = entries_per_word``).

    Returns
    -------
    int64 [count]

    Raises
    ------
    ImageDecodeError
        The entries run past ``spmat_depth`` (never for ``count = 0``: nothing is read).
    """
    cfg = image.config
    epw, ebits = cfg.entries_per_word, cfg.entry_bits
    n_words = -(-count // epw)
    if count and desc.spmat_base + n_words > cfg.spmat_depth:
        raise ImageDecodeError(f"{where}: PE {pe} entries run past spmat_depth "
                               f"{cfg.spmat_depth}")
    words = image.spmat[pe, desc.spmat_base:desc.spmat_base + n_words].astype(np.uint64)
    shifts = np.arange(epw, dtype=np.uint64) * np.uint64(ebits)
    entries = (words[:, None] >> shifts) & np.uint64((1 << ebits) - 1)
    return entries.reshape(-1)[:count].astype(np.int64)


def split_entries(entries: np.ndarray, config: EIEConfig) -> tuple[np.ndarray, np.ndarray]:
    """``(v, z)`` of raw entries (int64, as :func:`raw_entries` returns them): the low
    ``weight_bits`` and the ``index_bits`` above."""
    return entries & ((1 << config.weight_bits) - 1), entries >> config.weight_bits


def entry_positions(z: np.ndarray, pointers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Local row and column of each entry of one PE's part of a tile.

    Parameters
    ----------
    z : int [E] relative indices of the entries, in stream order.
    pointers : int [n_cols + 1] that PE's column pointers (``P_0 = 0``, non-decreasing,
        ``P_{n_cols} = E``).

    Returns
    -------
    (rows, cols) : int64 [E] each. Within a column ``rows`` follows
    ``r_k = r_{k-1} + z_k + 1`` from ``r_{-1} = -1``.
    """
    z = np.asarray(z, np.int64)
    pointers = np.asarray(pointers, np.int64)
    lengths = np.diff(pointers)
    cols = np.repeat(np.arange(lengths.size), lengths)
    # A cumulative sum of (z + 1) over the whole stream, minus its value just before each
    # column's first entry: a segmented sum without a Python loop over columns.
    steps = np.cumsum(z + 1)
    before = np.concatenate(([0], steps))[pointers[:-1]]
    rows = steps - np.repeat(before, lengths) - 1
    return rows, cols


def decode_pe(image: PackedImage, desc: Descriptor, pe: int, pointers: np.ndarray, *,
              where: str = "tile") -> PEEntries:
    """Every entry of PE ``pe``'s part of the tile of ``desc``, located.

    Parameters
    ----------
    pointers : int [n_cols + 1] the PE's row of :func:`column_pointers`.

    Raises
    ------
    ImageDecodeError
        The entries run past ``spmat_depth``, or a non-zero entry's local row is not below
        ``out_local`` (rows of padding entries are not checked: they add nothing).
    """
    pointers = np.asarray(pointers, np.int64)
    entries = raw_entries(image, desc, pe, int(pointers[-1]), where=where)
    v, z = split_entries(entries, image.config)
    rows, cols = entry_positions(z, pointers)
    # Only non-zero entries must lie in the tile, but a packer never ends a column with
    # padding, so the plain maximum (one reduction) settles every valid image.
    if rows.size and int(rows.max()) >= desc.out_local:
        top = int(np.max(rows, where=v != 0, initial=-1))
        if top >= desc.out_local:
            raise ImageDecodeError(
                f"{where}: PE {pe} has a non-zero entry at local row {top}, past the tile "
                f"(out_local {desc.out_local})")
    return PEEntries(v, z, rows, cols)

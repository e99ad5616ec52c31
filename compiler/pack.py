"""Vectorised packer: quantized layers -> per-PE memories and tile program
(docs/image-format.md), as used by ``eie pack``.

The fixed-point numerics are in ``compiler.fixed_point``, the allocation rules both packers
share in ``compiler.layout``; ``compiler.pack_reference`` is the loop-per-weight packer
producing the identical image and ``compiler.unpack`` decodes an image back.
"""

from __future__ import annotations

import numpy as np

from contract.config import EIEConfig
from contract.image import PackedImage

from . import balance
from .fixed_point import layer_numerics, warn_wrap
from .layout import Layout, check_packer_config, layer_infos, pe_stats, validate_layers
from .types import QuantLayer

__all__ = ["pack"]


def _encode_tile(block: np.ndarray, config: EIEConfig):
    """CSC entry stream of one tile for all PEs at once.

    Returns ``(stream, ptr, nnz, pad)``: ``stream`` holds every PE's entries (uint64), PE
    after PE; ``ptr`` ``[N, n_in+1]`` the relative column pointers; ``nnz``/``pad`` per PE.
    """
    n = config.n_pes
    rows, n_in = block.shape
    out_local = -(-rows // n)
    padded = np.zeros((out_local * n, n_in), np.uint8)
    padded[:rows] = block
    # cube[p, j, r] = weight of local row r, column j in PE p; C-order nonzero gives the
    # entries sorted by PE, then column, then row: exactly the CSC stream order.
    cube = np.ascontiguousarray(padded.reshape(out_local, n, n_in).transpose(1, 2, 0))
    p, j, r = np.nonzero(cube)
    v = cube[p, j, r].astype(np.uint64)
    col = p * n_in + j
    prev = np.empty_like(r)
    if r.size:
        prev[0] = -1
        prev[1:] = r[:-1]
        prev[1:][col[1:] != col[:-1]] = -1
    gap = r - prev - 1                                   # zero rows before each non-zero
    step = config.max_run + 1
    npad, z = np.divmod(gap, step)
    count = npad + 1
    ends = np.cumsum(count)
    stream = np.full(int(ends[-1]) if ends.size else 0,
                     config.max_run << config.weight_bits, np.uint64)
    stream[ends - 1] = v | (z.astype(np.uint64) << np.uint64(config.weight_bits))
    lens = np.bincount(col, weights=count, minlength=n * n_in).astype(np.int64)
    ptr = np.zeros((n, n_in + 1), np.int64)
    np.cumsum(lens.reshape(n, n_in), axis=1, out=ptr[:, 1:])
    nnz = np.bincount(p, minlength=n)
    pad = np.bincount(p, weights=npad, minlength=n).astype(np.int64)
    return stream, ptr, nnz, pad


def _words(entries: np.ndarray, config: EIEConfig) -> np.ndarray:
    """Pack entries (uint64) into words, first entry in the least-significant bits."""
    epw = config.entries_per_word
    n_words = -(-entries.size // epw)
    padded = np.zeros(n_words * epw, np.uint64)
    padded[:entries.size] = entries
    shifts = (np.arange(epw, dtype=np.uint64) * np.uint64(config.entry_bits))
    return (padded.reshape(n_words, epw) << shifts).sum(axis=1, dtype=np.uint64)


def pack(layers: list[QuantLayer], config: EIEConfig, chain: bool = True,
         balance_rows: bool = False) -> PackedImage:
    """Pack quantized layers into an EIE image (vectorised).

    Parameters
    ----------
    layers : the model's layers in execution order; layer ``k`` uses codebook slot ``k``.
    config : the architecture the image is packed for.
    chain : whether layer ``k + 1`` reads layer ``k``'s output (an MLP); False for an
        engine whose matrices read different vectors (ESE's LSTM).
    balance_rows : assign output rows to PEs to balance their entries instead of row
        ``i`` to PE ``i mod N`` (``compiler.balance``); the orders go to
        ``LayerInfo.row_order``. Needs ``chain`` (an MLP).

    Returns
    -------
    PackedImage
        Every memory at full depth, the tile program, per-layer info and per-PE stats.

    Raises
    ------
    ModelError
        malformed layers (shapes, indices, NaN/Inf, layer chaining).
    CapacityError
        the model does not fit a memory; the message names the memory, the PE and the
        bytes needed versus available.
    """
    check_packer_config(config)
    validate_layers(layers, config, chain)
    orders = None
    if balance_rows:
        if not chain:
            raise ValueError("balance_rows needs chained layers (an MLP)")
        layers, orders = balance.balance_rows(list(layers), config)
    layout = Layout(layers, config)
    w_fracs, qcodebooks, qbiases = layer_numerics(layers, config)
    warn_wrap(layers, qcodebooks, qbiases, config)
    n = config.n_pes
    encoded = []
    n_tiles = len(layout.tiles)
    entries = np.zeros((n_tiles, n), np.int64)
    padding = np.zeros((n_tiles, n), np.int64)
    nnz = np.zeros((n_tiles, n), np.int64)
    for i, (k, _t, row0, rows, _out_local) in enumerate(layout.tiles):
        block = np.asarray(layers[k].indices[row0:row0 + rows]).astype(np.uint8)
        stream, ptr, nz, pad = _encode_tile(block, config)
        encoded.append((stream, ptr))
        entries[i] = ptr[:, -1]
        padding[i], nnz[i] = pad, nz
    spmat_bases = layout.spmat_bases(entries)

    image = PackedImage.empty(config, layer_infos(layers, config, w_fracs, layout),
                              layout.descriptors(spmat_bases, w_fracs))
    epw = config.entries_per_word
    for i, (k, _t, row0, rows, out_local) in enumerate(layout.tiles):
        stream, ptr = encoded[i]
        starts = np.concatenate(([0], np.cumsum(entries[i])))
        base = spmat_bases[i]
        for p in range(n):
            if entries[i, p]:
                words = _words(stream[starts[p]:starts[p + 1]], config)
                image.spmat[p, base:base + words.size] = words
        pb = layout.ptr_base[i]
        even, odd = ptr[:, 0::2], ptr[:, 1::2]
        image.ptr_even[:, pb:pb + even.shape[1]] = even
        image.ptr_odd[:, pb:pb + odd.shape[1]] = odd
        if layers[k].bias is not None:
            seg = np.zeros(out_local * n, np.int64)
            seg[:rows] = qbiases[k][row0:row0 + rows]
            bb = layout.bias_base[i]
            image.bias[:, bb:bb + out_local] = seg.reshape(out_local, n).T
    for k, q in enumerate(qcodebooks):
        image.codebook[k * config.codebook_size:(k + 1) * config.codebook_size] = q
    for info in image.layers:
        sl = slice(info.first_tile, info.first_tile + info.n_tiles)
        info.nnz, info.padding = int(nnz[sl].sum()), int(padding[sl].sum())
    pe_stats(image, layout, entries, padding, -(-entries // epw))
    for info, order in zip(image.layers, orders or [], strict=False):
        info.row_order = order
    return image

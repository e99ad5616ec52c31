"""Bit-exact golden model of the EIE array: the executable form of docs/numerics.md.

The model reads the same memories the hardware reads (``PackedImage.spmat``, the pointer
banks, ``bias``, ``codebook`` and the ``program`` of tile descriptors) and executes the
program tile by tile, with the two activation buffers, the interleaving and the
write-back rule of the hardware. It never imports the compiler: the memories are decoded by
the contract layer's image-format decoder (``contract.decode``), the specification of what
the hardware reads, which the unpacker and ``eie inspect`` share.

Arithmetic is vectorised: a tile is decoded into flat entry arrays once, and a tile's
matrix-vector product over a whole batch is one gather-multiply-segment-sum in ``uint64``
(two's-complement wrap modulo 2**64, then reduced modulo 2**acc_bits, which is exact
because ``acc_bits <= 62``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from contract.config import EIEConfig
from contract.decode import column_pointers, decode_pe
from contract.errors import ImageDecodeError
from contract.image import Descriptor, PackedImage

__all__ = [
    "GoldenResult", "Tile", "ImageDecodeError", "quantize_input", "dequantize", "wrap",
    "write_back", "decode_tile", "decode_program", "run", "infer",
]

# Upper bound on the size of one temporary [entries, batch] product array.
_CHUNK_ELEMENTS = 1 << 22


# ---- numerics ---------------------------------------------------------------------------

def quantize_input(x, config: EIEConfig) -> np.ndarray:
    """Float input -> raw activations (docs/numerics.md, "Input quantization").

    ``q = clip(rint(x * 2**act_frac), -2**(act_bits-1), 2**(act_bits-1) - 1)`` with
    round-half-to-even. Any shape; returns int64 of the same shape.
    """
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"input holds {int(np.sum(~np.isfinite(x)))} NaN/Inf values")
    lo, hi = -(1 << (config.act_bits - 1)), (1 << (config.act_bits - 1)) - 1
    return np.clip(np.rint(x * float(1 << config.act_frac)), lo, hi).astype(np.int64)


def dequantize(q, config: EIEConfig) -> np.ndarray:
    """Raw activations -> float64 (``q / 2**act_frac``)."""
    return np.asarray(q, dtype=np.float64) / float(1 << config.act_frac)


def wrap(x: np.ndarray, bits: int) -> np.ndarray:
    """Two's-complement wrap of integers (int64 or uint64) to signed ``bits`` (<= 63)."""
    u = np.asarray(x).astype(np.uint64) & np.uint64((1 << bits) - 1)
    s = u.astype(np.int64)
    return np.where(s >= (1 << (bits - 1)), s - (1 << bits), s)


def write_back(acc: np.ndarray, shift: int, relu: bool, config: EIEConfig):
    """Write-back rule of docs/numerics.md: round half up, arithmetic shift, saturate, ReLU.

    Parameters
    ----------
    acc : int64 array of signed ``acc_bits`` accumulator values.
    shift : the layer's ``w_frac`` (0..63).
    relu : apply ReLU after saturation.

    Returns
    -------
    (y, saturated) : int64 activations and a bool mask of the entries that saturated.
    """
    acc = np.asarray(acc, dtype=np.int64)
    if shift > 0:
        # acc_bits <= 62, so acc + 2**(shift-1) cannot overflow int64 (the "acc_bits + 1
        # bits" of the spec).
        t = (acc + np.int64(1 << (shift - 1))) >> np.int64(shift)
    else:
        t = acc.copy()
    lo, hi = -(1 << (config.act_bits - 1)), (1 << (config.act_bits - 1)) - 1
    saturated = (t < lo) | (t > hi)
    y = np.clip(t, lo, hi)
    if relu:
        y = np.maximum(y, 0)
    return y.astype(np.int64), saturated


# ---- decoding ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Tile:
    """One tile of the program, decoded from the memories.

    Rows are *tile rows* ``r * n_pes + p`` (PE ``p``, local row/accumulator ``r``), so tile
    row ``k`` is written back to activation ``out_base * n_pes + k``. Only entries with a
    non-zero codebook index are kept (padding and explicit zeros add nothing).

    Attributes
    ----------
    index : position in the program.
    desc : the descriptor.
    layer : layer number (count of ``swap`` descriptors before this tile).
    n_cols : columns decoded: ``min(layer n_in, in_local * n_pes)``.
    rows, cols : int64 [E] tile row and column of each kept entry, grouped by row (PE by
        PE, then local row, then column).
    indices : int64 [E] codebook index ``v`` (1 .. 2**weight_bits - 1).
    values : int64 [E] signed codebook value ``codebook[slot * 2**weight_bits + v]``.
    lengths : int64 [n_pes, in_local * n_pes] entries (including padding) per column and
        PE; what the PE spends on a broadcast column (0 for columns >= n_cols).
    bias : int64 [out_local * n_pes] preload value of each tile row (0 if ``bias_en=0``).
    """

    index: int
    desc: Descriptor
    layer: int
    n_cols: int
    rows: np.ndarray
    cols: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    lengths: np.ndarray
    bias: np.ndarray

    @property
    def n_rows(self) -> int:
        return int(self.bias.shape[0])

    def dense(self) -> np.ndarray:
        """int64 [out_local * n_pes, n_cols] codebook values (tile-row order)."""
        w = np.zeros((self.n_rows, self.n_cols), np.int64)
        w[self.rows, self.cols] = self.values
        return w

    def dense_indices(self) -> np.ndarray:
        """int64 [out_local * n_pes, n_cols] codebook indices (tile-row order)."""
        w = np.zeros((self.n_rows, self.n_cols), np.int64)
        w[self.rows, self.cols] = self.indices
        return w


def _layer_numbers(image: PackedImage) -> list[int]:
    """Layer number of every descriptor: the count of ``swap`` descriptors before it."""
    swaps = np.array([int(d.swap) for d in image.program], np.int64)
    return (np.cumsum(swaps) - swaps).tolist()


def _executed_tiles(image: PackedImage) -> int:
    """Descriptors the sequencer executes: up to and including the first ``last`` one."""
    for t, desc in enumerate(image.program):
        if desc.last:
            return t + 1
    raise ImageDecodeError(f"program of {len(image.program)} descriptor(s) has no tile "
                           "with last=1: the array would never raise done")


def decode_tile(image: PackedImage, tile_index: int) -> Tile:
    """Decode tile ``tile_index`` of the program from the image's memories.

    Pointers, entries and their local rows come from the image-format decoder
    (``contract.decode``: docs/image-format.md); values from codebook slot ``slot``.

    Columns ``j >= n_in`` of the layer (``LayerInfo.n_in``) are not part of the tile: the
    hardware never reads their pointers because their activations are zero (checked by
    :func:`run`). Without layer information all ``in_local * n_pes`` columns are decoded.

    Raises
    ------
    ImageDecodeError
        Addresses past a memory's depth, decreasing pointers, a non-zero entry whose local
        row is not below ``out_local``, or a non-zero value at codebook index 0.
    """
    cfg = image.config
    n = cfg.n_pes
    desc = image.program[tile_index]
    layer = _layer_numbers(image)[tile_index]
    width = desc.in_local * n
    n_cols = width
    if layer < len(image.layers):
        n_cols = min(image.layers[layer].n_in, width)
    where = f"tile {tile_index} (layer {layer})"
    if desc.out_local > cfg.acc_depth:
        raise ImageDecodeError(f"{where}: out_local {desc.out_local} exceeds the "
                               f"{cfg.acc_depth} accumulators per PE")
    if desc.in_local > cfg.act_depth:
        raise ImageDecodeError(f"{where}: in_local {desc.in_local} exceeds act_depth "
                               f"{cfg.act_depth}")

    pointers = column_pointers(image, desc, n_cols, where=where)     # [n, n_cols + 1]
    lengths = np.zeros((n, width), np.int64)
    lengths[:, :n_cols] = np.diff(pointers, axis=1)

    rows_all, cols_all, v_all = [], [], []
    for p in range(n):
        if pointers[p, -1] == 0:
            continue
        entries = decode_pe(image, desc, p, pointers[p], where=where)
        keep = entries.v != 0
        row, col, v = entries.rows[keep], entries.cols[keep], entries.v[keep]
        # Group by local row (stable, so columns stay ascending within a row); a small-int
        # stable argsort is a radix sort.
        order = np.argsort(row.astype(np.int32 if cfg.acc_depth >= 1 << 15 else np.int16),
                           kind="stable")
        rows_all.append(row[order] * n + p)
        cols_all.append(col[order])
        v_all.append(v[order])

    if rows_all:
        rows = np.concatenate(rows_all)
        cols = np.concatenate(cols_all)
        indices = np.concatenate(v_all)
    else:
        rows = cols = indices = np.zeros(0, np.int64)

    cb_base = desc.slot * cfg.codebook_size
    if desc.slot >= cfg.max_layers:
        raise ImageDecodeError(f"{where}: codebook slot {desc.slot} >= max_layers")
    codebook = wrap(image.codebook[cb_base:cb_base + cfg.codebook_size], cfg.codebook_bits)
    if codebook[0] != 0:
        raise ImageDecodeError(f"codebook slot {desc.slot} index 0 holds {int(codebook[0])}, "
                               "not 0 (index 0 is reserved for zero)")
    values = codebook[indices]

    bias = np.zeros(desc.out_local * n, np.int64)
    if desc.bias_en:
        if desc.bias_base + desc.out_local > cfg.bias_depth:
            raise ImageDecodeError(f"{where}: bias addresses run past bias_depth")
        # Tile row r * n + p reads bias[p, bias_base + r].
        b = image.bias[:, desc.bias_base:desc.bias_base + desc.out_local]   # [n, out_local]
        bias = wrap(b.T.reshape(-1), cfg.acc_bits)
    return Tile(tile_index, desc, layer, n_cols, rows, cols, indices, values, lengths, bias)


def decode_program(image: PackedImage) -> list[Tile]:
    """Every tile the program executes (up to and including the ``last`` one), decoded."""
    return [decode_tile(image, t) for t in range(_executed_tiles(image))]


def _segment_matvec(rows, cols, values, n_rows: int, a: np.ndarray, dtype) -> np.ndarray:
    """``out[b, i] = sum over entries e with rows[e] == i of values[e] * a[b, cols[e]]``.

    Equal ``rows`` must be contiguous (grouped). ``dtype`` is ``np.uint64`` (wrapping
    integer arithmetic) or ``np.float64``. Returns ``[batch, n_rows]``.
    """
    batch = a.shape[0]
    out = np.zeros((batch, n_rows), dtype)
    if rows.size == 0 or batch == 0:
        return out
    starts = np.flatnonzero(np.concatenate(([True], rows[1:] != rows[:-1])))
    uniq = rows[starts]
    vals = values.astype(dtype)[:, None]
    step = max(1, _CHUNK_ELEMENTS // rows.size)
    for b0 in range(0, batch, step):
        part = a[b0:b0 + step].astype(dtype)            # [bc, n_cols]
        prod = vals * part[:, cols].T                    # [E, bc]
        out[b0:b0 + step, uniq] = np.add.reduceat(prod, starts, axis=0).T
    return out


# ---- execution --------------------------------------------------------------------------

@dataclass
class GoldenResult:
    """Outputs of :func:`run`. Leading batch axis only when the input had one.

    Attributes
    ----------
    q : int64 [batch, n_out] raw output activations (the final buffer's first n_out), in
        the model's order (``PackedImage.model_order``: a balanced image's rows are
        reordered; ``layer_q`` and ``tile_acc`` keep the hardware order).
    y : float64 [batch, n_out] ``q / 2**act_frac``.
    layer_q : per layer, int64 [batch, n_out_k] raw outputs of that layer.
    layer_inputs : per layer, int64 [batch, in_local * n_pes]: the source buffer the
        layer's LNZD scans (activation ``j`` at column ``j``); what the cycle model uses.
    saturation : int64 [batch, n_layers] write-back values that saturated, per layer.
    wraps : int64 [batch, n_layers] accumulators whose exact value left the signed
        ``acc_bits`` range (so the wrapped result is far from float; still bit-exact).
    tile_acc : with ``trace=True``, per executed tile, int64 [batch, out_local * n_pes]
        accumulators (tile-row order ``r * n_pes + p``) just before write-back.
    """

    q: np.ndarray
    y: np.ndarray
    layer_q: list
    layer_inputs: list
    saturation: np.ndarray
    wraps: np.ndarray
    tile_acc: list | None = None


def _count_wraps(tile: Tile, a: np.ndarray, total: np.ndarray, acc_bits: int) -> np.ndarray:
    """Per sample, the tile's accumulators whose exact sum is outside signed ``acc_bits``.

    ``total`` is the sum bias + W a modulo 2**64 (uint64). When ``sum |W| |a| + |bias|``
    stays below 2**62 that is the exact sum read as int64; otherwise (exotic configs) the
    exact sum is estimated in float64.
    """
    half = float(1 << (acc_bits - 1))
    amax = np.abs(a).max(axis=0) if a.size else np.zeros(a.shape[1])
    worst = _segment_matvec(tile.rows, tile.cols, np.abs(tile.values).astype(np.float64),
                            tile.n_rows, amax[None, :].astype(np.float64), np.float64)[0]
    worst = worst + np.abs(tile.bias.astype(np.float64))
    if worst.size == 0 or worst.max() < half:
        return np.zeros(a.shape[0], np.int64)
    if worst.max() < 2.0 ** 62:
        exact = total.view(np.int64)
        return ((exact < -(1 << (acc_bits - 1))) | (exact >= (1 << (acc_bits - 1)))).sum(1)
    approx = _segment_matvec(tile.rows, tile.cols, tile.values.astype(np.float64),
                             tile.n_rows, a.astype(np.float64), np.float64)
    approx = approx + tile.bias.astype(np.float64)[None, :]
    return ((approx < -half) | (approx >= half)).sum(axis=1)


def _execute(image: PackedImage, q_in: np.ndarray, tiles: list[Tile],
             trace: bool = False) -> GoldenResult:
    cfg = image.config
    n = cfg.n_pes
    single = q_in.ndim == 1
    q2 = np.atleast_2d(q_in).astype(np.int64)
    batch, n_in = q2.shape
    if n_in > cfg.max_vector:
        raise ValueError(f"input has {n_in} values but the buffers hold {cfg.max_vector}")
    lo, hi = -(1 << (cfg.act_bits - 1)), (1 << (cfg.act_bits - 1)) - 1
    if q2.size and (q2.min() < lo or q2.max() > hi):
        raise ValueError(f"input activations must be signed {cfg.act_bits}-bit integers")
    if image.layers and n_in != image.n_in:
        raise ValueError(f"input has {n_in} values, the image's first layer takes "
                         f"{image.n_in}")
    n_layers = tiles[-1].layer + 1 if tiles else 0

    # The host clears both buffers and writes the input; activation j lives in PE j % n at
    # address j // n, i.e. at flat position (j // n) * n + j % n == j.
    buffers = np.zeros((2, batch, cfg.max_vector), np.int64)
    buffers[0, :, :n_in] = q2
    src = 0
    layer_q: list = [None] * n_layers
    layer_inputs: list = [None] * n_layers
    saturation = np.zeros((batch, n_layers), np.int64)
    wraps = np.zeros((batch, n_layers), np.int64)
    mask = np.uint64((1 << cfg.acc_bits) - 1)
    tile_acc = [] if trace else None

    for tile in tiles:
        desc, k = tile.desc, tile.layer
        width = desc.in_local * n
        if width > cfg.max_vector or (desc.out_base + desc.out_local) > cfg.act_depth:
            raise ImageDecodeError(f"tile {tile.index}: activation addresses run past "
                                   f"act_depth {cfg.act_depth}")
        source = buffers[src]
        if layer_inputs[k] is None or layer_inputs[k].shape[1] < width:
            layer_inputs[k] = source[:, :width].copy()
        if np.any(source[:, tile.n_cols:width]):
            raise ImageDecodeError(
                f"tile {tile.index}: non-zero activation at j >= n_in ({tile.n_cols}); the "
                "hardware would read pointers that are not part of the tile")
        a = source[:, :tile.n_cols]
        total = _segment_matvec(tile.rows, tile.cols, tile.values, tile.n_rows, a, np.uint64)
        total += tile.bias.astype(np.uint64)[None, :]
        wraps[:, k] += _count_wraps(tile, a, total, cfg.acc_bits)
        acc = wrap(total & mask, cfg.acc_bits)
        if trace:
            tile_acc.append(acc)
        y, sat = write_back(acc, desc.shift, desc.relu, cfg)
        buffers[1 - src, :, desc.out_base * n:(desc.out_base + desc.out_local) * n] = y
        saturation[:, k] += sat.sum(axis=1)
        if desc.swap:
            src = 1 - src
            n_out = image.layers[k].n_out if k < len(image.layers) else \
                (desc.out_base + desc.out_local) * n
            layer_q[k] = buffers[src, :, :n_out].copy()

    n_out = image.n_out if image.layers else (layer_q[-1].shape[1] if layer_q else 0)
    q = buffers[src, :, :n_out].copy()
    if image.layers and layer_q and layer_q[-1] is None:
        layer_q[-1] = q.copy()
    # A balanced image computes its rows in hardware order: deliver the model's order.
    q = image.model_order(q) if image.layers else q
    result = GoldenResult(q, dequantize(q, cfg), layer_q, layer_inputs, saturation, wraps,
                          tile_acc)
    if single:
        result.q, result.y = result.q[0], result.y[0]
        if trace:
            result.tile_acc = [x[0] for x in tile_acc]
        result.layer_q = [x[0] if x is not None else None for x in result.layer_q]
        result.layer_inputs = [x[0] if x is not None else None for x in result.layer_inputs]
        result.saturation = result.saturation[0]
        result.wraps = result.wraps[0]
    return result


def run(image: PackedImage, q_in, tiles: list[Tile] | None = None,
        trace: bool = False) -> GoldenResult:
    """Execute the image's program on raw input activations, bit for bit.

    Parameters
    ----------
    image : the packed image (memories + program + layer facts).
    q_in : int [n_in] or [batch, n_in] signed ``act_bits`` activations
        (see :func:`quantize_input`).
    tiles : the result of :func:`decode_program` to reuse (decoded here if omitted).
    trace : keep every tile's accumulators before write-back (``GoldenResult.tile_acc``).

    Returns
    -------
    GoldenResult

    Raises
    ------
    ImageDecodeError
        The program cannot run on this array (see :func:`decode_tile`), or a layer's
        source buffer holds a non-zero activation past its ``n_in``.
    ValueError
        Input of the wrong length or outside the activation range.
    """
    q_in = np.asarray(q_in)
    if q_in.ndim not in (1, 2):
        raise ValueError(f"q_in must be [n_in] or [batch, n_in], not shape {q_in.shape}")
    if not np.issubdtype(q_in.dtype, np.integer):
        raise ValueError(f"q_in must be integers (use quantize_input), not {q_in.dtype}")
    if tiles is None:
        tiles = decode_program(image)
    return _execute(image, q_in, tiles, trace)


def infer(image: PackedImage, x) -> np.ndarray:
    """Float input [n_in] or [batch, n_in] -> float output (quantize, run, dequantize)."""
    return run(image, quantize_input(x, image.config)).y

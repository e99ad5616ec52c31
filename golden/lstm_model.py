"""Bit-exact golden model of the ESE engine: the executable form of docs/ese.md, "Numerics".

The matrices are executed tile by tile from the image's memories exactly as the EIE model
executes them (``golden.model``: the same decode, the same wrapping accumulators and the
same write-back rule); the LSTM adds the σ/tanh tables, the cell update and the peepholes,
read from the image as the hardware reads them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from contract.lstm_config import ESEConfig
from contract.lstm_image import LSTMImage
from contract.lstm_layout import gate_row, padded

from .model import (
    Tile,
    _count_wraps,
    _segment_matvec,
    decode_tile,
    quantize_input,
    wrap,
    write_back,
)

__all__ = ["LSTMResult", "table_lookup", "run_lstm", "infer_lstm", "decode_matrices",
           "quantize_sequence"]


def _rshift(a: np.ndarray, s: int) -> np.ndarray:
    """Round half up, arithmetic shift (docs/ese.md ``rshift``); int64 in, int64 out."""
    a = np.asarray(a, np.int64)
    return (a + np.int64(1 << (s - 1))) >> np.int64(s) if s > 0 else a


def _saturate(a: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return np.clip(a, lo, hi), (a < lo) | (a > hi)


def table_lookup(table: np.ndarray, u: np.ndarray, config: ESEConfig):
    """The σ/tanh unit (docs/ese.md): clamp ``u`` (``act_frac`` fraction bits) to the table
    range, interpolate between samples. Returns ``(y, saturated)``: ``gate_frac``-fraction
    integers and the mask of inputs outside ``[-R, R)``."""
    f = config.channel.act_frac
    half = np.int64(1 << (config.table_range_log2 + f))
    u = np.asarray(u, np.int64)
    saturated = (u < -half) | (u >= half)
    v = np.clip(u, -half, half - 1) + half
    b = config.interpolation_bits
    s, r = v >> np.int64(b), v & np.int64((1 << b) - 1)
    lo, hi = table[s], table[s + 1]
    return lo + _rshift((hi - lo) * r, b), saturated


@dataclass
class LSTMResult:
    """Outputs of :func:`run_lstm` (leading batch axis only when the input had one).

    Attributes
    ----------
    q : int64 [batch, T, n_out]: raw outputs per frame (the head's, else the last layer's h).
    y : float64, ``q / 2**act_frac``.
    h : per LSTM layer, int64 [batch, T, n_out_l] raw ``h_t``.
    c : per LSTM layer, int64 [batch, T, hidden_l] raw cell state after each frame.
    channel : int64 [batch]: the channel each sequence runs on (``b mod C``).
    saturation : dict stage -> int64 [batch] values that saturated: ``"gates"``
        (pre-activation write-back), ``"table"`` (σ/tanh inputs outside the table range),
        ``"cell"`` (cell state), ``"proj"`` (projection write-back), ``"head"``.
    wraps : int64 [batch] accumulators whose exact value left the signed ``acc_bits``
        range, over every matrix.
    trace : with ``trace=True``, per layer a dict of int64 [batch, T, hidden] arrays
        ``u_i, u_f, u_g, u_o`` (pre-activations with peephole terms), ``i, f, g, o``,
        ``tanh_c`` and ``m``; then one dict ``{"head": [...]}`` with each head layer's
        output [batch, T, width].
    """

    q: np.ndarray
    y: np.ndarray
    h: list
    c: list
    channel: np.ndarray
    saturation: dict
    wraps: np.ndarray
    trace: list | None = None


def decode_matrices(image: LSTMImage) -> list[list[Tile]]:
    """Each matrix's tiles (``image.matrices.layers[k]`` -> its decoded tiles)."""
    mats = image.matrices
    return [[decode_tile(mats, info.first_tile + t) for t in range(info.n_tiles)]
            for info in mats.layers]


def _matrix(image: LSTMImage, tiles: list[Tile], k: int, a: np.ndarray,
            wraps: np.ndarray) -> np.ndarray:
    """Accumulators ``[batch, n_out]`` of matrix ``k`` over the input ``a`` (raw ints,
    ``[batch, n_in]``), model row order; counts wraps into ``wraps``."""
    mats = image.matrices
    cfg = mats.config
    info = mats.layers[k]
    batch = a.shape[0]
    rows = cfg.rows_per_tile
    out = np.zeros((batch, info.n_tiles * rows), np.int64)
    mask = np.uint64((1 << cfg.acc_bits) - 1)
    for t, tile in enumerate(tiles):
        total = _segment_matvec(tile.rows, tile.cols, tile.values, tile.n_rows,
                                a[:, :tile.n_cols], np.uint64)
        total += tile.bias.astype(np.uint64)[None, :]
        wraps += _count_wraps(tile, a[:, :tile.n_cols], total, cfg.acc_bits)
        out[:, t * rows:t * rows + tile.n_rows] = wrap(total & mask, cfg.acc_bits)
    return out[:, :info.n_out]


def quantize_sequence(x, config: ESEConfig) -> np.ndarray:
    """Float input ``[T, n_in]`` or ``[batch, T, n_in]`` -> raw activations (EIE's input
    quantization in the channel's format)."""
    return quantize_input(x, config.channel)


def run_lstm(image: LSTMImage, q_in, *, matrices: list[list[Tile]] | None = None,
             trace: bool = False) -> LSTMResult:
    """Run the image on raw input frames, bit for bit.

    Parameters
    ----------
    image : the packed ESE image.
    q_in : int [T, n_in] or [batch, T, n_in] signed ``act_bits`` activations; the state
        (``h``, ``c``) of every sequence starts at zero.
    matrices : :func:`decode_matrices` of the image, to decode once for many calls.
    trace : keep the gates, cell outputs and pre-activations of every frame.

    Raises
    ------
    ValueError
        wrong shape, ``T = 0``, or values outside the activation range.
    """
    cfg = image.config
    ch = cfg.channel
    n = ch.n_pes
    q_in = np.asarray(q_in)
    if q_in.ndim not in (2, 3):
        raise ValueError(f"input must be [T, {image.n_in}] or [batch, T, {image.n_in}], "
                         f"not shape {list(q_in.shape)}")
    if not np.issubdtype(q_in.dtype, np.integer):
        raise ValueError(f"input must be integers (use quantize_sequence), not {q_in.dtype}")
    single = q_in.ndim == 2
    q3 = np.atleast_3d(q_in[None] if single else q_in).astype(np.int64)
    batch, steps, width = q3.shape
    if width != image.n_in:
        raise ValueError(f"input frames have {width} values, the image's first layer takes "
                         f"{image.n_in}")
    if steps == 0:
        raise ValueError("input has no frames (T = 0)")
    lo, hi = -(1 << (ch.act_bits - 1)), (1 << (ch.act_bits - 1)) - 1
    if q3.size and (q3.min() < lo or q3.max() > hi):
        raise ValueError(f"input activations must be signed {ch.act_bits}-bit integers")
    if matrices is None:
        matrices = decode_matrices(image)
    mats = image.matrices.layers
    f_act, y_frac = ch.act_frac, cfg.gate_frac
    sat = {k: np.zeros(batch, np.int64) for k in ("gates", "table", "cell", "proj", "head")}
    wraps = np.zeros(batch, np.int64)

    def lut(table, u):
        y, s = table_lookup(table, u, cfg)
        sat["table"] += s.reshape(batch, -1).sum(axis=1)
        return y

    states = []
    for info in image.layers:
        cells = padded(info.hidden, n)
        r = np.arange(cells)
        rows = np.stack([gate_row(r, q, n) for q in range(4)])         # [4, cells]
        pe, local = r % n, info.cell_base + r // n
        peep = np.stack([image.peephole[pe, 3 * local + q] for q in range(3)])
        states.append({"h": np.zeros((batch, padded(info.n_out, n)), np.int64),
                       "c": np.zeros((batch, cells), np.int64), "rows": rows, "peep": peep})
    h_out = [np.zeros((batch, steps, info.n_out), np.int64) for info in image.layers]
    c_out = [np.zeros((batch, steps, info.hidden), np.int64) for info in image.layers]
    traces = [dict() for _ in image.layers] if trace else None
    head_q = [np.zeros((batch, steps, mats[k].n_out), np.int64) for k in image.head]
    out = np.zeros((batch, steps, image.n_out), np.int64)

    for t in range(steps):
        inp = np.zeros((batch, padded(image.n_in, n)), np.int64)
        inp[:, :width] = q3[:, t]
        for k, (info, st) in enumerate(zip(image.layers, states, strict=True)):
            v = np.concatenate([inp, st["h"]], axis=1)
            acc = _matrix(image, matrices[info.gates], info.gates, v, wraps)
            u, s = write_back(acc, mats[info.gates].w_frac, False, ch)
            sat["gates"] += s.sum(axis=1)
            u = u[:, st["rows"]]                                        # [batch, 4, cells]
            c_prev = st["c"]
            peep = st["peep"] if info.peephole else np.zeros_like(st["peep"])
            peep_shift = info.peep_frac + y_frac - f_act
            u_i = u[:, 0] + _rshift(peep[0][None, :] * c_prev, peep_shift)
            u_f = u[:, 1] + _rshift(peep[1][None, :] * c_prev, peep_shift)
            i, f, g = lut(image.sigmoid, u_i), lut(image.sigmoid, u_f), lut(image.tanh, u[:, 2])
            c, s = _saturate(_rshift(f * c_prev + i * g, y_frac), cfg.cell_bits)
            sat["cell"] += s.sum(axis=1)
            u_o = u[:, 3] + _rshift(peep[2][None, :] * c, peep_shift)
            o = lut(image.sigmoid, u_o)
            tanh_c = lut(image.tanh, _rshift(c, y_frac - f_act))
            m, _ = _saturate(_rshift(o * tanh_c, 2 * y_frac - f_act), ch.act_bits)
            st["c"] = c
            if info.proj:
                acc = _matrix(image, matrices[info.projection], info.projection, m, wraps)
                h, s = write_back(acc, mats[info.projection].w_frac, False, ch)
                sat["proj"] += s.sum(axis=1)
            else:
                h = m[:, :info.hidden]
            st["h"] = np.zeros_like(st["h"])
            st["h"][:, :info.n_out] = h
            h_out[k][:, t] = h
            c_out[k][:, t] = c[:, :info.hidden]
            if trace:
                for name, value in (("u_i", u_i), ("u_f", u_f), ("u_g", u[:, 2]),
                                    ("u_o", u_o), ("i", i), ("f", f), ("g", g), ("o", o),
                                    ("tanh_c", tanh_c), ("m", m)):
                    traces[k].setdefault(name, np.zeros((batch, steps, info.hidden),
                                                        np.int64))[:, t] = value[:, :info.hidden]
            inp = st["h"]
        a = inp[:, :image.layers[-1].n_out]
        for j, k in enumerate(image.head):
            acc = _matrix(image, matrices[k], k, a, wraps)
            a, s = write_back(acc, mats[k].w_frac, mats[k].relu, ch)
            sat["head"] += s.sum(axis=1)
            head_q[j][:, t] = a
        out[:, t] = a
    if trace:
        traces.append({"head": head_q})
    result = LSTMResult(q=out, y=out / float(1 << f_act), h=h_out, c=c_out,
                        channel=np.arange(batch) % cfg.channels, saturation=sat, wraps=wraps,
                        trace=traces)
    if single:
        result.q, result.y = result.q[0], result.y[0]
        result.h = [x[0] for x in result.h]
        result.c = [x[0] for x in result.c]
        result.channel = result.channel[0]
        result.saturation = {k: int(v[0]) for k, v in sat.items()}
        result.wraps = int(wraps[0])
        if trace:
            result.trace = [{k: v[0] for k, v in tr.items()} for tr in traces[:-1]]
            result.trace.append({"head": [x[0] for x in head_q]})
    return result


def infer_lstm(image: LSTMImage, x) -> np.ndarray:
    """Float frames -> float outputs (quantize, run, dequantize)."""
    return run_lstm(image, quantize_sequence(x, image.config)).y

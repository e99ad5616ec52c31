"""Per-sample bound on |golden - float| (docs/numerics.md, "Error bound against float").

"Float" is the compressed model evaluated in floating point on the unquantized input:
each weight is its layer's float centroid ``LayerInfo.codebook[v]`` (indices decoded from
the image), each bias the float ``LayerInfo.bias``.
"""

from __future__ import annotations

import numpy as np

from contract.image import PackedImage

from .model import _segment_matvec, decode_program, dequantize, quantize_input, run

__all__ = ["error_bound"]


def error_bound(image: PackedImage, x, per_output: bool = False) -> np.ndarray:
    """Bound on ``|golden output - float output|`` for each sample.

    Evaluates, layer by layer,
    ``2^-(act_frac+1) + 2^-(f+1) * sum_{j: v_ij != 0} |x̂_j| + sum_j |w_ij| * e_in
    + 2^-(act_frac+f+1) [bias]`` and carries ``e_in = max_i`` of it to the next layer. The
    first layer's ``e_in`` is the sample's exact input rounding error
    ``max_j |q_j / 2^act_frac - x_j|`` (at most ``2^-(act_frac+1)`` unless the input
    clips). Samples where any write-back saturates or any accumulator wraps get ``inf``:
    the bound is not claimed for them.

    Parameters
    ----------
    image : the packed image; ``image.layers`` must carry the float codebooks.
    x : float [n_in] or [batch, n_in] input.
    per_output : return the last layer's bound per output ``[..., n_out]`` instead of the
        per-sample maximum ``[...]``.
    """
    cfg = image.config
    x = np.asarray(x, dtype=np.float64)
    single = x.ndim == 1
    x2 = np.atleast_2d(x)
    q = quantize_input(x2, cfg)
    tiles = decode_program(image)
    result = run(image, q, tiles=tiles)
    af = cfg.act_frac
    n = cfg.n_pes
    e_in = np.max(np.abs(dequantize(q, cfg) - x2), axis=1, initial=0.0)    # [batch]
    bound = None
    for k, layer in enumerate(image.layers):
        f = layer.w_frac
        codebook = np.asarray(layer.codebook, dtype=np.float64)
        ltiles = [t for t in tiles if t.layer == k]
        rows = np.concatenate([t.rows + t.desc.out_base * n for t in ltiles])
        cols = np.concatenate([t.cols for t in ltiles])
        idx = np.concatenate([t.indices for t in ltiles])
        keep = rows < layer.n_out
        rows, cols, idx = rows[keep], cols[keep], idx[keep]
        order = np.argsort(rows, kind="stable")
        rows, cols, idx = rows[order], cols[order], idx[order]
        x_hat = dequantize(result.layer_inputs[k][:, :layer.n_in], cfg)    # [batch, n_in]
        abs_w = np.zeros(layer.n_out)
        np.add.at(abs_w, rows, np.abs(codebook[idx]))
        support = _segment_matvec(rows, cols, np.ones(rows.size), layer.n_out,
                                  np.abs(x_hat), np.float64)              # sum |x̂_j|, v != 0
        bound = (2.0 ** -(af + 1) + 2.0 ** -(f + 1) * support
                 + abs_w[None, :] * e_in[:, None])
        if layer.has_bias:
            bound = bound + 2.0 ** -(af + f + 1)
        e_in = bound.max(axis=1, initial=0.0)
    saturated = (result.saturation.sum(axis=1) + result.wraps.sum(axis=1)) > 0
    if bound is None:
        bound = e_in[:, None]
    out = bound if per_output else e_in
    out = np.where(saturated[:, None] if per_output else saturated, np.inf, out)
    return out[0] if single else out

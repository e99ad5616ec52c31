"""The pictures of ``eie inspect -o DIR`` (per-PE non-zeros and padding per layer) and
``eie pack`` (each layer's weight histogram with its centroids), as PNG bytes.

matplotlib is imported inside the functions, not at the top: it is slow to import and only
these pictures need it. No pyplot: a bare ``Figure`` (Agg canvas) has no global state and
needs no display.
"""

from __future__ import annotations

import io

import numpy as np

__all__ = ["pe_balance_png", "weight_histograms_png"]


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _grid(n: int) -> tuple[int, int]:
    cols = min(n, 3)
    return -(-n // cols), cols


def pe_balance_png(stats) -> bytes:
    """One bar chart per layer of ``stats`` (``eie.inspect.image_stats``): each PE's
    non-zeros with its padding entries stacked on top, and the mean as a dashed line."""
    from matplotlib.figure import Figure

    rows, cols = _grid(len(stats.layers))
    figure = Figure(figsize=(4 * cols, 3 * rows), layout="constrained")
    for k, layer in enumerate(stats.layers):
        axes = figure.add_subplot(rows, cols, k + 1)
        pes = np.arange(len(layer["pe_nnz"]))
        nnz, pad = np.asarray(layer["pe_nnz"]), np.asarray(layer["pe_padding"])
        axes.bar(pes, nnz, label="non-zeros")
        axes.bar(pes, pad, bottom=nnz, label="padding")
        axes.axhline((nnz + pad).mean(), color="black", linestyle="--", linewidth=0.8)
        axes.set_title(f"{layer['name']} ({layer['shape']}, imbalance "
                       f"{layer['imbalance']:.3f})", fontsize=9)
        axes.set_xlabel("PE")
        axes.set_ylabel("entries")
        if k == 0:
            axes.legend(fontsize=8)
    figure.suptitle("entries per PE (non-zeros + padding); dashed: mean")
    return _png(figure)


def weight_histograms_png(names, weights, codebooks) -> bytes:
    """One histogram per layer of its surviving (non-zero) float weights before sharing,
    with the layer's shared values (the codebook's non-zero centroids) as red lines."""
    from matplotlib.figure import Figure

    rows, cols = _grid(len(names))
    figure = Figure(figsize=(4 * cols, 3 * rows), layout="constrained")
    for k, (name, w, codebook) in enumerate(zip(names, weights, codebooks, strict=True)):
        axes = figure.add_subplot(rows, cols, k + 1)
        w = np.asarray(w, np.float64)
        axes.hist(w, bins=80, color="tab:blue")
        for c in np.asarray(codebook, np.float64)[1:]:
            axes.axvline(c, color="tab:red", linewidth=0.8)
        axes.set_title(f"{name}: {w.size} weights, {len(codebook) - 1} shared values",
                       fontsize=9)
        axes.set_xlabel("weight")
    figure.suptitle("non-zero weights before sharing; red: shared values (centroids)")
    return _png(figure)

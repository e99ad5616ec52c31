"""Weight sharing (Deep Compression stage 2): k-means codebooks, centroid fine-tuning, TTQ.

Every function maps a float :class:`DenseLayer` to a :class:`QuantLayer` whose codebook has
``2**bits`` entries with ``codebook[0] == 0.0`` reserved for "zero/pruned". Contract:

- a weight that is zero in the input gets index 0; a weight that is non-zero gets an
  index >= 1, even if its centroid happens to be 0.0 (the hardware then stores an entry
  that adds nothing; the sparsity pattern is never changed by sharing);
- centroids 1..K are sorted ascending; unused entries are 0.0 and never referenced.
"""

from __future__ import annotations

import numpy as np

from .types import DenseLayer, QuantLayer

__all__ = ["share_weights", "kmeans_1d", "finetune_centroids", "finetune_codebooks",
           "weight_grads", "ternarize"]


def _check_bits(bits) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 2 <= bits <= 8:
        raise ValueError(f"bits must be an integer in [2, 8], not {bits!r}")
    return int(bits)


def _copy(bias):
    return None if bias is None else np.array(bias, dtype=np.float64)


def kmeans_1d(values: np.ndarray, n_clusters: int, iters: int = 100,
              reseed_empty: bool = True) -> np.ndarray:
    """Lloyd's k-means in one dimension with linear initialisation.

    Centroids start evenly spaced between ``min(values)`` and ``max(values)`` (Deep
    Compression's best initialisation: it keeps centroids on the rare large weights).
    Because the data are 1-D, the clusters of sorted centroids are contiguous runs of the
    sorted values, split at the midpoints between centroids; each iteration is one
    ``searchsorted`` plus prefix sums, O(K log n) after the initial O(n log n) sort. An empty
    cluster keeps its old centroid during the iterations. Stops early when no centroid moves.

    Magnitude-pruned weights are bimodal with an empty gap around zero, so linear
    initialisation leaves the centroids that start in the gap empty (on a fresh 30 %-dense
    ``nn.Linear`` 9 of 15). With ``reseed_empty`` (default), after convergence each empty
    centroid is moved to split the cluster with the largest squared error at its mean,
    and Lloyd runs again; this repeats until no cluster is empty (or nothing can be split).
    It never increases the error. ``reseed_empty=False`` is plain Deep Compression.

    Returns
    -------
    numpy.ndarray
        ``n_clusters`` centroids, sorted ascending.
    """
    data = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if data.size == 0:
        raise ValueError("k-means needs at least one value")
    prefix = np.concatenate([[0.0], np.cumsum(data)])
    prefix_sq = np.concatenate([[0.0], np.cumsum(data * data)])
    centroids = _lloyd(data, prefix, np.linspace(data[0], data[-1], n_clusters), iters)
    for _ in range(n_clusters if reseed_empty else 0):
        starts, ends = _segments(data, centroids)
        counts = ends - starts
        empty = np.flatnonzero(counts == 0)
        if empty.size == 0:
            break
        sums = prefix[ends] - prefix[starts]
        sse = (prefix_sq[ends] - prefix_sq[starts]) - sums * sums / np.maximum(counts, 1)
        # Only a cluster holding two distinct values can be split (prefix-sum rounding can
        # leave a tiny positive "error" on a cluster of equal values).
        splittable = (counts >= 2) & (data[np.minimum(ends - 1, data.size - 1)] > data[starts])
        sse[~splittable] = 0.0
        # Largest error first; ties -> lower index (stable).
        donors = [d for d in np.argsort(-sse, kind="stable")[:empty.size] if sse[d] > 0]
        if not donors:
            break
        new = centroids.copy()
        for slot, donor in zip(empty, donors, strict=False):
            lo, hi = starts[donor], ends[donor]
            cut = int(np.searchsorted(data[lo:hi], sums[donor] / counts[donor], "right"))
            cut = lo + min(max(cut, 1), hi - lo - 1)  # both halves non-empty
            new[donor] = (prefix[cut] - prefix[lo]) / (cut - lo)
            new[slot] = (prefix[hi] - prefix[cut]) / (hi - cut)
        centroids = _lloyd(data, prefix, np.sort(new), iters)
    return centroids


def _segments(data: np.ndarray, centroids: np.ndarray):
    """[start, end) of each sorted centroid's cluster in the sorted data."""
    bounds = np.searchsorted(data, (centroids[:-1] + centroids[1:]) / 2, side="right")
    return np.concatenate([[0], bounds]), np.concatenate([bounds, [data.size]])


def _lloyd(data, prefix, centroids, iters):
    for _ in range(iters):
        starts, ends = _segments(data, centroids)
        counts = ends - starts
        sums = prefix[ends] - prefix[starts]
        new = np.sort(np.where(counts > 0, sums / np.maximum(counts, 1), centroids))
        if np.array_equal(new, centroids):
            break
        centroids = new
    return centroids


def _nearest(values: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest of the sorted ``centroids`` for each value (ties -> lower)."""
    mids = (centroids[:-1] + centroids[1:]) / 2
    return np.searchsorted(mids, values, side="left")


def share_weights(layer: DenseLayer, bits: int = 4, iters: int = 100, seed: int = 0,
                  reseed_empty: bool = True) -> QuantLayer:
    """k-means weight sharing of one layer's non-zero weights.

    Parameters
    ----------
    layer : DenseLayer
    bits : int
        Codebook index width; ``2**bits - 1`` clusters (index 0 is reserved for zero).
    iters : int
        Maximum Lloyd iterations (it usually converges in far fewer).
    seed : int
        Unused: linear initialisation is deterministic. Kept so callers can pass one seed
        through every stage.
    reseed_empty : bool
        Re-seed clusters left empty by linear initialisation (see :func:`kmeans_1d`).

    A layer with at most ``2**bits - 1`` distinct non-zero values (already shared, or
    ternary) gets a codebook holding exactly those values, so it is reproduced bit for bit.
    """
    del seed
    bits = _check_bits(bits)
    size = 1 << bits
    weight = np.asarray(layer.weight, dtype=np.float64)
    nonzero = weight != 0
    values = weight[nonzero]
    distinct = np.unique(values)
    indices = np.zeros(weight.shape, dtype=np.uint8)
    if distinct.size <= size - 1:
        centroids = distinct
        indices[nonzero] = 1 + np.searchsorted(distinct, values)  # exact match, no midpoints
    else:
        centroids = kmeans_1d(values, size - 1, iters, reseed_empty)
        indices[nonzero] = 1 + _nearest(values, centroids)
    codebook = np.zeros(size, dtype=np.float64)
    codebook[1:1 + centroids.size] = centroids
    return QuantLayer(layer.name, indices, codebook, _copy(layer.bias), layer.relu)


def finetune_centroids(qlayer: QuantLayer, grad: np.ndarray, lr: float) -> QuantLayer:
    """One Deep Compression centroid update: ``c_v -= lr * sum of dL/dw over cluster v``.

    ``grad`` is ``dL/dW`` of the shared weight matrix (shape ``[n_out, n_in]``), e.g. from
    :func:`weight_grads`. Index 0 (zero) never moves and the indices are unchanged.
    Returns a new QuantLayer.
    """
    grad = np.asarray(grad, dtype=np.float64)
    if grad.shape != qlayer.indices.shape:
        raise ValueError(f"grad has shape {grad.shape}, expected {qlayer.indices.shape}")
    sums = np.bincount(qlayer.indices.ravel(), weights=grad.ravel(),
                       minlength=qlayer.codebook.size)
    sums[0] = 0.0
    codebook = qlayer.codebook - lr * sums
    return QuantLayer(qlayer.name, qlayer.indices.copy(), codebook, _copy(qlayer.bias),
                      qlayer.relu)


def finetune_codebooks(layers: list[QuantLayer], x, y, *, loss: str = "cross_entropy",
                       steps: int = 30, lr: float = 1e-3
                       ) -> tuple[list[QuantLayer], float, float]:
    """Deep Compression's centroid fine-tuning of a whole model, full batch.

    Each step takes ``dL/dW`` of the shared model (:meth:`Compressed.to_torch`'s network)
    on all of ``x``, moves every centroid by ``lr`` times its cluster's summed gradient
    (:func:`finetune_centroids`) and keeps the step only if the loss went down: an accepted
    step grows ``lr`` by 1.5, a rejected one halves it. Indices, biases and the zero
    centroid never change, so the sparsity pattern and the packed layout stay the same.

    Parameters
    ----------
    layers : the shared layers in execution order.
    x : float ``[N, n_in]``.
    y : integer class labels ``[N]`` (``loss="cross_entropy"``) or float targets ``[N]`` /
        ``[N, n_out]`` (``loss="mse"``).
    steps, lr : the number of steps tried and the first step size.

    Returns
    -------
    (layers, loss_before, loss_after) : the fine-tuned layers and the loss on ``(x, y)``
        before and after (``loss_after <= loss_before``).
    """
    import torch

    from .model import layers_to_torch

    if loss not in ("cross_entropy", "mse"):
        raise ValueError(f"loss must be 'cross_entropy' or 'mse', not {loss!r}")
    xt = torch.as_tensor(np.asarray(x, np.float64))
    if loss == "mse":
        yt = torch.as_tensor(np.asarray(y, np.float64).reshape(len(xt), -1))
        loss_fn = torch.nn.functional.mse_loss
    else:
        yt = torch.as_tensor(np.asarray(y), dtype=torch.long)
        loss_fn = torch.nn.functional.cross_entropy

    def evaluate(candidate):
        module = layers_to_torch(candidate, torch.float64)
        value = loss_fn(module(xt), yt)
        return float(value.detach()), weight_grads(module, value)

    layers = list(layers)
    before, grads = evaluate(layers)
    current = before
    for _ in range(steps):
        candidate = [finetune_centroids(q, g, lr) for q, g in zip(layers, grads, strict=True)]
        value, new_grads = evaluate(candidate)
        if value < current:
            layers, grads, current = candidate, new_grads, value
            lr *= 1.5
        else:
            lr *= 0.5      # the gradient at ``layers`` stays valid: retry a shorter step
    return layers, before, current


def weight_grads(module, loss) -> list[np.ndarray]:
    """``dL/dW`` of every ``nn.Linear`` of ``module`` (in module order) as float64 arrays.

    Use with ``Compressed.to_torch()``::

        model = compressed.to_torch()
        grads = weight_grads(model, loss_fn(model(x), y))
        layers = [finetune_centroids(q, g, lr) for q, g in zip(compressed.layers, grads)]
    """
    import torch
    from torch import nn
    weights = [m.weight for m in module.modules() if isinstance(m, nn.Linear)]
    grads = torch.autograd.grad(loss, weights, allow_unused=True)
    return [np.zeros(tuple(w.shape)) if g is None else g.detach().cpu().double().numpy()
            for w, g in zip(weights, grads, strict=True)]


def ternarize(layer: DenseLayer, threshold: float = 0.05, bits: int = 4) -> QuantLayer:
    """Trained-ternary-quantisation style codebook ``{0, -Wn, +Wp}``.

    Weights with ``|w| <= threshold * max|w|`` become zero (index 0); negative survivors get
    index 1 (value ``-Wn``), positive ones index 2 (``+Wp``), where ``Wn``/``Wp`` are the mean
    magnitudes of the negative/positive survivors (TTQ initialises its learned scales this
    way). The codebook is padded with zeros to ``2**bits`` entries.
    """
    bits = _check_bits(bits)
    if not 0.0 <= float(threshold) < 1.0:
        raise ValueError(f"threshold must be in [0, 1), not {threshold!r}")
    weight = np.asarray(layer.weight, dtype=np.float64)
    limit = float(threshold) * float(np.abs(weight).max(initial=0.0))
    positive = weight > limit
    negative = weight < -limit
    codebook = np.zeros(1 << bits, dtype=np.float64)
    if negative.any():
        codebook[1] = weight[negative].mean()
    if positive.any():
        codebook[2] = weight[positive].mean()
    indices = np.zeros(weight.shape, dtype=np.uint8)
    indices[negative] = 1
    indices[positive] = 2
    return QuantLayer(layer.name, indices, codebook, _copy(layer.bias), layer.relu)

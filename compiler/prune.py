"""Magnitude pruning (Deep Compression stage 1) and ESE load-balance-aware pruning.

All functions return new :class:`DenseLayer` objects and never modify their inputs (except
:func:`apply_masks` and :func:`iterative_prune`, which work on the user's ``nn.Module``).
Density is always counted over *all* weights of a layer (or of the model for
``scope="global"``), not over the survivors. Weights that are already zero stay zero.
Ties in ``|w|`` are broken by position: the weight with the smaller row-major index (and,
globally, the earlier layer) is kept, so results are deterministic.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .types import DenseLayer

__all__ = ["magnitude_prune", "balance_prune", "iterative_prune", "apply_masks",
           "density_schedule", "classifier_train_fn", "regression_train_fn"]


def _check_density(density: float, name: str = "density") -> float:
    try:
        value = float(density)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [0, 1], not {density!r}") from None
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        raise ValueError(f"{name} must be in [0, 1], not {density!r}")
    return value


def _keep_largest(values: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask keeping the ``k`` largest-|value| non-zero entries of a 1-D array.

    Ties are broken towards the lower index (stable sort), zeros are never kept.
    """
    mag = np.abs(values)
    k = min(int(k), int(np.count_nonzero(mag)))
    keep = np.zeros(values.shape, dtype=bool)
    if k > 0:
        order = np.argsort(-mag, kind="stable")
        keep[order[:k]] = True
    return keep


def _with_weight(layer: DenseLayer, weight: np.ndarray) -> DenseLayer:
    bias = None if layer.bias is None else layer.bias.copy()
    return DenseLayer(layer.name, weight, bias, layer.relu)


def magnitude_prune(layers: list[DenseLayer], density: float,
                    scope: str = "layer") -> list[DenseLayer]:
    """Keep the largest-magnitude fraction ``density`` of the weights.

    Parameters
    ----------
    layers : list of DenseLayer
    density : float in [0, 1]
        Fraction of weights kept: ``round(density * size)`` per layer (``scope="layer"``)
        or over all layers together (``scope="global"``, one threshold for the model).
        Capped by the number of weights that are non-zero already. 0 zeroes every weight,
        1 returns the weights unchanged.
    scope : {"layer", "global"}

    Raises
    ------
    ValueError
        Density outside [0, 1] or an unknown scope.
    """
    density = _check_density(density)
    if scope == "layer":
        out = []
        for layer in layers:
            flat = layer.weight.ravel()
            keep = _keep_largest(flat, round(density * flat.size))
            out.append(_with_weight(layer, np.where(keep, flat, 0.0).reshape(layer.weight.shape)))
        return out
    if scope == "global":
        if not layers:
            return []
        flat = np.concatenate([layer.weight.ravel() for layer in layers])
        keep = _keep_largest(flat, round(density * flat.size))
        out, start = [], 0
        for layer in layers:
            size = layer.weight.size
            part = np.where(keep[start:start + size], flat[start:start + size], 0.0)
            out.append(_with_weight(layer, part.reshape(layer.weight.shape)))
            start += size
        return out
    raise ValueError(f"scope must be 'layer' or 'global', not {scope!r}")


def balance_prune(layers: list[DenseLayer], density: float, n_pes: int) -> list[DenseLayer]:
    """ESE load-balance-aware pruning: every PE keeps the same number of non-zeros.

    Row ``i`` of each layer belongs to PE ``i mod n_pes`` (docs/image-format.md). Each PE's
    sub-matrix is magnitude-pruned on its own to
    ``k = round(density * n_out * n_in / P)`` non-zeros, ``P = min(n_pes, n_out)`` being
    the PEs that own rows of the layer (``P = n_pes`` whenever ``n_out >= n_pes``; a layer
    narrower than the array would otherwise lose the share of the row-less PEs). A PE
    whose sub-matrix has fewer than ``k`` weights, or fewer than ``k`` non-zero weights
    already, keeps all of its non-zeros (``min(k, its non-zeros)``); the other PEs still
    keep ``k`` -- they are not pruned further to match it, since that would cost accuracy
    for no cycle gain (the short PE just idles a little).

    Raises
    ------
    ValueError
        Density outside [0, 1] or ``n_pes`` not a positive integer.
    """
    density = _check_density(density)
    if isinstance(n_pes, bool) or not isinstance(n_pes, (int, np.integer)) or n_pes < 1:
        raise ValueError(f"n_pes must be a positive integer, not {n_pes!r}")
    out = []
    for layer in layers:
        weight = np.array(layer.weight, dtype=np.float64, copy=True)
        owners = min(n_pes, layer.n_out)
        k = round(density * weight.size / owners)
        for pe in range(owners):
            sub = weight[pe::n_pes]
            keep = _keep_largest(sub.ravel(), k).reshape(sub.shape)
            weight[pe::n_pes] = np.where(keep, sub, 0.0)
        out.append(_with_weight(layer, weight))
    return out


def density_schedule(target_density: float, steps: int) -> list[float]:
    """Geometric schedule from 1 to ``target_density``: ``target ** (s / steps)``, s = 1..steps.

    Each step removes the same fraction of the remaining weights; the last equals the target.
    """
    target = _check_density(target_density, "target_density")
    if target == 0.0:
        raise ValueError("target_density must be > 0 for a geometric schedule")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive integer, not {steps!r}")
    return [target if s == steps else target ** (s / steps) for s in range(1, steps + 1)]


def _linears(module):
    from torch import nn
    return [(name or "linear", m) for name, m in module.named_modules()
            if isinstance(m, nn.Linear)]


def apply_masks(module, masks: dict) -> None:
    """Zero the pruned weights of ``module`` in place.

    Parameters
    ----------
    module : nn.Module
        Its ``nn.Linear`` modules are matched to ``masks`` by qualified name (the names
        ``compiler.load_model`` gives the layers).
    masks : dict of str -> bool tensor
        ``True`` = the weight survives. A Linear re-parametrised by ``torch.nn.utils.prune``
        has its ``weight_orig`` masked as well.

    Call it after every ``optimizer.step()`` in a retraining loop (or rely on
    :func:`iterative_prune` calling it after ``train_fn`` returns).
    """
    import torch
    linears = dict(_linears(module))
    missing = sorted(set(masks) - set(linears))
    if missing:
        raise KeyError(f"masks for unknown Linear layer(s): {', '.join(missing)}")
    with torch.no_grad():
        for name, mask in masks.items():
            linear = linears[name]
            mask = torch.as_tensor(mask, device=linear.weight.device)
            for attr in ("weight", "weight_orig"):
                tensor = getattr(linear, attr, None)
                if isinstance(tensor, torch.Tensor):
                    tensor.mul_(mask.to(tensor.dtype))


def iterative_prune(layers_or_module, target_density: float, steps: int,
                    train_fn: Callable | None = None, scope: str = "layer",
                    balance: bool = False, n_pes: int | None = None) -> list[DenseLayer]:
    """Prune-and-retrain (Deep Compression / ESE schedule) down to ``target_density``.

    Parameters
    ----------
    layers_or_module : nn.Module or list of DenseLayer
        An ``nn.Module`` is pruned and retrained in place. A list of layers is first turned
        into an ``nn.Sequential`` (float32 Linear + ReLU) which ``train_fn`` receives.
    target_density : float in (0, 1]
    steps : int
        Number of prune steps; the density after step ``s`` is ``target ** (s / steps)``.
    train_fn : callable ``train_fn(module, masks)``, optional
        Called once after every prune step with the masks fixed (a dict of layer name ->
        bool tensor). It must keep masked weights at zero -- call :func:`apply_masks` after
        each optimizer step; masks are re-applied after it returns in any case, so
        momentum or weight decay cannot resurrect a pruned weight. ``None`` prunes without
        retraining.
    scope, balance, n_pes :
        As in :func:`magnitude_prune` / :func:`balance_prune` (``balance=True`` needs
        ``n_pes`` and uses per-PE budgets within each layer).

    Returns
    -------
    list of DenseLayer
        The final pruned (and retrained) weights, ReLU flags from the module.
    """
    import torch

    from .model import layers_to_torch, load_model

    schedule = density_schedule(target_density, steps)
    if balance and n_pes is None:
        raise ValueError("balance=True requires n_pes")
    original_names = None
    if isinstance(layers_or_module, torch.nn.Module):
        module = layers_or_module
    else:
        source = load_model(layers_or_module)
        original_names = [layer.name for layer in source]
        module = layers_to_torch(source)
    names = [name for name, _ in _linears(module)]
    for density in schedule:
        layers = load_model(module)
        if balance:
            pruned = balance_prune(layers, density, n_pes)
        else:
            pruned = magnitude_prune(layers, density, scope=scope)
        masks = {name: torch.from_numpy(layer.weight != 0)
                 for name, layer in zip(names, pruned, strict=True)}
        apply_masks(module, masks)
        if train_fn is not None:
            train_fn(module, masks)
            apply_masks(module, masks)
    result = load_model(module)
    for layer, name in zip(result, original_names or [], strict=False):
        layer.name = name
    return result


def classifier_train_fn(x, y, epochs: int = 5, lr: float = 3e-3, batch_size: int = 64,
                        seed: int = 0) -> Callable:
    """A ready ``train_fn`` for :func:`iterative_prune`: masked retraining of a classifier.

    Adam (``lr``), cross-entropy on integer labels ``y``, mini-batches of ``batch_size`` in a
    seeded order, ``epochs`` passes per prune step, :func:`apply_masks` after every
    optimiser step. ``x``/``y`` are arrays or tensors (``x`` is cast to float32).
    """
    import torch

    return _masked_train_fn(torch.as_tensor(np.asarray(x), dtype=torch.float32),
                            torch.as_tensor(np.asarray(y), dtype=torch.long),
                            torch.nn.functional.cross_entropy, epochs, lr, batch_size, seed)


def regression_train_fn(x, y, epochs: int = 5, lr: float = 3e-3, batch_size: int = 64,
                        seed: int = 0) -> Callable:
    """As :func:`classifier_train_fn`, for regression: mean squared error against float
    targets ``y`` (``[N]`` for a single output, or ``[N, n_out]``)."""
    import torch

    y = np.asarray(y, np.float32)
    return _masked_train_fn(torch.as_tensor(np.asarray(x), dtype=torch.float32),
                            torch.as_tensor(y.reshape(len(y), -1)),
                            torch.nn.functional.mse_loss, epochs, lr, batch_size, seed)


def _masked_train_fn(x, y, loss_fn, epochs, lr, batch_size, seed) -> Callable:
    import torch

    def train_fn(module, masks):
        optimiser = torch.optim.Adam(module.parameters(), lr=lr)
        generator = torch.Generator().manual_seed(seed)
        module.train()
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=generator)
            for start in range(0, len(x), batch_size):
                batch = order[start:start + batch_size]
                optimiser.zero_grad()
                loss = loss_fn(module(x[batch]), y[batch])
                loss.backward()
                optimiser.step()
                apply_masks(module, masks)
        module.eval()

    return train_fn

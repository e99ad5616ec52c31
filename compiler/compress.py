"""The compression front-end in one call: import -> prune -> share weights."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .model import import_model, layers_to_torch
from .prune import balance_prune, magnitude_prune
from .quantize import share_weights, ternarize
from .types import DenseLayer, QuantLayer

__all__ = ["Compressed", "compress", "layer_stats"]


@dataclass
class Compressed:
    """Result of :func:`compress`.

    Attributes
    ----------
    layers : list of QuantLayer
        Pruned, weight-shared layers (what the packer consumes).
    source : list of DenseLayer
        The float layers as imported, before pruning.
    stats : list of dict
        Per layer: ``name``, ``n_in``, ``n_out``, ``nnz``, ``density`` (after compression),
        ``source_density`` (as imported), ``distinct`` (distinct non-zero shared values in
        use) and ``rms_error`` (RMS of shared minus pruned weight over the survivors).
    order_source : str
        Where the layer order came from (``compiler.model.ModelImport.order_source``).
    order_ambiguous : bool
        The order was taken from the file (or list, or registration order) and the layer
        shapes chain in more than one order: it may not be the forward order.
    order_note : str or None
        Why a module's forward pass could not be traced, if it could not.
    """

    layers: list[QuantLayer]
    source: list[DenseLayer]
    stats: list[dict] = field(default_factory=list)
    order_source: str = "the list's order"
    order_ambiguous: bool = False
    order_note: str | None = None

    def to_torch(self, dtype=None):
        """Float ``nn.Sequential`` (float32 by default): each Linear holds the shared
        weights ``codebook[indices]`` and the float bias, followed by ``nn.ReLU`` where the
        layer has ReLU. This is the "compressed float" reference of docs/numerics.md."""
        return layers_to_torch(self.layers, dtype)

    @property
    def density(self) -> float:
        """Overall fraction of non-zero weights."""
        nnz = sum(s["nnz"] for s in self.stats)
        size = sum(s["n_in"] * s["n_out"] for s in self.stats)
        return nnz / size if size else 0.0


def compress(model, density: float | None = None, bits: int = 4, scope: str = "layer",
             balance: bool = False, n_pes: int | None = None, ternary: bool = False,
             relu=None, seed: int = 0, final_relu: bool = False, order=None) -> Compressed:
    """Import, prune and weight-share an MLP.

    Parameters
    ----------
    model :
        Anything :func:`compiler.load_model` accepts (``nn.Module``, state_dict, path, layers).
    density : float in [0, 1], optional
        Fraction of weights to keep (magnitude pruning). ``None`` keeps the model's sparsity
        as it is: nothing is pruned and existing zeros stay zero.
    bits : int
        Codebook index width (``EIEConfig.weight_bits``): ``2**bits - 1`` shared values.
    scope : {"layer", "global"}
        Pruning threshold per layer or one for the whole model.
    balance : bool
        ESE load-balance-aware pruning (equal non-zeros per PE in every layer); needs
        ``density`` and ``n_pes`` and works per layer (``scope`` must be "layer").
    n_pes : int, optional
        PE count for ``balance``.
    ternary : bool
        Use a TTQ-style ternary codebook ``{0, -Wn, +Wp}`` instead of k-means. Ternarisation
        applies its own threshold (5 % of max |w|) on top of any pruning.
    relu : list of bool, optional
        ReLU flag per layer (see :func:`compiler.load_model`).
    seed : int
        Passed to the weight-sharing stage (k-means with linear init is deterministic).
    final_relu : bool
        ReLU after the last layer too (see :func:`compiler.load_model`).
    order : list of str, optional
        The layer order by name (see :func:`compiler.model.import_model`).

    Raises
    ------
    ModelError
        From the import.
    ValueError
        Inconsistent options.
    """
    if balance:
        if density is None:
            raise ValueError("balance=True needs a density to prune to")
        if n_pes is None:
            raise ValueError("balance=True requires n_pes")
        if scope != "layer":
            raise ValueError("balance=True prunes per layer; scope must be 'layer'")
    imported = import_model(model, relu=relu, final_relu=final_relu, order=order)
    source = imported.layers
    if density is None:
        pruned = source
    elif balance:
        pruned = balance_prune(source, density, n_pes)
    else:
        pruned = magnitude_prune(source, density, scope=scope)
    if ternary:
        layers = [ternarize(layer, bits=bits) for layer in pruned]
    else:
        layers = [share_weights(layer, bits=bits, seed=seed) for layer in pruned]
    stats = [layer_stats(src, p, q) for src, p, q in zip(source, pruned, layers, strict=True)]
    return Compressed(layers=layers, source=source, stats=stats,
                      order_source=imported.order_source, order_ambiguous=imported.ambiguous,
                      order_note=imported.note)


def layer_stats(source: DenseLayer, pruned: DenseLayer, quant: QuantLayer) -> dict:
    """One entry of :attr:`Compressed.stats` (``quant`` shared from ``pruned``, pruned from
    ``source``)."""
    survivors = quant.indices != 0
    nnz = int(survivors.sum())
    error = quant.dense()[survivors] - pruned.weight[survivors]
    return {
        "name": quant.name,
        "n_in": quant.n_in,
        "n_out": quant.n_out,
        "nnz": nnz,
        "density": nnz / quant.indices.size,
        "source_density": float(np.count_nonzero(source.weight)) / source.weight.size,
        "distinct": int(np.unique(quant.dense()[survivors]).size),
        "rms_error": float(np.sqrt(np.mean(error ** 2))) if nnz else 0.0,
    }

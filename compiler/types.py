"""Data passed between the compiler stages (import -> prune -> share -> pack)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DenseLayer", "QuantLayer"]


@dataclass
class DenseLayer:
    """One fully-connected layer in float: ``y = act(weight @ x + bias)``."""

    name: str
    weight: np.ndarray          # float64 [n_out, n_in]
    bias: np.ndarray | None     # float64 [n_out] or None
    relu: bool

    @property
    def n_in(self) -> int:
        return self.weight.shape[1]

    @property
    def n_out(self) -> int:
        return self.weight.shape[0]


@dataclass
class QuantLayer:
    """A pruned, weight-shared layer: what the packer consumes.

    ``indices[i, j]`` is the codebook index of weight ``(i, j)``; 0 means "zero" (pruned).
    ``codebook[0] == 0.0`` always; ``len(codebook) == 2**weight_bits``.
    The float weight this represents is ``codebook[indices]``.
    """

    name: str
    indices: np.ndarray         # uint8 [n_out, n_in]
    codebook: np.ndarray        # float64 [2**bits]
    bias: np.ndarray | None     # float64 [n_out] or None
    relu: bool

    @property
    def n_in(self) -> int:
        return self.indices.shape[1]

    @property
    def n_out(self) -> int:
        return self.indices.shape[0]

    def dense(self) -> np.ndarray:
        """The float weight matrix this layer stands for."""
        return self.codebook[self.indices]

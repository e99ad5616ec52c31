"""The built-in default model: a small MLP trained on scikit-learn's bundled digits set.

``load_digits`` ships inside scikit-learn, so nothing is downloaded. Training is seeded and
takes a few seconds on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DigitsData", "load_data", "train_mlp", "accuracy"]


@dataclass
class DigitsData:
    x_train: np.ndarray   # float32 [n, 64], pixel values scaled to [0, 1]
    y_train: np.ndarray   # int64 [n]
    x_test: np.ndarray
    y_test: np.ndarray


def load_data(seed: int = 0, test_fraction: float = 0.25) -> DigitsData:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(len(x) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return DigitsData(x[train], y[train], x[test], y[test])


def train_mlp(data: DigitsData, hidden=(128, 64), epochs: int = 60, seed: int = 0):
    """Train ``64 -> hidden... -> 10`` with ReLU between layers; returns an nn.Sequential."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    sizes = [data.x_train.shape[1], *hidden, 10]
    layers: list[nn.Module] = []
    for k in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[k], sizes[k + 1]))
        if k < len(sizes) - 2:
            layers.append(nn.ReLU())
    model = nn.Sequential(*layers)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    x = torch.from_numpy(data.x_train)
    y = torch.from_numpy(data.y_train)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), 64):
            batch = order[start:start + 64]
            optimiser.zero_grad()
            loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
            loss.backward()
            optimiser.step()
    model.eval()
    return model


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(logits, axis=1) == labels))


"""Reading a user's input array (``eie golden --input X.npy``, ``eie.golden(image, x)``)."""

from __future__ import annotations

import os

import numpy as np

__all__ = ["read_input", "finite_float"]


def read_input(x) -> tuple[str, np.ndarray]:
    """``(name for messages, array)`` of an array or a ``.npy`` path (loaded without
    pickles).

    Raises
    ------
    ValueError
        The file is not a plain ``.npy`` array.
    """
    if isinstance(x, (str, os.PathLike)):
        try:
            return str(x), np.asarray(np.load(x, allow_pickle=False))
        except ValueError as exc:
            raise ValueError(f"{x}: not a plain .npy array ({exc})") from None
    return "input", np.asarray(x)


def finite_float(x: np.ndarray, what: str) -> np.ndarray:
    """``x`` as float64, refusing NaN/Inf with the count."""
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what}: input holds {int(np.sum(~np.isfinite(x)))} NaN/Inf values")
    return x

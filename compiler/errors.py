"""Errors raised by the compiler (import, compression, packing)."""

from __future__ import annotations

__all__ = ["CompileError", "ModelError", "CapacityError"]


class CompileError(ValueError):
    """Base class: the compiler cannot turn this input into an image."""


class ModelError(CompileError):
    """The model itself is unusable: NaN/Inf weights, wrong or inconsistent shapes,
    unsupported layer types, unreadable or unsafe files."""


class CapacityError(CompileError):
    """The model does not fit the configured memories.

    The message names the memory, the PE and the bytes needed versus available.
    """

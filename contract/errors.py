"""Error types of the contract layer, shared by every layer above it."""

from __future__ import annotations

__all__ = ["ConfigError", "ImageError", "ImageDecodeError"]


class ConfigError(ValueError):
    """An invalid or mismatched architecture configuration."""


class ImageError(ValueError):
    """An image (directory or in-memory) that is missing, corrupt, tampered with or for
    another config."""


class ImageDecodeError(ImageError):
    """An image whose memories or program cannot be executed as the hardware would: a
    pointer, entry or address out of range (``contract.decode``, ``golden``)."""

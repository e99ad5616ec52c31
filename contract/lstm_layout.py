"""Where an LSTM's weights and state live in the PEs (docs/ese.md, "Layout").

Pure functions of the sizes and the PE count, shared by the compiler (which packs by
them), the golden model (which reads by them) and the RTL scheduler.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["GATES", "padded", "gate_row", "gate_rows", "MemoryMap", "memory_map"]

#: Gate order of a cell's four rows, as torch stores them in ``weight_ih``/``weight_hh``.
GATES = ("i", "f", "g", "o")


def padded(n: int, n_pes: int) -> int:
    """``n`` rounded up to a multiple of ``n_pes`` (every PE then holds the same count)."""
    return -(-int(n) // n_pes) * n_pes


def gate_row(cell: int, gate: int, n_pes: int) -> int:
    """Packed row of gate ``gate`` (0..3 = i, f, g, o) of cell ``cell``:
    ``(4 * (cell // N) + gate) * N + cell % N``, so that the EIE interleave (row ``n`` to PE
    ``n % N``, local row ``n // N``) gives PE ``cell % N`` local row ``4 * (cell // N) +
    gate``."""
    return (4 * (cell // n_pes) + gate) * n_pes + cell % n_pes


def gate_rows(hidden: int, n_pes: int) -> np.ndarray:
    """``rows[q * hidden + r]`` = packed row of torch gate row ``q * hidden + r`` (gate
    ``q``, cell ``r``); the packed matrix has ``4 * padded(hidden, N)`` rows, the rows of
    padding cells (``r >= hidden``) stay zero."""
    q, r = np.divmod(np.arange(4 * hidden), hidden)
    return gate_row(r, q, n_pes)


@dataclass(frozen=True)
class MemoryMap:
    """Word addresses of the regions of one channel's activation memory, per PE
    (docs/ese.md, "Activation memory"). ``h_bases[l]`` is layer ``l``'s output ``h``;
    layer ``l`` reads its gate input ``[R_l ; H_l]`` from ``in_bases[l]`` on
    (``R_0 = X``, ``R_l = H_{l-1}``), so the two parts are contiguous."""

    x_base: int
    x_words: int
    h_bases: tuple[int, ...]
    h_words: tuple[int, ...]
    m_base: int
    m_words: int
    y_bases: tuple[int, int]
    y_words: int

    @property
    def in_bases(self) -> tuple[int, ...]:
        return (self.x_base,) + self.h_bases[:-1]

    @property
    def words(self) -> int:
        """Words used (the activation memory depth the image needs)."""
        return self.y_bases[1] + self.y_words

    def to_dict(self) -> dict:
        return {"x_base": self.x_base, "x_words": self.x_words,
                "h_bases": list(self.h_bases), "h_words": list(self.h_words),
                "m_base": self.m_base, "m_words": self.m_words,
                "y_bases": list(self.y_bases), "y_words": self.y_words}


def memory_map(n_in: int, outputs: list[int], hidden: list[int], head_widths: list[int],
               n_pes: int) -> MemoryMap:
    """The activation memory map of an LSTM stack.

    Parameters
    ----------
    n_in : input width ``I`` of layer 0.
    outputs : each layer's output width (``proj_size``, or ``hidden_size`` without).
    hidden : each layer's cell count.
    head_widths : output width of each head layer (may be empty).
    """
    words = [padded(p, n_pes) // n_pes for p in outputs]
    x_words = padded(n_in, n_pes) // n_pes
    bases, at = [], x_words
    for w in words:
        bases.append(at)
        at += w
    m_words = max(padded(h, n_pes) // n_pes for h in hidden)
    m_base = at
    at += m_words
    y_words = max([padded(w, n_pes) // n_pes for w in head_widths] or [0])
    return MemoryMap(x_base=0, x_words=x_words, h_bases=tuple(bases), h_words=tuple(words),
                     m_base=m_base, m_words=m_words, y_bases=(at, at + y_words),
                     y_words=y_words)

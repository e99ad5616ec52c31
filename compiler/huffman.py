"""Huffman coding of the packed entry streams (Deep Compression stage 3), as a storage figure.

The EIE hardware stores entries raw (4-bit ``v`` + 4-bit ``z``); Huffman coding is what
Deep Compression applies for *off-chip storage*. These functions report what it would save.

Bit accounting (:func:`huffman_bits`): payload = ``sum(count[s] * len[s])`` plus, when
``table=True``, a canonical-Huffman code table of one code length per alphabet symbol,
``2**symbol_bits`` lengths of ``bit_length(2**symbol_bits - 1)`` bits each (a Huffman code
over ``A`` symbols is never deeper than ``A - 1``): 16 x 4 = 64 bits for 4-bit symbols.
A stream with a single distinct symbol still needs 1 bit per symbol.
"""

from __future__ import annotations

import heapq
import itertools

import numpy as np

__all__ = ["huffman_code_lengths", "canonical_codes", "huffman_bits", "huffman_report"]


def huffman_code_lengths(counts: dict) -> dict:
    """Code length of each symbol of a Huffman code built with ``heapq``.

    ``counts`` maps symbol -> frequency (> 0). Ties between equal weights are broken by
    insertion order, so the result is deterministic.
    """
    items = [(int(c), s) for s, c in counts.items() if c > 0]
    if not items:
        return {}
    if len(items) == 1:
        return {items[0][1]: 1}
    order = itertools.count()
    # heap entries: (weight, tiebreak, symbols under this node)
    heap = [(c, next(order), [s]) for c, s in items]
    heapq.heapify(heap)
    lengths = {s: 0 for _, s in items}
    while len(heap) > 1:
        w1, _, s1 = heapq.heappop(heap)
        w2, _, s2 = heapq.heappop(heap)
        for s in itertools.chain(s1, s2):
            lengths[s] += 1
        heapq.heappush(heap, (w1 + w2, next(order), s1 + s2))
    return lengths


def canonical_codes(lengths: dict) -> dict:
    """Canonical Huffman codewords (as bit strings) for the given code lengths."""
    code, prev_len, out = 0, 0, {}
    for sym, length in sorted(lengths.items(), key=lambda kv: (kv[1], kv[0])):
        code <<= length - prev_len
        out[sym] = format(code, f"0{length}b")
        code += 1
        prev_len = length
    return out


def huffman_bits(symbols: np.ndarray, symbol_bits: int = 4, table: bool = True) -> int:
    """Bits to store ``symbols`` Huffman-coded (see the module docstring for what counts).

    Parameters
    ----------
    symbols : array of ints in ``[0, 2**symbol_bits)``
    symbol_bits : int
        Raw width of one symbol; sets the alphabet size of the code table.
    table : bool
        Add the code-table size (``2**symbol_bits * bit_length(2**symbol_bits - 1)`` bits).
    """
    symbols = np.asarray(symbols).ravel()
    alphabet = 1 << symbol_bits
    table_bits = alphabet * (alphabet - 1).bit_length() if table else 0
    if symbols.size == 0:
        return 0
    if symbols.min() < 0 or symbols.max() >= alphabet:
        raise ValueError(f"symbols must lie in [0, {alphabet})")
    counts = np.bincount(symbols.astype(np.int64), minlength=alphabet)
    lengths = huffman_code_lengths({s: int(c) for s, c in enumerate(counts) if c})
    payload = sum(int(counts[s]) * n for s, n in lengths.items())
    return payload + table_bits


def huffman_report(packed_entries_v, packed_entries_z, v_bits: int = 4,
                   z_bits: int = 4) -> dict:
    """Raw versus Huffman-coded size of the entry streams of an image.

    Parameters
    ----------
    packed_entries_v, packed_entries_z : arrays of ints
        The ``v`` and ``z`` fields of every stored entry (padding entries included), e.g.
        decoded from ``PackedImage.spmat``. Each stream gets its own code.

    Returns
    -------
    dict
        ``entries``, ``raw_bits`` (``entries * (v_bits + z_bits)``), ``huffman_v_bits``,
        ``huffman_z_bits``, ``huffman_bits`` (their sum, tables included) and ``ratio``
        (raw / Huffman; 1.0 for an empty stream).
    """
    v = np.asarray(packed_entries_v).ravel()
    z = np.asarray(packed_entries_z).ravel()
    if v.shape != z.shape:
        raise ValueError(f"v and z streams differ in length ({v.size} vs {z.size})")
    raw = int(v.size) * (v_bits + z_bits)
    hv = huffman_bits(v, v_bits)
    hz = huffman_bits(z, z_bits)
    total = hv + hz
    return {"entries": int(v.size), "raw_bits": raw, "huffman_v_bits": hv,
            "huffman_z_bits": hz, "huffman_bits": total,
            "ratio": raw / total if total else 1.0}

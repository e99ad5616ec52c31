"""Reference packer: a straightforward loop per weight producing the same image as
``compiler.pack.pack``: the benchmark baseline and an independent oracle in the tests.

It shares only the input validation, the memory-base allocation rules (``compiler.layout``)
and the fixed-point numerics (``compiler.fixed_point``) with the vectorised packer; the
entry encoding, word packing and pointer placement are its own.
"""

from __future__ import annotations

import numpy as np

from contract.config import EIEConfig
from contract.image import PackedImage

from .fixed_point import layer_numerics
from .layout import Layout, check_packer_config, layer_infos, pe_stats, validate_layers
from .types import QuantLayer

__all__ = ["pack_reference"]


def pack_reference(layers: list[QuantLayer], config: EIEConfig,
                   chain: bool = True) -> PackedImage:
    """Straightforward loop-per-weight packer producing the same image as
    :func:`compiler.pack.pack` (same parameters, result and errors).

    Used as the benchmark baseline and as an independent oracle in the tests; it shares
    only the input validation, the memory-base allocation rules and the numerics with it.
    It does not log the accumulator-wrap warning.
    """
    check_packer_config(config)
    validate_layers(layers, config, chain)
    layout = Layout(layers, config)
    w_fracs, qcodebooks, qbiases = layer_numerics(layers, config)
    n, epw, eb = config.n_pes, config.entries_per_word, config.entry_bits
    step = config.max_run + 1
    streams = []                 # [tile][pe] -> (entry list, pointer list, nnz, pad)
    for k, _t, row0, rows, out_local in layout.tiles:
        idx = layers[k].indices
        per_pe = []
        for p in range(n):
            ents, ptrs, nz, pad = [], [0], 0, 0
            for j in range(layers[k].n_in):
                last = -1
                for r in range(out_local):
                    i = row0 + r * n + p
                    if i >= row0 + rows:
                        break
                    v = int(idx[i, j])
                    if v == 0:
                        continue
                    gap = r - last - 1
                    while gap > config.max_run:
                        ents.append(config.max_run << config.weight_bits)
                        pad += 1
                        gap -= step
                    ents.append(v | (gap << config.weight_bits))
                    nz += 1
                    last = r
                ptrs.append(len(ents))
            per_pe.append((ents, ptrs, nz, pad))
        streams.append(per_pe)
    entries = np.array([[len(s[0]) for s in tile] for tile in streams], np.int64)
    spmat_bases = layout.spmat_bases(entries.reshape(len(streams), n))
    image = PackedImage.empty(config, layer_infos(layers, config, w_fracs, layout),
                              layout.descriptors(spmat_bases, w_fracs))
    padding = np.zeros_like(entries)
    nnz = np.zeros_like(entries)
    for ti, (k, _t, row0, rows, out_local) in enumerate(layout.tiles):
        for p in range(n):
            ents, ptrs, nz, pad = streams[ti][p]
            nnz[ti, p], padding[ti, p] = nz, pad
            for e, value in enumerate(ents):
                addr = spmat_bases[ti] * epw + e
                word = int(image.spmat[p, addr // epw])
                word |= value << (eb * (addr % epw))
                image.spmat[p, addr // epw] = word
            for jj, value in enumerate(ptrs):
                bank = image.ptr_even if jj % 2 == 0 else image.ptr_odd
                bank[p, layout.ptr_base[ti] + jj // 2] = value
            if layers[k].bias is not None:
                for r in range(out_local):
                    i = row0 + r * n + p
                    value = int(qbiases[k][i]) if i < row0 + rows else 0
                    image.bias[p, layout.bias_base[ti] + r] = value
    for k, q in enumerate(qcodebooks):
        for v in range(config.codebook_size):
            image.codebook[k * config.codebook_size + v] = int(q[v])
    for info in image.layers:
        sl = slice(info.first_tile, info.first_tile + info.n_tiles)
        info.nnz, info.padding = int(nnz[sl].sum()), int(padding[sl].sum())
    pe_stats(image, layout, entries, padding, -(-entries // epw))
    return image

"""Memory allocation and validation shared by both packers (docs/image-format.md,
"Allocation rules of the packer"): model and capacity checks, per-tile bases, descriptors,
layer facts and per-PE statistics. Everything but the entry encoding itself, so the
reference packer stays an independent oracle for that encoding.
"""

from __future__ import annotations

import numpy as np

from contract.config import EIEConfig
from contract.image import Descriptor, LayerInfo, PackedImage

from .errors import CapacityError, ModelError
from .types import QuantLayer

__all__ = ["Layout", "check_packer_config", "validate_layers", "layer_infos", "pe_stats"]


def check_packer_config(config: EIEConfig) -> None:
    """The config is an ``EIEConfig`` (which itself guarantees words of at most 64 bits)."""
    if not isinstance(config, EIEConfig):
        raise TypeError(f"config must be an EIEConfig, not {type(config).__name__}")


def validate_layers(layers, config: EIEConfig, chain: bool = True) -> None:
    """Model checks (ModelError) and whole-image capacity checks that need no encoding.

    ``chain=False`` packs matrices that read different vectors (an LSTM's gate matrices,
    projections and head): layer ``k + 1``'s ``n_in`` need not equal layer ``k``'s
    ``n_out``.
    """
    if not isinstance(layers, list | tuple) or not layers:
        raise ModelError("pack needs a non-empty list of QuantLayer")
    n = config.n_pes
    for k, layer in enumerate(layers):
        if not isinstance(layer, QuantLayer):
            raise ModelError(f"layer {k} is a {type(layer).__name__}, not a QuantLayer")
        idx = layer.indices
        if not isinstance(idx, np.ndarray) or idx.ndim != 2 or 0 in idx.shape:
            raise ModelError(f"layer {layer.name}: indices must be a non-empty 2-D array")
        if not (np.issubdtype(idx.dtype, np.integer) or idx.dtype == np.bool_):
            raise ModelError(f"layer {layer.name}: indices must be integers, not {idx.dtype}")
        cb = np.asarray(layer.codebook, np.float64)
        if cb.ndim != 1 or not 1 <= cb.size <= config.codebook_size:
            raise ModelError(f"layer {layer.name}: codebook must hold 1..{config.codebook_size}"
                             f" values, has shape {list(cb.shape)}")
        if not np.all(np.isfinite(cb)):
            raise ModelError(f"layer {layer.name}: codebook holds NaN/Inf")
        if cb[0] != 0.0:
            raise ModelError(f"layer {layer.name}: codebook[0] must be 0.0, is {cb[0]!r}")
        if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= cb.size):
            raise ModelError(f"layer {layer.name}: indices must lie in [0, {cb.size}), "
                             f"found [{int(idx.min())}, {int(idx.max())}]")
        if layer.bias is not None:
            b = np.asarray(layer.bias, np.float64)
            if b.shape != (layer.n_out,):
                raise ModelError(f"layer {layer.name}: bias shape {list(b.shape)} != "
                                 f"[{layer.n_out}]")
            if not np.all(np.isfinite(b)):
                raise ModelError(f"layer {layer.name}: bias holds NaN/Inf")
        if chain and k and layers[k - 1].n_out != layer.n_in:
            raise ModelError(f"layer {layer.name}: n_in={layer.n_in} does not match the "
                             f"previous layer {layers[k - 1].name}'s n_out="
                             f"{layers[k - 1].n_out}")
    if len(layers) > config.max_layers:
        raise CapacityError(f"codebook needs {len(layers)} layer slots: --max-layers "
                            f"{len(layers)} needed, {config.max_layers} configured")
    for layer in layers:
        for what, length in (("input", layer.n_in), ("output", layer.n_out)):
            need = -(-length // n)
            if need > config.act_depth:
                raise CapacityError(
                    f"activation buffer of PE 0 (layer {layer.name} {what} of {length} "
                    f"values over {n} PEs): --act-depth {need} needed, {config.act_depth} "
                    f"configured")
    n_tiles = sum(-(-layer.n_out // config.rows_per_tile) for layer in layers)
    if n_tiles > config.max_tiles:
        raise CapacityError(f"program needs {n_tiles} tile descriptors: --max-tiles "
                            f"{n_tiles} needed, {config.max_tiles} configured")


class Layout:
    """Memory allocation shared by both packers: bases per tile and capacity checks."""

    def __init__(self, layers, config: EIEConfig):
        self.config = config
        n, rpt = config.n_pes, config.rows_per_tile
        self.tiles = []          # (layer k, tile t, row0, tile_rows, out_local)
        ptr_next = bias_next = 0
        self.ptr_base, self.bias_base = [], []
        for k, layer in enumerate(layers):
            for t in range(-(-layer.n_out // rpt)):
                row0 = t * rpt
                rows = min(rpt, layer.n_out - row0)
                out_local = -(-rows // n)
                self.tiles.append((k, t, row0, rows, out_local))
                self.ptr_base.append(ptr_next)
                ptr_next += (layer.n_in + 2) // 2
                if layer.bias is not None:
                    self.bias_base.append(bias_next)
                    bias_next += out_local
                else:
                    self.bias_base.append(0)
        self.ptr_used, self.bias_used = ptr_next, bias_next
        if ptr_next > config.ptr_depth:
            raise CapacityError(
                f"pe_ptr_even of PE 0 "
                f"({self._where(layers, np.cumsum(self._ptr_sizes(layers)), config.ptr_depth)}):"
                f" --ptr-depth {ptr_next} needed, {config.ptr_depth} configured")
        if bias_next > config.bias_depth:
            sizes = [out_local if layers[k].bias is not None else 0
                     for k, _, _, _, out_local in self.tiles]
            raise CapacityError(
                f"pe_bias of PE 0 ({self._where(layers, np.cumsum(sizes), config.bias_depth)}):"
                f" --bias-depth {bias_next} needed, {config.bias_depth} configured")
        self.layers = layers

    def _ptr_sizes(self, layers):
        return [(layers[k].n_in + 2) // 2 for k, *_ in self.tiles]

    def _where(self, layers, ends, depth) -> str:
        i = int(np.argmax(np.asarray(ends) > depth))
        k, t = self.tiles[i][:2]
        return f"layer {layers[k].name} tile {t}"

    def spmat_bases(self, entries: np.ndarray) -> list[int]:
        """Word bases per tile from ``entries[tile, pe]``; checks pointer and spmat capacity."""
        cfg = self.config
        epw = cfg.entries_per_word
        ptr_max = (1 << cfg.pointer_bits) - 1
        over = np.flatnonzero((entries > ptr_max).any(axis=1))
        if over.size:
            i = int(over[0])
            p = int(np.argmax(entries[i]))
            k, t = self.tiles[i][:2]
            raise CapacityError(
                f"pe_ptr_even of PE {p}: layer {self.layers[k].name} tile {t} has "
                f"{int(entries[i, p])} entries, more than {cfg.pointer_bits}-bit pointers "
                f"address ({ptr_max}): --pointer-bits {int(entries[i, p]).bit_length()} "
                f"needed, {cfg.pointer_bits} configured")
        words = -(-entries // epw)
        bases, nxt = [], 0
        for i in range(len(self.tiles)):
            tile_words = int(words[i].max()) if words.shape[1] else 0
            bases.append(nxt if tile_words else 0)
            nxt += tile_words
        ends = np.asarray(bases)[:, None] + words            # [tile, pe]
        ends = np.where(words > 0, ends, 0)
        need = ends.max(axis=0) if ends.size else np.zeros(cfg.n_pes, np.int64)
        if need.size and int(need.max()) > cfg.spmat_depth:
            p = int(np.argmax(need))
            i = int(np.argmax(ends[:, p] > cfg.spmat_depth))
            k, t = self.tiles[i][:2]
            raise CapacityError(
                f"pe_spmat of PE {p} (layer {self.layers[k].name} tile {t}): --spmat-depth "
                f"{int(need[p])} needed, {cfg.spmat_depth} configured")
        return bases

    def descriptors(self, spmat_bases, w_fracs) -> list[Descriptor]:
        program = []
        for i, (k, t, _row0, _rows, out_local) in enumerate(self.tiles):
            layer = self.layers[k]
            program.append(Descriptor(
                in_local=-(-layer.n_in // self.config.n_pes),
                out_local=out_local,
                out_base=t * self.config.acc_depth,
                ptr_base=self.ptr_base[i],
                spmat_base=spmat_bases[i],
                bias_base=self.bias_base[i],
                slot=k,
                shift=w_fracs[k],
                relu=bool(layer.relu),
                bias_en=layer.bias is not None,
                swap=i + 1 == len(self.tiles) or self.tiles[i + 1][0] != k,
                last=i + 1 == len(self.tiles),
            ))
        return program


def layer_infos(layers, config, w_fracs, layout) -> list[LayerInfo]:
    """Manifest facts of every layer (``nnz``/``padding`` are filled in by the packer)."""
    infos, first = [], 0
    for k, layer in enumerate(layers):
        n_tiles = -(-layer.n_out // config.rows_per_tile)
        cb = [float(c) for c in np.asarray(layer.codebook, np.float64)]
        cb += [0.0] * (config.codebook_size - len(cb))
        infos.append(LayerInfo(
            name=str(layer.name), n_in=layer.n_in, n_out=layer.n_out, slot=k,
            w_frac=w_fracs[k], relu=bool(layer.relu), has_bias=layer.bias is not None,
            codebook=cb, first_tile=first, n_tiles=n_tiles,
            bias=None if layer.bias is None
            else [float(b) for b in np.asarray(layer.bias, np.float64)]))
        first += n_tiles
    return infos


def pe_stats(image: PackedImage, layout: Layout, entries, padding, words) -> None:
    """Set ``image.stats`` from ``entries``/``padding``/``words`` ``[tile, pe]``."""
    n = image.config.n_pes
    ptr_entries = sum(image.layers[k].n_in + 1 for k, *_ in layout.tiles)
    bias_entries = sum(ol for k, _, _, _, ol in layout.tiles if image.layers[k].has_bias)
    image.stats = {"pes": [
        {"pe": p, "entries": int(entries[:, p].sum()), "padding": int(padding[:, p].sum()),
         "spmat_words": int(words[:, p].sum()), "ptr_entries": ptr_entries,
         "bias_entries": bias_entries}
        for p in range(n)]}

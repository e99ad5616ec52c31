"""Packer: quantized layers -> per-PE memories and tile program (docs/image-format.md).

``pack`` is the vectorised packer used by ``eie pack``; ``pack_reference`` is a plain
loop-per-weight packer that produces the identical image and serves as the benchmark
baseline and as an independent oracle in the tests. ``unpack``/``unpack_values`` decode
an image back from its raw memories (words, pointers, descriptors), which is what the
golden model executes.
"""

from __future__ import annotations

import logging

import numpy as np

from contract.config import EIEConfig
from contract.errors import ImageError
from contract.image import Descriptor, LayerInfo, PackedImage

from .errors import CapacityError, ModelError
from .types import QuantLayer

__all__ = [
    "pack",
    "pack_reference",
    "unpack",
    "unpack_values",
    "choose_w_frac",
    "quantize_codebook",
    "quantize_bias",
    "MAX_W_FRAC",
    "worst_case_accumulator",
]

MAX_W_FRAC = 30

log = logging.getLogger(__name__)


# ---- numerics shared by both packers ---------------------------------------------------------
def choose_w_frac(codebook, codebook_bits: int) -> int:
    """Largest ``w_frac`` in ``[0, 30]`` for which every value rounds into the signed range.

    Raises
    ------
    CapacityError
        when even ``w_frac = 0`` does not fit ``codebook_bits``.
    """
    values = np.asarray(codebook, np.float64)
    lo, hi = -(1 << (codebook_bits - 1)), (1 << (codebook_bits - 1)) - 1
    for w_frac in range(MAX_W_FRAC, -1, -1):
        q = np.rint(values * 2.0**w_frac)
        if np.all((q >= lo) & (q <= hi)):
            return w_frac
    raise CapacityError(
        f"codebook: largest centroid {np.max(np.abs(values)):g} does not fit "
        f"{codebook_bits}-bit signed codebook values even with 0 fraction bits")


def quantize_codebook(codebook, w_frac: int, codebook_bits: int) -> np.ndarray:
    """Signed integer codebook ``rint(c * 2**w_frac)`` (half to even), int64."""
    q = np.rint(np.asarray(codebook, np.float64) * 2.0**w_frac).astype(np.int64)
    lo, hi = -(1 << (codebook_bits - 1)), (1 << (codebook_bits - 1)) - 1
    if np.any((q < lo) | (q > hi)):
        raise CapacityError(f"codebook does not fit {codebook_bits} bits with w_frac={w_frac}")
    return q


def quantize_bias(name: str, bias, n_out: int, w_frac: int, config: EIEConfig) -> np.ndarray:
    """Bias in accumulator format ``rint(b * 2**(act_frac + w_frac))`` (int64, zeros if None).

    Raises
    ------
    CapacityError
        when a bias does not fit a signed ``acc_bits`` accumulator.
    """
    if bias is None:
        return np.zeros(n_out, np.int64)
    b = np.rint(np.asarray(bias, np.float64) * 2.0 ** (config.act_frac + w_frac))
    lim = 1 << (config.acc_bits - 1)
    bad = np.flatnonzero((b < -lim) | (b > lim - 1))
    if bad.size:
        i = int(bad[0])
        raise CapacityError(
            f"bias of layer {name} row {i} ({float(bias[i]):g}) does not fit the "
            f"{config.acc_bits}-bit accumulator with {config.act_frac + w_frac} fraction bits")
    return b.astype(np.int64)


def worst_case_accumulator(indices, qcodebook, qbias, config: EIEConfig) -> int:
    """Largest ``|acc|`` any input can reach in a layer (docs/numerics.md, wrap-around).

    ``max_i sum_j |C[v_ij]| * 2**(act_bits-1) + |bias_i|``; the accumulator can wrap only if
    this is at least ``2**(acc_bits-1)``.
    """
    abs_c = np.abs(np.asarray(qcodebook, np.int64))
    rows = abs_c[np.asarray(indices, np.intp)].sum(axis=1)
    worst = rows * (1 << (config.act_bits - 1)) + np.abs(np.asarray(qbias, np.int64))
    return int(worst.max()) if worst.size else 0


def _warn_wrap(layers, qcodebooks, qbiases, config: EIEConfig) -> None:
    for layer, qcb, qb in zip(layers, qcodebooks, qbiases, strict=True):
        worst = worst_case_accumulator(layer.indices, qcb, qb, config)
        if worst >= 1 << (config.acc_bits - 1):
            log.warning("layer %s: the %d-bit accumulator can wrap for inputs near full scale "
                        "(worst case |acc| = 2**%.1f); results stay bit-exact but may differ "
                        "from float", layer.name, config.acc_bits, np.log2(worst))


def _check_config(config: EIEConfig) -> None:
    if not isinstance(config, EIEConfig):
        raise TypeError(f"config must be an EIEConfig, not {type(config).__name__}")
    if config.word_bits > 64:
        raise CapacityError(
            f"pe_spmat words of {config.word_bits} bits are not supported (at most 64)")


def _validate_layers(layers, config: EIEConfig) -> None:
    """Model checks (ModelError) and whole-image capacity checks that need no encoding."""
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
        if k and layers[k - 1].n_out != layer.n_in:
            raise ModelError(f"layer {layer.name}: n_in={layer.n_in} does not match the "
                             f"previous layer {layers[k - 1].name}'s n_out="
                             f"{layers[k - 1].n_out}")
    if len(layers) > config.max_layers:
        slot_bytes = _bytes(config.codebook_size, config.codebook_bits)
        raise CapacityError(f"codebook needs {len(layers)} layer slots "
                            f"({len(layers) * slot_bytes} bytes), has {config.max_layers} "
                            f"({config.max_layers * slot_bytes} bytes)")
    act_bytes = -(-config.act_bits // 8)
    for layer in layers:
        for what, length in (("input", layer.n_in), ("output", layer.n_out)):
            need = -(-length // n)
            if need > config.act_depth:
                raise CapacityError(
                    f"activation buffer of PE 0 needs {need * act_bytes} bytes, has "
                    f"{config.act_depth * act_bytes} (layer {layer.name} {what} of {length} "
                    f"values over {n} PEs)")
    n_tiles = sum(-(-layer.n_out // config.rows_per_tile) for layer in layers)
    if n_tiles > config.max_tiles:
        d_bytes = -(-config.descriptor_bits // 8)
        raise CapacityError(f"program needs {n_tiles} tile descriptors ({n_tiles * d_bytes} "
                            f"bytes), has {config.max_tiles} ({config.max_tiles * d_bytes} bytes)")


def _bytes(words: int, width: int) -> int:
    return -(-words * width // 8)


class _Layout:
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
                f"pe_ptr_even of PE 0 needs {_bytes(ptr_next, config.pointer_bits)} bytes, has "
                f"{_bytes(config.ptr_depth, config.pointer_bits)} "
                f"({self._where(layers, np.cumsum(self._ptr_sizes(layers)), config.ptr_depth)})")
        if bias_next > config.bias_depth:
            sizes = [out_local if layers[k].bias is not None else 0
                     for k, _, _, _, out_local in self.tiles]
            raise CapacityError(
                f"pe_bias of PE 0 needs {_bytes(bias_next, config.acc_bits)} bytes, has "
                f"{_bytes(config.bias_depth, config.acc_bits)} "
                f"({self._where(layers, np.cumsum(sizes), config.bias_depth)})")
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
                f"address ({ptr_max})")
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
                f"pe_spmat of PE {p} needs {_bytes(int(need[p]), cfg.word_bits)} bytes, has "
                f"{_bytes(cfg.spmat_depth, cfg.word_bits)} "
                f"(layer {self.layers[k].name} tile {t})")
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


def _layer_infos(layers, config, w_fracs, layout) -> list[LayerInfo]:
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


def _numerics(layers, config):
    w_fracs, qcodebooks, qbiases = [], [], []
    for layer in layers:
        cb = np.zeros(config.codebook_size)
        cb[:len(layer.codebook)] = np.asarray(layer.codebook, np.float64)
        try:
            w_frac = choose_w_frac(cb, config.codebook_bits)
        except CapacityError as exc:
            raise CapacityError(f"layer {layer.name}: {exc}") from None
        w_fracs.append(w_frac)
        qcodebooks.append(quantize_codebook(cb, w_frac, config.codebook_bits))
        qbiases.append(quantize_bias(layer.name, layer.bias, layer.n_out, w_frac, config))
    return w_fracs, qcodebooks, qbiases


def _pe_stats(image: PackedImage, layout: _Layout, entries, padding, words) -> None:
    n = image.config.n_pes
    ptr_entries = sum(image.layers[k].n_in + 1 for k, *_ in layout.tiles)
    bias_entries = sum(ol for k, _, _, _, ol in layout.tiles if image.layers[k].has_bias)
    image.stats = {"pes": [
        {"pe": p, "entries": int(entries[:, p].sum()), "padding": int(padding[:, p].sum()),
         "spmat_words": int(words[:, p].sum()), "ptr_entries": ptr_entries,
         "bias_entries": bias_entries}
        for p in range(n)]}


# ---- vectorised packer -----------------------------------------------------------------------
def _encode_tile(block: np.ndarray, config: EIEConfig):
    """CSC entry stream of one tile for all PEs at once.

    Returns ``(stream, ptr, nnz, pad)``: ``stream`` holds every PE's entries (uint64), PE
    after PE; ``ptr`` ``[N, n_in+1]`` the relative column pointers; ``nnz``/``pad`` per PE.
    """
    n = config.n_pes
    rows, n_in = block.shape
    out_local = -(-rows // n)
    padded = np.zeros((out_local * n, n_in), np.uint8)
    padded[:rows] = block
    # cube[p, j, r] = weight of local row r, column j in PE p; C-order nonzero gives the
    # entries sorted by PE, then column, then row: exactly the CSC stream order.
    cube = np.ascontiguousarray(padded.reshape(out_local, n, n_in).transpose(1, 2, 0))
    p, j, r = np.nonzero(cube)
    v = cube[p, j, r].astype(np.uint64)
    col = p * n_in + j
    prev = np.empty_like(r)
    if r.size:
        prev[0] = -1
        prev[1:] = r[:-1]
        prev[1:][col[1:] != col[:-1]] = -1
    gap = r - prev - 1                                   # zero rows before each non-zero
    step = config.max_run + 1
    npad, z = np.divmod(gap, step)
    count = npad + 1
    ends = np.cumsum(count)
    stream = np.full(int(ends[-1]) if ends.size else 0,
                     config.max_run << config.weight_bits, np.uint64)
    stream[ends - 1] = v | (z.astype(np.uint64) << np.uint64(config.weight_bits))
    lens = np.bincount(col, weights=count, minlength=n * n_in).astype(np.int64)
    ptr = np.zeros((n, n_in + 1), np.int64)
    np.cumsum(lens.reshape(n, n_in), axis=1, out=ptr[:, 1:])
    nnz = np.bincount(p, minlength=n)
    pad = np.bincount(p, weights=npad, minlength=n).astype(np.int64)
    return stream, ptr, nnz, pad


def _words(entries: np.ndarray, config: EIEConfig) -> np.ndarray:
    """Pack entries (uint64) into words, first entry in the least-significant bits."""
    epw = config.entries_per_word
    n_words = -(-entries.size // epw)
    padded = np.zeros(n_words * epw, np.uint64)
    padded[:entries.size] = entries
    shifts = (np.arange(epw, dtype=np.uint64) * np.uint64(config.entry_bits))
    return (padded.reshape(n_words, epw) << shifts).sum(axis=1, dtype=np.uint64)


def pack(layers: list[QuantLayer], config: EIEConfig) -> PackedImage:
    """Pack quantized layers into an EIE image (vectorised).

    Parameters
    ----------
    layers : the model's layers in execution order; layer ``k`` uses codebook slot ``k``.
    config : the architecture the image is packed for.

    Returns
    -------
    PackedImage
        Every memory at full depth, the tile program, per-layer info and per-PE stats.

    Raises
    ------
    ModelError
        malformed layers (shapes, indices, NaN/Inf, layer chaining).
    CapacityError
        the model does not fit a memory; the message names the memory, the PE and the
        bytes needed versus available.
    """
    _check_config(config)
    _validate_layers(layers, config)
    layout = _Layout(layers, config)
    w_fracs, qcodebooks, qbiases = _numerics(layers, config)
    _warn_wrap(layers, qcodebooks, qbiases, config)
    n = config.n_pes
    encoded = []
    n_tiles = len(layout.tiles)
    entries = np.zeros((n_tiles, n), np.int64)
    padding = np.zeros((n_tiles, n), np.int64)
    nnz = np.zeros((n_tiles, n), np.int64)
    for i, (k, _t, row0, rows, _out_local) in enumerate(layout.tiles):
        block = np.asarray(layers[k].indices[row0:row0 + rows]).astype(np.uint8)
        stream, ptr, nz, pad = _encode_tile(block, config)
        encoded.append((stream, ptr))
        entries[i] = ptr[:, -1]
        padding[i], nnz[i] = pad, nz
    spmat_bases = layout.spmat_bases(entries)

    image = PackedImage.empty(config, _layer_infos(layers, config, w_fracs, layout),
                              layout.descriptors(spmat_bases, w_fracs))
    epw = config.entries_per_word
    for i, (k, _t, row0, rows, out_local) in enumerate(layout.tiles):
        stream, ptr = encoded[i]
        starts = np.concatenate(([0], np.cumsum(entries[i])))
        base = spmat_bases[i]
        for p in range(n):
            if entries[i, p]:
                words = _words(stream[starts[p]:starts[p + 1]], config)
                image.spmat[p, base:base + words.size] = words
        pb = layout.ptr_base[i]
        even, odd = ptr[:, 0::2], ptr[:, 1::2]
        image.ptr_even[:, pb:pb + even.shape[1]] = even
        image.ptr_odd[:, pb:pb + odd.shape[1]] = odd
        if layers[k].bias is not None:
            seg = np.zeros(out_local * n, np.int64)
            seg[:rows] = qbiases[k][row0:row0 + rows]
            bb = layout.bias_base[i]
            image.bias[:, bb:bb + out_local] = seg.reshape(out_local, n).T
    for k, q in enumerate(qcodebooks):
        image.codebook[k * config.codebook_size:(k + 1) * config.codebook_size] = q
    for info in image.layers:
        sl = slice(info.first_tile, info.first_tile + info.n_tiles)
        info.nnz, info.padding = int(nnz[sl].sum()), int(padding[sl].sum())
    _pe_stats(image, layout, entries, padding, -(-entries // epw))
    return image


# ---- reference packer (loops; independent oracle) --------------------------------------------
def pack_reference(layers: list[QuantLayer], config: EIEConfig) -> PackedImage:
    """Straightforward loop-per-weight packer producing the same image as :func:`pack`.

    Used as the benchmark baseline and as an independent oracle in the tests; it shares
    only the input validation and memory-base allocation rules with :func:`pack`.
    """
    _check_config(config)
    _validate_layers(layers, config)
    layout = _Layout(layers, config)
    w_fracs, qcodebooks, qbiases = _numerics(layers, config)
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
    image = PackedImage.empty(config, _layer_infos(layers, config, w_fracs, layout),
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
    _pe_stats(image, layout, entries, padding, -(-entries // epw))
    return image


# ---- decoding ----------------------------------------------------------------------------------
def _corrupt(msg: str) -> ValueError:
    return ImageError(msg)


def _tile_matrix(image: PackedImage, info: LayerInfo, d: Descriptor, t: int, out: np.ndarray):
    """Decode one tile of one layer from the raw memories into ``out`` (indices)."""
    cfg = image.config
    n, n_in = cfg.n_pes, info.n_in
    eb, epw = cfg.entry_bits, cfg.entries_per_word
    half = (n_in + 2) // 2
    row0 = t * cfg.rows_per_tile
    shifts = np.arange(epw, dtype=np.uint64) * np.uint64(eb)
    emask = np.uint64((1 << eb) - 1)
    vmask = np.uint64((1 << cfg.weight_bits) - 1)
    if d.ptr_base + half > cfg.ptr_depth:
        raise _corrupt(f"layer {info.name} tile {t}: pointers run past the end of the "
                       f"pointer banks")
    for p in range(n):
        ptr = np.empty(2 * half, np.int64)
        ptr[0::2] = image.ptr_even[p, d.ptr_base:d.ptr_base + half]
        ptr[1::2] = image.ptr_odd[p, d.ptr_base:d.ptr_base + half]
        ptr = ptr[:n_in + 1]
        lens = np.diff(ptr)
        if ptr[0] != 0 or np.any(lens < 0):
            raise _corrupt(f"layer {info.name} tile {t} PE {p}: column pointers are not "
                           f"non-decreasing from 0")
        total = int(ptr[-1])
        if not total:
            continue
        n_words = -(-total // epw)
        if d.spmat_base + n_words > cfg.spmat_depth:
            raise _corrupt(f"layer {info.name} tile {t} PE {p}: {total} entries run past "
                           f"the end of pe_spmat")
        words = image.spmat[p, d.spmat_base:d.spmat_base + n_words].astype(np.uint64)
        ents = ((words[:, None] >> shifts) & emask).ravel()[:total]
        v = (ents & vmask).astype(np.int64)
        z = (ents >> np.uint64(cfg.weight_bits)).astype(np.int64)
        cs = np.cumsum(z + 1)
        col = np.repeat(np.arange(n_in), lens)
        before = np.concatenate(([0], cs))[ptr[:-1]]
        r = cs - 1 - before[col]
        keep = v != 0
        r, col, v = r[keep], col[keep], v[keep]
        rows = row0 + r * n + p
        if r.size and (int(r.max()) >= d.out_local or int(rows.max()) >= info.n_out):
            raise _corrupt(f"layer {info.name} tile {t} PE {p}: an entry addresses a row "
                           f"past the tile")
        out[rows, col] = v


def unpack(image: PackedImage) -> list[np.ndarray]:
    """Decode every layer's codebook-index matrix ``[n_out, n_in]`` (uint8) from the memories.

    Only the raw words, pointer banks and program descriptors are used (plus each layer's
    ``n_in``/``n_out``/``first_tile``/``n_tiles`` from ``image.layers``).

    Raises
    ------
    contract.image_read.ImageError
        when pointers or entries are inconsistent (a corrupt image).
    """
    result = []
    for info in image.layers:
        out = np.zeros((info.n_out, info.n_in), np.uint8)
        for t in range(info.n_tiles):
            _tile_matrix(image, info, image.program[info.first_tile + t], t, out)
        result.append(out)
    return result


def unpack_values(image: PackedImage) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Integer weights and biases as the array sees them.

    Returns
    -------
    values : list of int64 ``[n_out, n_in]``: the signed codebook value of every weight
        (``w_frac`` fraction bits), read through the layer's codebook slot.
    biases : list of int64 ``[n_out]``: accumulator-format biases read from the bias
        memory (``act_frac + w_frac`` fraction bits); all zeros for layers without bias.
    """
    cfg = image.config
    cs = cfg.codebook_size
    values, biases = [], []
    for info, idx in zip(image.layers, unpack(image), strict=True):
        first = image.program[info.first_tile]
        values.append(image.codebook[first.slot * cs + idx.astype(np.int64)].astype(np.int64))
        bias = np.zeros(info.n_out, np.int64)
        for t in range(info.n_tiles):
            d = image.program[info.first_tile + t]
            if not d.bias_en:
                continue
            seg = image.bias[:, d.bias_base:d.bias_base + d.out_local].T.reshape(-1)
            row0 = t * cfg.rows_per_tile
            rows = min(cfg.rows_per_tile, info.n_out - row0)
            bias[row0:row0 + rows] = seg[:rows]
        biases.append(bias)
    return values, biases

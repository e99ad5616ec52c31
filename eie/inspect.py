"""Statistics of a packed image, read straight from its memories (``eie inspect``); for an
ESE image the same statistics of its matrices plus the LSTM's own memories."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from contract.decode import column_pointers, raw_entries, split_entries
from contract.image import PackedImage
from contract.lstm_image import LSTMImage
from contract.lstm_layout import padded

__all__ = ["ImageStats", "image_stats", "tile_entries", "lstm_image_stats"]


def tile_entries(image: PackedImage, tile: int, pe: int, n_in: int) -> np.ndarray:
    """The raw entries (``v | z << weight_bits``) of one PE's part of one tile, padding
    included (``contract.decode``; raises ``ImageDecodeError`` on a corrupt tile)."""
    desc = image.program[tile]
    pointers = column_pointers(image, desc, n_in, where=f"tile {tile}")
    return raw_entries(image, desc, pe, int(pointers[pe, -1]), where=f"tile {tile}")


@dataclass
class ImageStats:
    config: object
    layers: list[dict] = field(default_factory=list)
    pes: list[dict] = field(default_factory=list)
    totals: dict = field(default_factory=dict)

    def format(self) -> str:
        c = self.config
        # names longer than 9 characters (an LSTM's "lstm.l0.gates") widen the first column
        w = max([10] + [len(row["name"]) + 1 for row in self.layers])
        lines = [f"image: {c.n_pes} PEs, queue depth {c.queue_depth}, "
                 f"{c.weight_bits}-bit index, {c.index_bits}-bit relative index",
                 "",
                 f"{'layer':<{w}}{'shape':>12}{'nnz':>9}{'density':>9}{'padding':>9}"
                 f"{'tiles':>7}{'w_frac':>8}{'imbalance':>11}"]
        for row in self.layers:
            lines.append(f"{row['name']:<{w}}{row['shape']:>12}{row['nnz']:>9}"
                         f"{row['density']:>9.3f}{row['padding']:>9}{row['tiles']:>7}"
                         f"{row['w_frac']:>8}{row['imbalance']:>11.3f}")
        lines += ["", "per PE, bytes used of capacity (pointer and bias regions are shared):",
                  f"{'PE':>4}{'entries':>9}{'padding':>9}{'spmat B':>10}{'of':>9}"
                      f"{'ptr B':>8}{'of':>8}{'bias B':>8}{'of':>8}"]
        for row in self.pes:
            lines.append(f"{row['pe']:>4}{row['entries']:>9}{row['padding']:>9}"
                         f"{row['spmat_bytes']:>10}{row['spmat_capacity']:>9}"
                         f"{row['ptr_bytes']:>8}{row['ptr_capacity']:>8}"
                         f"{row['bias_bytes']:>8}{row['bias_capacity']:>8}")
        t = self.totals
        lines += ["",
                  f"dense float32 weights+bias: {t['dense_bytes']} B",
                  f"packed (spmat words + pointers + codebooks + bias): {t['packed_bytes']} B"
                  f"  -> compression {t['ratio']:.1f}x",
                  f"Huffman-coded entries (v: {t['huffman_v_bits']} b, z: {t['huffman_z_bits']}"
                  f" b) + pointers + codebooks + bias: {t['huffman_bytes']} B"
                  f"  -> compression {t['huffman_ratio']:.1f}x (storage figure only)"]
        return "\n".join(lines)


def image_stats(image: PackedImage) -> ImageStats:
    from compiler.huffman import huffman_report

    c = image.config
    n = c.n_pes
    stats = ImageStats(config=c)
    entries_pe = np.zeros(n, np.int64)
    padding_pe = np.zeros(n, np.int64)
    words_pe = np.zeros(n, np.int64)
    ptr_top = 0
    bias_top = 0
    all_v, all_z = [], []
    for layer in image.layers:
        layer_entries = np.zeros(n, np.int64)
        layer_pad_pe = np.zeros(n, np.int64)
        layer_padding = 0
        for tile in range(layer.first_tile, layer.first_tile + layer.n_tiles):
            desc = image.program[tile]
            # The Huffman figure codes every stored entry, padding included, so this reads
            # the raw (v, z) stream rather than the located non-zeros the golden model uses.
            where = f"layer {layer.name} tile {tile - layer.first_tile}"
            pointers = column_pointers(image, desc, layer.n_in, where=where)
            for pe in range(n):
                e = raw_entries(image, desc, pe, int(pointers[pe, -1]), where=where)
                v, z = split_entries(e, c)
                all_v.append(v)
                all_z.append(z)
                layer_entries[pe] += len(e)
                pad = int(np.sum(v == 0))
                padding_pe[pe] += pad
                layer_pad_pe[pe] += pad
                layer_padding += pad
                words_pe[pe] += -(-len(e) // c.entries_per_word)
            ptr_top = max(ptr_top, desc.ptr_base + (layer.n_in + 2) // 2)
            bias_top = max(bias_top, desc.bias_base + desc.out_local)
        entries_pe += layer_entries
        nnz = int(layer_entries.sum()) - layer_padding
        mean = layer_entries.mean() if layer_entries.any() else 1.0
        stats.layers.append(dict(
            name=layer.name, shape=f"{layer.n_out}x{layer.n_in}", nnz=nnz,
            density=nnz / (layer.n_in * layer.n_out), padding=layer_padding,
            tiles=layer.n_tiles, w_frac=layer.w_frac,
            imbalance=float(layer_entries.max() / mean) if layer_entries.any() else 1.0,
            pe_nnz=(layer_entries - layer_pad_pe).tolist(), pe_padding=layer_pad_pe.tolist()))
    ptr_bytes = 2 * ptr_top * c.pointer_bits // 8
    bias_bytes = bias_top * c.acc_bits // 8
    for pe in range(n):
        stats.pes.append(dict(
            pe=pe, entries=int(entries_pe[pe]), padding=int(padding_pe[pe]),
            spmat_bytes=int(words_pe[pe]) * c.word_bits // 8,
            spmat_capacity=c.spmat_depth * c.word_bits // 8,
            ptr_bytes=ptr_bytes, ptr_capacity=2 * c.ptr_depth * c.pointer_bits // 8,
            bias_bytes=bias_bytes, bias_capacity=c.bias_depth * c.acc_bits // 8))
    dense = sum(l.n_in * l.n_out + (l.n_out if l.has_bias else 0) for l in image.layers) * 4
    codebook_bytes = len(image.layers) * c.codebook_size * c.codebook_bits // 8
    fixed = n * (ptr_bytes + bias_bytes) + codebook_bytes
    packed = int(words_pe.sum()) * c.word_bits // 8 + fixed
    v = np.concatenate(all_v) if all_v else np.zeros(0, np.int64)
    z = np.concatenate(all_z) if all_z else np.zeros(0, np.int64)
    huffman = huffman_report(v, z, v_bits=c.weight_bits, z_bits=c.index_bits)
    hv, hz = huffman["huffman_v_bits"], huffman["huffman_z_bits"]
    huff = -(-huffman["huffman_bits"] // 8) + fixed
    stats.totals = dict(dense_bytes=dense, packed_bytes=packed, ratio=dense / max(packed, 1),
                        huffman_v_bits=hv, huffman_z_bits=hz, huffman_bytes=huff,
                        huffman_ratio=dense / max(huff, 1))
    return stats


def _roles(image: LSTMImage) -> list[str]:
    roles = [""] * len(image.matrices.layers)
    for info in image.layers:
        roles[info.gates] = f"gates of {info.name}"
        if info.projection >= 0:
            roles[info.projection] = f"projection of {info.name}"
    for j, k in enumerate(image.head):
        roles[k] = f"head {j}"
    return roles


def lstm_image_stats(image: LSTMImage) -> str:
    """``eie inspect`` of an ESE image: the LSTM layers and matrix roles, the activation
    memory map and the cell and peephole memories against their depths (per PE, per
    channel), then :func:`image_stats` of the matrices (per matrix and per PE non-zeros,
    padding, imbalance, weight memories, compression)."""
    cfg, mem = image.config, image.memory
    ch, n = cfg.channel, cfg.n_pes
    r = 1 << cfg.table_range_log2
    lines = [f"ESE image: {cfg.channels} channel(s) of {n} PEs sharing one copy of the "
             f"weights; gates Q1.{cfg.gate_frac}, cell state {cfg.cell_bits}-bit, "
             f"sigmoid/tanh tables of {cfg.table_size} samples over [-{r}, {r})",
             "",
             f"{'LSTM layer':<12}{'n_in':>6}{'hidden':>8}{'proj':>6}{'peephole':>10}"
             f"{'cells/PE':>10}{'cell_base':>11}"]
    for info in image.layers:
        lines.append(f"{info.name:<12}{info.n_in:>6}{info.hidden:>8}{info.proj or '-':>6}"
                     f"{'yes' if info.peephole else 'no':>10}"
                     f"{padded(info.hidden, n) // n:>10}{info.cell_base:>11}")
    names = [m.name for m in image.matrices.layers]
    width = max(len(x) for x in names) + 2
    lines += ["", f"{'matrix':<{width}}role"]
    lines += [f"{name:<{width}}{role}" for name, role in zip(names, _roles(image), strict=True)]
    regions = [("X (x_t)", mem.x_base, mem.x_words)]
    regions += [(f"H{k} (h of {info.name})", base, words) for k, (info, base, words) in
                enumerate(zip(image.layers, mem.h_bases, mem.h_words, strict=True))]
    regions += [("M (cell outputs m)", mem.m_base, mem.m_words),
                ("Y0 (head)", mem.y_bases[0], mem.y_words),
                ("Y1 (head)", mem.y_bases[1], mem.y_words)]
    lines += ["", "activation memory per PE and channel (words; both buffers alike):",
              f"{'region':<24}{'base':>6}{'words':>7}"]
    lines += [f"{name:<24}{base:>6}{words:>7}" for name, base, words in regions]
    cells = sum(padded(info.hidden, n) // n for info in image.layers)
    peep = 3 * sum(padded(info.hidden, n) // n for info in image.layers if info.peephole)
    lines += [f"{'used':<24}{'':>6}{mem.words:>7}  of act_depth {ch.act_depth} "
              f"({mem.words / ch.act_depth:.0%})",
              "",
              f"cell memory per PE and channel: {cells} of cell_depth {cfg.cell_depth} words "
              f"({cells / cfg.cell_depth:.0%}), {cfg.cell_bits}-bit",
              f"peephole memory per PE (shared by the channels): {peep} of "
              f"{3 * cfg.cell_depth} words, {ch.codebook_bits}-bit",
              "",
              "matrices (each LSTM matrix is one layer of the channel's EIE image):",
              image_stats(image.matrices).format()]
    return "\n".join(lines)

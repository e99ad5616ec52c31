"""Compress and pack an LSTM for the ESE engine (docs/ese.md, "Layout" and "Compression").

Every matrix is laid out in *packed order* first (gate rows interleaved so that a PE owns
the four gate rows of its cells, inputs padded to whole PE rows), then pruned and shared
in that order, so load-balance-aware pruning balances exactly what each PE will hold.
The EIE packer then packs the matrices as the layers of one image, unchained.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from contract.lstm_config import ESEConfig
from contract.lstm_image import LSTMImage, LSTMLayerInfo
from contract.lstm_layout import gate_rows, memory_map, padded

from .errors import CapacityError, ModelError
from .fixed_point import choose_w_frac
from .lstm_model import LSTMLayerWeights, LSTMSpec, load_lstm
from .pack import pack
from .prune import balance_prune, magnitude_prune
from .quantize import share_weights
from .types import DenseLayer, QuantLayer

__all__ = ["CompressedLSTM", "lstm_matrices", "balance_per_tile", "compress_lstm", "pack_lstm",
           "make_tables"]


@dataclass
class CompressedLSTM:
    """Pruned, weight-shared matrices in packed order (what :func:`pack_lstm` consumes),
    the imported float model, and the compressed float model (:meth:`reference`).

    ``roles[k]`` says what ``layers[k]`` is: ``("gates", l)``, ``("proj", l)`` or
    ``("head", j)``. ``stats`` holds per matrix ``name``, ``shape``, ``nnz``, ``density``
    and ``rms_error`` (shared minus pruned weight over the survivors).
    """

    spec: LSTMSpec
    layers: list[QuantLayer]
    roles: list[tuple[str, int]]
    n_pes: int
    stats: list[dict] = field(default_factory=list)

    def reference_spec(self) -> LSTMSpec:
        """The compressed model in torch order: shared weights, float biases and
        peepholes."""
        n = self.n_pes
        layers, head = [], []
        for quant, (role, index) in zip(self.layers, self.roles, strict=True):
            w = quant.dense()
            if role == "gates":
                src = self.spec.layers[index]
                rows = gate_rows(src.hidden, n)
                w = w[rows]
                in_pad = padded(src.n_in, n)
                layers.append(LSTMLayerWeights(
                    src.name, w[:, :src.n_in], w[:, in_pad:in_pad + src.n_out],
                    src.bias.copy(), None, src.peephole))
            elif role == "proj":
                layers[index].w_hr = w[:, :self.spec.layers[index].hidden]
            else:
                head.append(DenseLayer(quant.name, w, quant.bias, quant.relu))
        return LSTMSpec(layers, head)

    def reference(self, dtype=None):
        """The compressed float model as a torch module (``[batch, T, n_in]`` in)."""
        from .lstm_torch import lstm_to_torch  # imports torch

        return lstm_to_torch(self.reference_spec(), dtype)


def lstm_matrices(spec: LSTMSpec, n_pes: int) -> tuple[list[DenseLayer], list]:
    """The float matrices in packed order with their roles (see :class:`CompressedLSTM`)."""
    n = n_pes
    layers, roles = [], []
    for k, layer in enumerate(spec.layers):
        cells, in_pad, out_pad = (padded(layer.hidden, n), padded(layer.n_in, n),
                                  padded(layer.n_out, n))
        w = np.zeros((4 * cells, in_pad + out_pad))
        bias = np.zeros(4 * cells)
        rows = gate_rows(layer.hidden, n)
        w[rows, :layer.n_in] = layer.w_ih
        w[rows, in_pad:in_pad + layer.n_out] = layer.w_hh
        bias[rows] = layer.bias
        layers.append(DenseLayer(f"{layer.name}.gates", w, bias, False))
        roles.append(("gates", k))
        if layer.w_hr is not None:
            proj = np.zeros((layer.proj, cells))
            proj[:, :layer.hidden] = layer.w_hr
            layers.append(DenseLayer(f"{layer.name}.proj", proj, None, False))
            roles.append(("proj", k))
    for j, dense in enumerate(spec.head):
        layers.append(dense)
        roles.append(("head", j))
    return layers, roles


def balance_per_tile(layer: DenseLayer, density: float, n_pes: int, rows_per_tile: int):
    """ESE load-balance-aware pruning of each row tile on its own."""
    weight = layer.weight.copy()
    for start in range(0, layer.n_out, rows_per_tile):
        block = DenseLayer(layer.name, weight[start:start + rows_per_tile], None, False)
        weight[start:start + rows_per_tile] = balance_prune([block], density, n_pes)[0].weight
    return DenseLayer(layer.name, weight, layer.bias, layer.relu)


def compress_lstm(model, config: ESEConfig, *, density: float | None = None, bits: int = 4,
                  balance: bool = False) -> CompressedLSTM:
    """Import, prune (magnitude, or ESE's load-balance-aware per matrix and row tile) and
    share (a k-means codebook per matrix). ``density=None`` keeps the model's zeros."""
    spec = model if isinstance(model, LSTMSpec) else load_lstm(model)
    n = config.n_pes
    dense, roles = lstm_matrices(spec, n)
    if density is not None:
        if balance:
            dense = [balance_per_tile(d, density, n, config.channel.rows_per_tile)
                     for d in dense]
        else:
            dense = magnitude_prune(dense, density)
    elif balance:
        raise ModelError("--balance needs --density (the fraction of weights to keep)")
    quant, stats = [], []
    for d in dense:
        q = share_weights(d, bits)
        quant.append(q)
        keep = d.weight != 0
        err = (q.dense() - d.weight)[keep]
        stats.append({"name": d.name, "shape": list(d.weight.shape), "nnz": int(keep.sum()),
                      "density": float(keep.mean()),
                      "rms_error": float(np.sqrt(np.mean(err ** 2))) if err.size else 0.0})
    return CompressedLSTM(spec, quant, roles, n, stats)


def make_tables(config: ESEConfig) -> tuple[np.ndarray, np.ndarray]:
    """The σ and tanh tables: ``T[s] = rint(f(-R + s * 2R / K) * 2**gate_frac)``."""
    r = float(1 << config.table_range_log2)
    k = 1 << config.table_segments_log2
    x = -r + np.arange(k + 1) * (2 * r / k)
    scale = float(1 << config.gate_frac)
    sigmoid = np.rint(scale / (1.0 + np.exp(-x))).astype(np.int64)
    tanh = np.rint(np.tanh(x) * scale).astype(np.int64)
    return sigmoid, tanh


def _peepholes(spec: LSTMSpec, config: ESEConfig, cell_bases: list[int]):
    n, bits = config.n_pes, config.channel.codebook_bits
    memory = np.zeros((n, 3 * config.cell_depth), np.int64)
    fracs = []
    for layer, base in zip(spec.layers, cell_bases, strict=True):
        if layer.peephole is None:
            fracs.append(0)
            continue
        frac = choose_w_frac(layer.peephole.ravel(), bits)
        q = np.rint(layer.peephole * 2.0 ** frac).astype(np.int64)     # [3, H]
        r = np.arange(layer.hidden)
        for gate in range(3):
            memory[r % n, 3 * (base + r // n) + gate] = q[gate]
        fracs.append(frac)
    return memory, fracs


def pack_lstm(compressed: CompressedLSTM, config: ESEConfig) -> LSTMImage:
    """Pack compressed matrices, tables and peepholes into an :class:`LSTMImage`.

    Raises
    ------
    CapacityError
        the model does not fit (names the flag to change and the size needed).
    """
    spec, n = compressed.spec, config.n_pes
    if compressed.n_pes != n:
        raise ModelError(f"the model was laid out for {compressed.n_pes} PEs, the config has "
                         f"{n}")
    if len(spec.layers) > config.max_lstm_layers:
        raise CapacityError(f"--max-lstm-layers {len(spec.layers)} needed, "
                            f"{config.max_lstm_layers} configured")
    ch = config.channel
    mem = memory_map(spec.n_in, [x.n_out for x in spec.layers], [x.hidden for x in spec.layers],
                     [h.n_out for h in spec.head], n)
    if mem.words > ch.act_depth:
        raise CapacityError(f"--act-depth {mem.words} needed, {ch.act_depth} configured (the "
                            f"activation memory map of {len(spec.layers)} LSTM layers)")
    cell_bases, at = [], 0
    for layer in spec.layers:
        cell_bases.append(at)
        at += padded(layer.hidden, n) // n
    if at > config.cell_depth:
        raise CapacityError(f"--cell-depth {at} needed, {config.cell_depth} configured (cell "
                            f"states per PE)")
    matrices = pack(compressed.layers, ch, chain=False)
    peephole, fracs = _peepholes(spec, config, cell_bases)
    index = {role: k for k, role in enumerate(compressed.roles)}
    infos = [LSTMLayerInfo(name=layer.name, n_in=layer.n_in, hidden=layer.hidden,
                           proj=layer.proj, gates=index[("gates", k)],
                           projection=index.get(("proj", k), -1),
                           peephole=layer.peephole is not None, peep_frac=fracs[k],
                           cell_base=cell_bases[k])
             for k, layer in enumerate(spec.layers)]
    head = [index[("head", j)] for j in range(len(spec.head))]
    sigmoid, tanh = make_tables(config)
    return LSTMImage(config=config, matrices=matrices, layers=infos, head=head, memory=mem,
                     sigmoid=sigmoid, tanh=tanh, peephole=peephole)

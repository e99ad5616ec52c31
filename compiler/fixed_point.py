"""Fixed-point numerics of the packer (docs/numerics.md): each layer's ``w_frac``, the
integer codebook and biases, and the accumulator wrap-around warning. Shared by both packers
(``compiler.pack`` and ``compiler.pack_reference``).
"""

from __future__ import annotations

import logging

import numpy as np

from contract.config import EIEConfig

from .errors import CapacityError

__all__ = ["MAX_W_FRAC", "choose_w_frac", "quantize_codebook", "quantize_bias",
           "worst_case_accumulator", "warn_wrap", "layer_numerics"]

MAX_W_FRAC = 30

# The wrap warning is the packer's: it keeps the logger name ``compiler.pack`` that
# docs/image-format.md documents and eie.bench silences.
log = logging.getLogger("compiler.pack")


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


def _bias_w_frac(bias, config: EIEConfig) -> int:
    """Largest ``w_frac`` in ``[0, MAX_W_FRAC]`` whose bias fits the accumulator (0 when
    none does: :func:`quantize_bias` then names the row that does not fit)."""
    b = np.asarray(bias, np.float64)
    lim = 1 << (config.acc_bits - 1)
    for w_frac in range(MAX_W_FRAC, 0, -1):
        q = np.rint(b * 2.0 ** (config.act_frac + w_frac))
        if np.all((q >= -lim) & (q <= lim - 1)):
            return w_frac
    return 0


def worst_case_accumulator(indices, qcodebook, qbias, config: EIEConfig) -> int:
    """Largest ``|acc|`` any input can reach in a layer (docs/numerics.md, wrap-around).

    ``max_i sum_j |C[v_ij]| * 2**(act_bits-1) + |bias_i|``; the accumulator can wrap only if
    this is at least ``2**(acc_bits-1)``.
    """
    abs_c = np.abs(np.asarray(qcodebook, np.int64))
    rows = abs_c[np.asarray(indices, np.intp)].sum(axis=1)
    worst = rows * (1 << (config.act_bits - 1)) + np.abs(np.asarray(qbias, np.int64))
    return int(worst.max()) if worst.size else 0


def warn_wrap(layers, qcodebooks, qbiases, config: EIEConfig) -> None:
    """Log at INFO level (logger ``compiler.pack``) each layer whose accumulator could wrap
    for some input.

    Only INFO: the bound assumes every input at full scale with the worst signs, which
    almost every trained layer exceeds, so as a warning it fired on every model. Whether
    accumulators actually wrap depends on the inputs: ``golden.run`` counts it
    (``GoldenResult.wraps``), and ``eie pack --data`` warns from those counts.
    """
    for layer, qcb, qb in zip(layers, qcodebooks, qbiases, strict=True):
        worst = worst_case_accumulator(layer.indices, qcb, qb, config)
        if worst >= 1 << (config.acc_bits - 1):
            log.info("layer %s: the %d-bit accumulator could wrap for inputs near full scale "
                     "(worst-case bound |acc| <= 2**%.1f, not an observed wrap); results stay "
                     "bit-exact but may differ from float", layer.name, config.acc_bits,
                     np.log2(worst))


def layer_numerics(layers, config: EIEConfig):
    """``(w_fracs, qcodebooks, qbiases)`` of every layer: its fraction bits, its codebook
    padded to ``2**weight_bits`` values and quantized, and its quantized bias (zeros if
    none).

    Raises
    ------
    CapacityError
        a codebook or bias does not fit (the message names the layer).
    """
    w_fracs, qcodebooks, qbiases = [], [], []
    for layer in layers:
        cb = np.zeros(config.codebook_size)
        cb[:len(layer.codebook)] = np.asarray(layer.codebook, np.float64)
        try:
            w_frac = choose_w_frac(cb, config.codebook_bits)
        except CapacityError as exc:
            raise CapacityError(f"layer {layer.name}: {exc}") from None
        if layer.bias is not None:
            # The bias shares the accumulator's act_frac + w_frac fraction bits: a layer
            # whose weights are all zero (w_frac 30 from an all-zero codebook) or tiny must
            # give up fraction bits for a large bias rather than be refused.
            w_frac = min(w_frac, _bias_w_frac(layer.bias, config))
        w_fracs.append(w_frac)
        qcodebooks.append(quantize_codebook(cb, w_frac, config.codebook_bits))
        qbiases.append(quantize_bias(layer.name, layer.bias, layer.n_out, w_frac, config))
    return w_fracs, qcodebooks, qbiases

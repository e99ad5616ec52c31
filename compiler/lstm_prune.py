"""ESE's load-balance-aware prune-and-retrain for LSTMs (docs/ese.md, "Compression").

The masks are chosen on the matrices in *packed order* (:func:`compiler.lstm_pack.
lstm_matrices`: gate rows interleaved so a PE owns the four gate rows of its cells, inputs
padded to whole PE rows), so the balance is over exactly what each PE holds, row tile by
row tile, as :func:`compiler.lstm_pack.compress_lstm` prunes. They are then mapped back to
the torch parameters (``weight_ih_l{k}``, ``weight_hh_l{k}``, ``weight_hr_l{k}``, the head's
``.weight``) so that a retraining loop can keep pruned weights at zero. Biases and
peepholes are not pruned.

torch is imported inside the functions that touch a module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from contract.lstm_config import ESEConfig
from contract.lstm_layout import gate_rows, padded

from .lstm_model import LSTMSpec, load_lstm
from .lstm_pack import balance_per_tile, lstm_matrices
from .prune import density_schedule, magnitude_prune

__all__ = ["lstm_masks", "apply_lstm_masks", "iterative_prune_lstm"]


def _param(layer_name: str, what: str, k: int) -> str:
    """The state_dict key of ``what`` (``weight_ih``...) of layer ``k`` named
    ``<prefix>l<k>`` by :func:`compiler.lstm_model.load_lstm`."""
    prefix = layer_name[:-len(f"l{k}")]
    return f"{prefix}{what}_l{k}"


def lstm_masks(model, density: float, config: ESEConfig, *,
               balance: bool = True) -> dict[str, np.ndarray]:
    """Which weights survive pruning to ``density``, per torch parameter.

    Parameters
    ----------
    model : an ``nn.Module``, a state_dict, a file or an :class:`LSTMSpec`.
    density : fraction of each packed matrix's weights kept (padding included, as
        :func:`compiler.prune.balance_prune` counts).
    config : the ESE config (its PE count and row tile set the balance).
    balance : ESE load-balance-aware pruning (equal non-zeros per PE in every row tile of
        every matrix); ``False``: magnitude pruning per matrix.

    Returns
    -------
    dict of state_dict key -> bool array of the parameter's shape (``True`` = kept).

    Raises
    ------
    ModelError
        from the import; ``ValueError`` for a density outside [0, 1].
    """
    spec = model if isinstance(model, LSTMSpec) else load_lstm(model)
    n = config.n_pes
    dense, roles = lstm_matrices(spec, n)
    if balance:
        pruned = [balance_per_tile(d, density, n, config.channel.rows_per_tile) for d in dense]
    else:
        pruned = magnitude_prune(dense, density)
    masks = {}
    for layer, (role, index) in zip(pruned, roles, strict=True):
        keep = layer.weight != 0
        if role == "gates":
            src = spec.layers[index]
            rows = gate_rows(src.hidden, n)
            in_pad = padded(src.n_in, n)
            masks[_param(src.name, "weight_ih", index)] = keep[rows, :src.n_in]
            masks[_param(src.name, "weight_hh", index)] = keep[rows, in_pad:in_pad + src.n_out]
        elif role == "proj":
            src = spec.layers[index]
            masks[_param(src.name, "weight_hr", index)] = keep[:, :src.hidden]
        else:
            masks[spec.head[index].name + ".weight"] = keep
    return masks


def apply_lstm_masks(module, masks: Mapping) -> None:
    """Zero the pruned weights of ``module`` in place (``masks`` as :func:`lstm_masks` gives,
    keyed by the module's parameter names). Call it after every optimiser step.

    Raises
    ------
    KeyError
        a mask for a parameter the module does not have.
    """
    import torch

    params = dict(module.named_parameters())
    missing = sorted(set(masks) - set(params))
    if missing:
        raise KeyError(f"masks for unknown parameter(s): {', '.join(missing)}")
    with torch.no_grad():
        for name, mask in masks.items():
            param = params[name]
            param.mul_(torch.as_tensor(np.asarray(mask), device=param.device).to(param.dtype))


def iterative_prune_lstm(module, target_density: float, steps: int, config: ESEConfig, *,
                         train_fn: Callable | None = None,
                         balance: bool = True) -> dict[str, np.ndarray]:
    """Prune-and-retrain an LSTM module in place down to ``target_density``.

    Parameters
    ----------
    module : an ``nn.Module`` holding one ``nn.LSTM`` (or ``PeepholeLSTM``) and an optional
        ``nn.Linear`` head, as :func:`compiler.lstm_model.load_lstm` reads it.
    target_density : in (0, 1]; the density after step ``s`` is ``target ** (s / steps)``.
    steps : prune steps.
    config : the ESE config the model will be packed for (PE count, row tiles).
    train_fn : ``train_fn(module, masks)``, called after each prune step with the masks
        fixed; it must call :func:`apply_lstm_masks` after every optimiser step (the masks
        are applied again when it returns in any case). ``None`` prunes without retraining.
    balance : as in :func:`lstm_masks`.

    Returns
    -------
    The final masks. Weights already zero stay zero, so each step's masks are a subset of
    the step before's.
    """
    masks = {}
    for density in density_schedule(target_density, steps):
        masks = lstm_masks(module, density, config, balance=balance)
        apply_lstm_masks(module, masks)
        if train_fn is not None:
            train_fn(module, masks)
            apply_lstm_masks(module, masks)
    return masks

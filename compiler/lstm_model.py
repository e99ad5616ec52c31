"""Import of LSTM models: ``torch.nn.LSTM`` (or :class:`compiler.lstm_torch.PeepholeLSTM`)
state_dicts, alone or inside a module, with an optional head of ``nn.Linear`` layers.

Input convention (a state_dict cannot tell ``batch_first``): every frame sequence this
project takes is batch first, ``[T, n_in]`` or ``[batch, T, n_in]``, whatever the
module's own ``batch_first`` was; the head is applied to ``h_t`` of the last layer at every
time step.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .errors import ModelError
from .model import _as_array, _is_module, _load_file
from .types import DenseLayer

__all__ = ["LSTMLayerWeights", "LSTMSpec", "load_lstm", "load_state", "is_lstm_state"]

_LSTM_KEY = re.compile(r"^(?P<prefix>(?:.*\.)?)weight_ih_l0$")


@dataclass
class LSTMLayerWeights:
    """One LSTM layer in float, torch's gate order (i, f, g, o) and conventions.

    ``w_ih`` [4H, I], ``w_hh`` [4H, P], ``bias`` [4H] (``b_ih + b_hh``; zeros without
    biases), ``w_hr`` [P, H] or None, ``peephole`` [3, H] (``w_ci, w_cf, w_co``) or None.
    """

    name: str
    w_ih: np.ndarray
    w_hh: np.ndarray
    bias: np.ndarray
    w_hr: np.ndarray | None
    peephole: np.ndarray | None

    @property
    def n_in(self) -> int:
        return self.w_ih.shape[1]

    @property
    def hidden(self) -> int:
        return self.w_ih.shape[0] // 4

    @property
    def proj(self) -> int:
        return 0 if self.w_hr is None else self.w_hr.shape[0]

    @property
    def n_out(self) -> int:
        return self.proj or self.hidden


@dataclass
class LSTMSpec:
    """An LSTM stack and its per-frame head, in float."""

    layers: list[LSTMLayerWeights]
    head: list[DenseLayer]

    @property
    def n_in(self) -> int:
        return self.layers[0].n_in

    @property
    def n_out(self) -> int:
        return self.head[-1].n_out if self.head else self.layers[-1].n_out


def _state(source) -> Mapping:
    if _is_module(source):
        return source.state_dict()
    if isinstance(source, Mapping):
        return source
    return _load_file(source)


def load_state(source) -> Mapping:
    """The state_dict of an ``nn.Module``, a mapping as it is, or a ``.pt``/``.safetensors``
    file (``weights_only=True``), to tell an LSTM from an MLP with :func:`is_lstm_state`
    before importing it."""
    return _state(source)


def is_lstm_state(state: Mapping) -> bool:
    """Whether a state_dict holds recurrent weights (``...weight_ih_l0``)."""
    return any(_LSTM_KEY.match(str(k)) for k in state)


def _tensor(state, key: str) -> np.ndarray:
    value = _as_array(state[key])
    if value is None:
        raise ModelError(f"{key} is not a tensor")
    value = np.asarray(value, np.float64)
    if not np.all(np.isfinite(value)):
        raise ModelError(f"{key} holds {int(np.sum(~np.isfinite(value)))} NaN/Inf values")
    return value


def _layer(state, prefix: str, k: int, width: int | None) -> LSTMLayerWeights:
    key = f"{prefix}%s_l{k}"
    missing = [key % n for n in ("weight_ih", "weight_hh") if key % n not in state]
    if missing:
        raise ModelError(f"LSTM layer {k}: missing {', '.join(missing)}")
    w_ih, w_hh = _tensor(state, key % "weight_ih"), _tensor(state, key % "weight_hh")
    w_hr = _tensor(state, key % "weight_hr") if key % "weight_hr" in state else None
    if w_ih.ndim != 2 or w_hh.ndim != 2:
        raise ModelError(f"LSTM layer {k}: weights must be matrices")
    rows, cols = w_hh.shape
    hidden = w_hr.shape[1] if w_hr is not None else cols
    if rows != 4 * hidden:
        kind = {3: "a GRU", 1: "a plain RNN"}.get(rows // max(hidden, 1) if
                                                  rows % max(hidden, 1) == 0 else 0)
        what = f"looks like {kind}'s" if kind else "is not an LSTM's"
        raise ModelError(f"layer {k}: weight_hh of shape {list(w_hh.shape)} {what} "
                         f"(an LSTM has 4 x hidden rows); only nn.LSTM is supported")
    proj = w_hr.shape[0] if w_hr is not None else hidden
    if w_ih.shape[0] != 4 * hidden or cols != proj:
        raise ModelError(f"LSTM layer {k}: weight_ih {list(w_ih.shape)}, weight_hh "
                         f"{list(w_hh.shape)} do not fit hidden {hidden}, proj {proj}")
    if width is not None and w_ih.shape[1] != width:
        raise ModelError(f"LSTM layer {k}: takes {w_ih.shape[1]} inputs, layer {k - 1} "
                         f"gives {width}")
    bias = np.zeros(4 * hidden)
    for name in ("bias_ih", "bias_hh"):
        if key % name in state:
            b = _tensor(state, key % name)
            if b.shape != (4 * hidden,):
                raise ModelError(f"{key % name} has shape {list(b.shape)}, expected "
                                 f"[{4 * hidden}]")
            bias = bias + b
    peephole = _tensor(state, key % "peephole") if key % "peephole" in state else None
    if peephole is not None and peephole.shape != (3, hidden):
        raise ModelError(f"{key % 'peephole'} has shape {list(peephole.shape)}, expected "
                         f"[3, {hidden}]")
    return LSTMLayerWeights(f"{prefix}l{k}", w_ih, w_hh, bias, w_hr, peephole)


def load_lstm(source) -> LSTMSpec:
    """An :class:`LSTMSpec` from an ``nn.Module``, a state_dict or a ``.pt``/``.safetensors``
    file (loaded with ``weights_only=True``; nothing is unpickled).

    The LSTM's keys may sit under a prefix (``lstm.weight_ih_l0``). Every other ``.weight``
    (with its ``.bias``) is a head ``nn.Linear``, in the order the file lists them, ReLU
    between head layers and none after the last.

    Raises
    ------
    ModelError
        No LSTM weights, a bidirectional LSTM, GRU/RNN weights, missing gate keys,
        inconsistent shapes, NaN/Inf, or a head that does not chain.
    """
    state = _state(source)
    prefixes = sorted({m["prefix"] for k in state if (m := _LSTM_KEY.match(str(k)))})
    if not prefixes:
        raise ModelError("no LSTM weights (weight_ih_l0) in the model")
    if len(prefixes) > 1:
        names = ", ".join(p or "<root>" for p in prefixes)
        raise ModelError(f"more than one recurrent module ({names})")
    prefix = prefixes[0]
    own = [str(k) for k in state if str(k).startswith(prefix) and
           re.fullmatch(r"(weight|bias)_(ih|hh|hr)_l\d+(_reverse)?|peephole_l\d+",
                        str(k)[len(prefix):])]
    if any(k.endswith("_reverse") for k in own):
        raise ModelError("bidirectional LSTMs are not supported (keys ending in _reverse)")
    n_layers = 1 + max(int(re.search(r"_l(\d+)", k).group(1)) for k in own)
    layers, width = [], None
    for k in range(n_layers):
        layer = _layer(state, prefix, k, width)
        layers.append(layer)
        width = layer.n_out
    head = []
    rest = [str(k) for k in state if str(k) not in own and str(k).endswith(".weight")]
    for key in rest:
        w = _tensor(state, key)
        if w.ndim != 2:
            raise ModelError(f"head layer {key} is not a matrix (only nn.Linear heads)")
        bkey = key[:-len("weight")] + "bias"
        b = _tensor(state, bkey) if bkey in state else None
        if w.shape[1] != width:
            raise ModelError(f"head layer {key[:-7]} takes {w.shape[1]} inputs, the layer "
                             f"before gives {width}")
        head.append(DenseLayer(key[:-7], w, b, True))
        width = w.shape[0]
    if head:
        head[-1].relu = False
    used = set(own) | {h.name + ".weight" for h in head} | \
        {h.name + ".bias" for h in head if h.bias is not None}
    unknown = [str(k) for k in state if str(k) not in used]
    if unknown:
        raise ModelError(f"unsupported parameters {unknown[:3]} (an LSTM takes only "
                         f"nn.LSTM weights and an nn.Linear head)")
    return LSTMSpec(layers, head)

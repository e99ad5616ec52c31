"""Float reference modules for LSTMs: :class:`PeepholeLSTM` (ESE's Google LSTM cell) and
:func:`lstm_to_torch`, the float model of an :class:`~compiler.lstm_model.LSTMSpec`.

This module imports torch; ``compiler/__init__.py`` does not import it, so that the command
line starts without torch.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .lstm_model import LSTMSpec

__all__ = ["PeepholeLSTM", "LSTMWithHead", "lstm_to_torch"]


class PeepholeLSTM(nn.Module):
    """An LSTM with peepholes and optional projection, batch first.

    Parameters are named as ``nn.LSTM``'s (``weight_ih_l{k}``, ``weight_hh_l{k}``,
    ``bias_ih_l{k}``, ``bias_hh_l{k}``, ``weight_hr_l{k}``) plus ``peephole_l{k}``
    ``[3, hidden]`` holding ``w_ci, w_cf, w_co``, so its state_dict packs like
    ``nn.LSTM``'s. Per step (docs/ese.md)::

        i = σ(W_i [x; h] + b_i + w_ci ⊙ c)     f = σ(W_f [x; h] + b_f + w_cf ⊙ c)
        g = tanh(W_g [x; h] + b_g)              c' = f ⊙ c + i ⊙ g
        o = σ(W_o [x; h] + b_o + w_co ⊙ c')     h' = W_hr (o ⊙ tanh(c'))

    ``forward(x)`` takes ``[batch, T, input_size]`` and returns ``(y, None)`` with ``y``
    ``[batch, T, proj_size or hidden_size]``; state starts at zero.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 proj_size: int = 0):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.num_layers, self.proj_size = num_layers, proj_size
        out = proj_size or hidden_size
        bound = 1.0 / np.sqrt(hidden_size)
        for k in range(num_layers):
            width = input_size if k == 0 else out
            shapes = {"weight_ih": (4 * hidden_size, width),
                      "weight_hh": (4 * hidden_size, out),
                      "bias_ih": (4 * hidden_size,), "bias_hh": (4 * hidden_size,),
                      "peephole": (3, hidden_size)}
            if proj_size:
                shapes["weight_hr"] = (proj_size, hidden_size)
            for name, shape in shapes.items():
                param = nn.Parameter(torch.empty(shape).uniform_(-bound, bound))
                self.register_parameter(f"{name}_l{k}", param)

    def forward(self, x):
        batch, steps, _ = x.shape
        inp = x
        for k in range(self.num_layers):
            p = {n: getattr(self, f"{n}_l{k}", None) for n in
                 ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "peephole", "weight_hr")}
            out = self.proj_size or self.hidden_size
            h = x.new_zeros(batch, out)
            c = x.new_zeros(batch, self.hidden_size)
            ys = []
            for t in range(steps):
                z = inp[:, t] @ p["weight_ih"].T + h @ p["weight_hh"].T + p["bias_ih"] \
                    + p["bias_hh"]
                zi, zf, zg, zo = z.chunk(4, dim=1)
                i = torch.sigmoid(zi + p["peephole"][0] * c)
                f = torch.sigmoid(zf + p["peephole"][1] * c)
                c = f * c + i * torch.tanh(zg)
                o = torch.sigmoid(zo + p["peephole"][2] * c)
                m = o * torch.tanh(c)
                h = m @ p["weight_hr"].T if p["weight_hr"] is not None else m
                ys.append(h)
            inp = torch.stack(ys, dim=1)
        return inp, None


class LSTMWithHead(nn.Module):
    """``lstm`` (batch first) then the head ``nn.Linear`` layers at every step."""

    def __init__(self, lstm, head: list, relus: list[bool]):
        super().__init__()
        self.lstm = lstm
        self.head = nn.ModuleList(head)
        self.relus = list(relus)

    def forward(self, x):
        y, _ = self.lstm(x)
        for layer, relu in zip(self.head, self.relus, strict=True):
            y = layer(y)
            if relu:
                y = torch.relu(y)
        return y


def lstm_to_torch(spec: LSTMSpec, dtype=None):
    """The float model of ``spec``: ``nn.LSTM`` (``batch_first=True``) or
    :class:`PeepholeLSTM` when any layer has peepholes, followed by the head; float64 by
    default. ``model(x)`` maps ``[batch, T, n_in]`` to ``[batch, T, n_out]``."""
    dtype = dtype or torch.float64
    first = spec.layers[0]
    peep = any(layer.peephole is not None for layer in spec.layers)
    kwargs = dict(input_size=first.n_in, hidden_size=first.hidden,
                  num_layers=len(spec.layers), proj_size=first.proj)
    if peep:
        lstm = PeepholeLSTM(**kwargs)
    else:
        lstm = nn.LSTM(batch_first=True, **kwargs)
    lstm = lstm.to(dtype)
    with torch.no_grad():
        for k, layer in enumerate(spec.layers):
            params = {"weight_ih": layer.w_ih, "weight_hh": layer.w_hh, "bias_ih": layer.bias,
                      "bias_hh": np.zeros_like(layer.bias), "weight_hr": layer.w_hr,
                      "peephole": layer.peephole if layer.peephole is not None
                      else np.zeros((3, layer.hidden))}
            for name, value in params.items():
                target = getattr(lstm, f"{name}_l{k}", None)
                if target is not None and value is not None:
                    target.copy_(torch.as_tensor(value, dtype=dtype))
    head = []
    for dense in spec.head:
        linear = nn.Linear(dense.n_in, dense.n_out, bias=dense.bias is not None).to(dtype)
        with torch.no_grad():
            linear.weight.copy_(torch.as_tensor(dense.weight, dtype=dtype))
            if dense.bias is not None:
                linear.bias.copy_(torch.as_tensor(dense.bias, dtype=dtype))
        head.append(linear)
    return LSTMWithHead(lstm, head, [d.relu for d in spec.head]).eval()

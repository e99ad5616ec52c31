"""The float LSTM models the LSTM tests build (batch first, a Linear head with ReLU
between its layers), shared so that every test means the same model by the same sizes."""

import torch
from torch import nn

from compiler.lstm_torch import LSTMWithHead, PeepholeLSTM


def lstm_model(n_in=7, hidden=10, layers=2, proj=5, head=(4,), peephole=False, *, seed=0,
               scale=1.0):
    """A float64 ``LSTMWithHead`` with torch's initial weights (seeded) times ``scale``;
    its state_dict has ``lstm.*`` and ``head.k.*`` keys."""
    torch.manual_seed(seed)
    if peephole:
        lstm = PeepholeLSTM(n_in, hidden, layers, proj_size=proj)
    else:
        lstm = nn.LSTM(n_in, hidden, layers, proj_size=proj, batch_first=True)
    widths = [proj or hidden, *head]
    linears = [nn.Linear(a, b) for a, b in zip(widths, widths[1:], strict=False)]
    relus = [k + 1 < len(linears) for k in range(len(linears))]
    model = LSTMWithHead(lstm, linears, relus).double()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
    return model

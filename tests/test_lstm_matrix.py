"""Golden against float torch on a matrix of random LSTMs, inside the error bound
(golden/lstm_bound.py): sizes with non-powers of two, projection on/off, 1-2 layers,
peepholes, heads, T from 1 to 100, densities 5-100 %."""

import logging

import numpy as np
import pytest
import torch
from lstm_models import lstm_model

from compiler.lstm_pack import compress_lstm, pack_lstm
from contract.config import EIEConfig
from contract.lstm_config import ESEConfig
from golden.lstm_bound import lstm_error_bound
from golden.lstm_model import quantize_sequence, run_lstm

# float64 evaluation of torch and of the bound (the bound is for exact arithmetic)
SLACK = 1e-12


def config(n_pes):
    return ESEConfig(channel=EIEConfig(n_pes=n_pes, act_frac=11, acc_depth=8, act_depth=128,
                                       spmat_depth=1024, ptr_depth=512, bias_depth=256,
                                       max_tiles=128),
                     channels=2, cell_depth=32)


CASES = [
    # n_in, hidden, layers, proj, head, peephole, steps, density, n_pes, scale
    (5, 7, 1, 0, (), False, 1, None, 3, 1.0),
    (3, 6, 1, 3, (4,), True, 100, 0.3, 4, 1.5),
    (13, 11, 2, 0, (), False, 17, 0.05, 3, 2.0),
    (8, 16, 2, 8, (5, 3), False, 40, 1.0, 4, 2.0),
    (1, 9, 2, 5, (), True, 25, 0.6, 2, 1.0),
    (6, 5, 1, 0, (7, 2), True, 60, 0.15, 5, 2.5),
    (11, 3, 2, 2, (3,), False, 100, 0.5, 1, 1.0),
    (4, 12, 1, 7, (), False, 2, 0.08, 8, 3.0),
]


@pytest.mark.parametrize("seed, case", list(enumerate(CASES)))
def test_golden_inside_the_bound(seed, case):
    logging.getLogger("compiler.pack").setLevel(logging.ERROR)
    n_in, hidden, layers, proj, head, peephole, steps, density, n_pes, scale = case
    cfg = config(n_pes)
    m = lstm_model(n_in, hidden, layers, proj, head, peephole, seed=seed, scale=scale)
    compressed = compress_lstm(m, cfg, density=density, bits=4, balance=density is not None)
    image = pack_lstm(compressed, cfg)
    x = torch.randn(3, steps, n_in, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(100 + seed))
    with torch.no_grad():
        want = compressed.reference()(x).numpy()
    got = run_lstm(image, quantize_sequence(x.numpy(), cfg))
    bound = lstm_error_bound(image, x.numpy(), per_output=True)
    assert np.all(np.isfinite(bound))                 # no case saturates or wraps
    assert np.all(np.abs(got.y - want) <= bound + SLACK)
    # and the bound says something: well under the 2% requirement of docs/ese.md
    assert bound.max() <= 0.02 * max(np.abs(want).max(), 1e-3)

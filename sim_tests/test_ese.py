"""The ESE engine under Verilator: outputs bit for bit against golden (golden/lstm_model.py)
and every frame's cycles against the cycle model (golden/lstm_cycles.py), on random LSTMs.

Each config (PEs per channel, channels) is one Verilator build, shared by the models run
on it: sizes that are not powers of two, projection on and off, 1-2 layers, a Linear head
on and off, peepholes, T from 1 to 50, densities 5-100 %, batches that do and do not
fill the channels, random host stalls, a reset in the middle of a sequence.
"""

import logging

import numpy as np
import pytest
import torch
from lstm_models import lstm_model

from compiler.lstm_pack import compress_lstm, pack_lstm
from contract.config import EIEConfig
from contract.lstm_config import ESEConfig
from golden.lstm_cycles import LSTM_PIPELINE, lstm_cycles
from golden.lstm_model import quantize_sequence, run_lstm
from rtl.ese import ESE
from sim_tests.ese_runner import simulate_lstm


def config(n_pes, channels):
    return ESEConfig(channel=EIEConfig(n_pes=n_pes, act_frac=11, acc_depth=16, act_depth=64,
                                       spmat_depth=512, ptr_depth=256, bias_depth=128,
                                       max_tiles=48),
                     channels=channels, cell_depth=32)


# n_in, hidden, layers, proj, head, peephole, steps, density, batch, scale
MODELS = {
    (1, 1): [(5, 7, 1, 0, (), False, 1, None, 1, 1.0),
             (11, 3, 2, 2, (3,), False, 50, 0.5, 2, 1.0)],
    (3, 2): [(3, 6, 1, 3, (4,), True, 30, 0.3, 3, 1.5),
             (13, 11, 2, 0, (), False, 17, 0.05, 4, 2.0)],
    (4, 3): [(8, 16, 2, 8, (5, 3), False, 12, 1.0, 2, 2.0),
             (6, 5, 1, 0, (7, 2), True, 20, 0.15, 6, 2.5)],
    (8, 4): [(9, 20, 1, 7, (), False, 8, 0.08, 5, 3.0)],
}
CASES = [(pes, model) for pes, models in MODELS.items() for model in models]


def _image_and_input(pes_channels, model, seed):
    logging.getLogger("compiler.pack").setLevel(logging.ERROR)
    n_in, hidden, layers, proj, head, peephole, steps, density, batch, scale = model
    cfg = config(*pes_channels)
    m = lstm_model(n_in, hidden, layers, proj, head, peephole, seed=seed, scale=scale)
    compressed = compress_lstm(m, cfg, density=density, bits=4, balance=density is not None)
    image = pack_lstm(compressed, cfg)
    x = torch.randn(batch, steps, n_in, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(200 + seed)).numpy()
    return image, quantize_sequence(x, cfg)


def test_pipeline_constants_are_the_models():
    assert ESE(config(2, 2)).pipeline == LSTM_PIPELINE


@pytest.mark.parametrize("seed, case", list(enumerate(CASES)))
def test_ese_matches_golden(seed, case):
    pes_channels, model = case
    image, q = _image_and_input(pes_channels, model, seed)
    want = run_lstm(image, q, trace=True)
    cycles = lstm_cycles(image, q, result=want)
    got = simulate_lstm(image, q, host_idle=0.3 if seed % 2 else 0.0, seed=seed)
    np.testing.assert_array_equal(got["q"], want.q)
    np.testing.assert_array_equal(got["cycles"], cycles.cycles)


def test_reset_mid_sequence_then_rerun():
    image, q = _image_and_input((3, 2), MODELS[(3, 2)][0], 7)
    want = run_lstm(image, q, trace=True)
    got = simulate_lstm(image, q, reset_after=300)
    np.testing.assert_array_equal(got["q"], want.q)
    np.testing.assert_array_equal(got["cycles"], lstm_cycles(image, q, result=want).cycles)


def test_baked_image():
    image, q = _image_and_input((1, 1), MODELS[(1, 1)][1], 3)
    want = run_lstm(image, q)
    got = simulate_lstm(image, q, bake=True)
    np.testing.assert_array_equal(got["q"], want.q)


def test_a_sequence_longer_than_the_rings_streams():
    """70 frames through 64 slots: the host writes frame t + 64 while later frames run
    (input-ring writes are accepted during a run); outputs and cycles as golden's."""
    image, q = _image_and_input((1, 1), MODELS[(1, 1)][1], 5)
    q = np.concatenate([q, q[:, :20]], axis=1)                 # T = 70
    want = run_lstm(image, q, trace=True)
    got = simulate_lstm(image, q)
    np.testing.assert_array_equal(got["q"], want.q)
    np.testing.assert_array_equal(got["cycles"], lstm_cycles(image, q, result=want).cycles)

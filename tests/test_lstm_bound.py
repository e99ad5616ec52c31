"""The LSTM error bound (golden/lstm_bound.py, docs/ese.md "Error bound"): golden stays
inside it against float torch, it is not vacuous, and it is void where golden saturates."""

import logging

import numpy as np
import pytest
import torch
from lstm_models import lstm_model

from compiler.lstm_pack import compress_lstm, pack_lstm
from contract.config import EIEConfig
from contract.lstm_config import ESEConfig
from golden.lstm_bound import lstm_error_bound, sigmoid, table_max_error
from golden.lstm_model import quantize_sequence, run_lstm

CONFIG = ESEConfig(channel=EIEConfig(n_pes=3, act_frac=11, acc_depth=16, act_depth=64,
                                     spmat_depth=1024, ptr_depth=256, bias_depth=128,
                                     max_tiles=16),
                   channels=2, cell_depth=32)
# float64 evaluation of torch and of the bound itself (the bound is for exact arithmetic)
SLACK = 1e-12


@pytest.fixture(autouse=True)
def _quiet():
    # random weights at 2x-3x torch's scale trip the packer's wrap warning
    logging.getLogger("compiler.pack").setLevel(logging.ERROR)


def case(seed=0, scale=2.0, n_in=12, hidden=24, layers=2, proj=12, head=(6,),
         peephole=False, density=None, steps=40, batch=4, config=CONFIG):
    m = lstm_model(n_in, hidden, layers, proj, head, peephole, seed=seed, scale=scale)
    compressed = compress_lstm(m, config, density=density, bits=4, balance=density is not None)
    image = pack_lstm(compressed, config)
    x = torch.randn(batch, steps, n_in, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        want = compressed.reference()(x).numpy()
    return image, x.numpy(), want


@pytest.mark.parametrize("peephole", [False, True])
@pytest.mark.parametrize("scale", [1.0, 2.0, 3.0])
def test_docs_case_inside_and_tight(peephole, scale):
    # docs/ese.md: 2 layers, projection, a Linear head, 40 steps
    image, x, want = case(scale=scale, peephole=peephole)
    got = run_lstm(image, quantize_sequence(x, CONFIG)).y
    err = np.abs(got - want)
    bound = lstm_error_bound(image, x, per_output=True)
    assert bound.shape == want.shape
    assert np.all(err <= bound + SLACK)
    output_scale = np.abs(want).max()
    assert bound.max() <= 0.02 * output_scale
    assert bound.max() <= 10 * err.max()
    per_sequence = lstm_error_bound(image, x)
    np.testing.assert_array_equal(per_sequence, bound.reshape(len(x), -1).max(axis=1))


def test_componentwise_is_rigorous_but_grows():
    # The MLP recursion of docs/numerics.md applied per element: valid, and vacuous after
    # a few frames on recurrent weights (docs/ese.md, "Error bound").
    image, x, want = case(scale=1.0, steps=12, batch=2)
    got = run_lstm(image, quantize_sequence(x, CONFIG)).y
    bound = lstm_error_bound(image, x, per_output=True, mode="componentwise")
    assert np.all(np.abs(got - want) <= bound + SLACK)
    frame = bound.max(axis=(0, 2))
    assert frame[-1] > 100 * frame[0]
    assert np.all(lstm_error_bound(image, x, per_output=True) <= bound)


def test_table_error_covers_every_code():
    image, _, _ = case(steps=1, batch=1)
    f = CONFIG.channel.act_frac
    # every 24-bit code, far past the clamp at +-8
    u = np.arange(-(1 << 23), 1 << 23, 97)
    from golden.lstm_model import table_lookup
    s = table_lookup(image.sigmoid, u, CONFIG)[0] / 2.0 ** 14
    t = table_lookup(image.tanh, u, CONFIG)[0] / 2.0 ** 14
    eps_s, eps_t = table_max_error(image, "sigmoid"), table_max_error(image, "tanh")
    assert np.abs(s - sigmoid(u / 2.0 ** f)).max() <= eps_s
    assert np.abs(t - np.tanh(u / 2.0 ** f)).max() <= eps_t
    # docs/ese.md: 3.05e-4 overall for σ (σ(-inf) against T[0]), 4.12e-4 for tanh
    assert eps_s == pytest.approx(5 / 2.0 ** 14, abs=1e-12)
    assert eps_t == pytest.approx(4.1177e-4, abs=5e-8)


def test_void_where_golden_saturates():
    image, x, _ = case(scale=6.0, steps=5, batch=3, layers=1, head=())
    x = x.copy()
    x[0] *= 0.1
    x[2] *= 0.1
    x[1] *= 40.0                                  # clips the input and saturates the gates
    result = run_lstm(image, quantize_sequence(x, CONFIG))
    assert result.saturation["gates"][1] > 0
    assert result.saturation["gates"][[0, 2]].sum() == 0
    bound = lstm_error_bound(image, x)
    assert np.isinf(bound[1]) and np.all(np.isfinite(bound[[0, 2]]))


def test_single_sequence_and_bad_mode():
    image, x, _ = case(steps=3, batch=2, layers=1)
    np.testing.assert_allclose(lstm_error_bound(image, x[1], per_output=True),
                               lstm_error_bound(image, x, per_output=True)[1], rtol=1e-9)
    with pytest.raises(ValueError, match="mode must be one of affine, componentwise, not 'x'"):
        lstm_error_bound(image, x, mode="x")

"""Weight sharing: k-means codebooks, exact reproduction, ternary, fine-tuning, compress()."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from torch import nn

from compiler.compress import compress
from compiler.prune import magnitude_prune
from compiler.quantize import (
    finetune_centroids,
    kmeans_1d,
    share_weights,
    ternarize,
    weight_grads,
)
from compiler.types import DenseLayer, QuantLayer


def pruned_layer(seed=0, shape=(40, 60), density=0.3):
    rng = np.random.default_rng(seed)
    layer = DenseLayer("fc", rng.standard_normal(shape), rng.standard_normal(shape[0]), True)
    return magnitude_prune([layer], density)[0]


def linear_init_error(values, k):
    """Mean squared error of nearest-centroid assignment to linearly spaced centroids
    (the k-means starting point), computed by brute force."""
    centroids = np.linspace(values.min(), values.max(), k)
    nearest = centroids[np.argmin(np.abs(values[:, None] - centroids[None, :]), axis=1)]
    return np.mean((values - nearest) ** 2)


@pytest.mark.parametrize("reseed", [False, True])
def test_share_weights_contract(reseed):
    layer = pruned_layer()
    q = share_weights(layer, bits=4, reseed_empty=reseed)
    assert isinstance(q, QuantLayer)
    assert q.codebook.shape == (16,) and q.codebook[0] == 0.0
    assert q.indices.dtype == np.uint8 and q.indices.shape == layer.weight.shape
    survivors = layer.weight != 0
    assert np.all(q.indices[survivors] >= 1)
    assert np.all(q.indices[~survivors] == 0)
    assert np.all(np.diff(q.codebook[1:]) >= 0)
    np.testing.assert_array_equal(q.bias, layer.bias)
    assert q.relu and q.name == "fc"
    # every survivor sits on its nearest centroid (brute force over the 15 centroids)
    values = layer.weight[survivors]
    dist = np.abs(values[:, None] - q.codebook[None, 1:])
    np.testing.assert_allclose(np.abs(q.dense()[survivors] - values), dist.min(axis=1))
    # Lloyd iterations beat the linear initialisation they start from
    mse = np.mean((q.dense()[survivors] - values) ** 2)
    assert mse < linear_init_error(values, 15)


def test_reseeding_uses_every_centroid_and_lowers_error():
    layer = pruned_layer(1)  # bimodal survivors: linear init leaves the gap centroids empty
    plain = share_weights(layer, reseed_empty=False)
    full = share_weights(layer)
    survivors = layer.weight != 0
    assert np.unique(plain.indices[survivors]).size < 15
    assert np.unique(full.indices[survivors]).size == 15
    err = [np.mean((q.dense()[survivors] - layer.weight[survivors]) ** 2) for q in (plain, full)]
    assert err[1] < err[0]


def test_kmeans_centroids_are_cluster_means():
    rng = np.random.default_rng(2)
    values = np.concatenate([rng.normal(-3, 0.1, 500), rng.normal(0, 0.1, 300),
                             rng.normal(4, 0.1, 200)])
    c = kmeans_1d(values, 3)
    np.testing.assert_allclose(c, [values[:500].mean(), values[500:800].mean(),
                                   values[800:].mean()])


def test_already_shared_layer_reproduced_exactly():
    rng = np.random.default_rng(3)
    palette = np.array([-0.7, -0.31, -0.05, 0.011, 0.2, 0.25, 0.5, 0.9, 1.3, 2.0])
    w = palette[rng.integers(0, 10, (30, 30))]
    w[rng.random(w.shape) < 0.5] = 0.0
    q = share_weights(DenseLayer("s", w, None, False))
    np.testing.assert_array_equal(q.dense(), w)
    np.testing.assert_array_equal(q.codebook[1:11], palette)
    np.testing.assert_array_equal(q.codebook[11:], 0.0)
    # exactly 15 distinct values still fit
    w15 = np.arange(1, 16, dtype=float)[rng.integers(0, 15, (20, 20))] / 7.0
    np.testing.assert_array_equal(share_weights(DenseLayer("f", w15, None, False)).dense(), w15)


def test_exact_path_with_adjacent_floats():
    # neighbouring doubles whose midpoint rounds (to even) onto b: a midpoint test fails
    a = np.nextafter(1.0, 2.0)
    b = np.nextafter(a, 2.0)
    assert (a + b) / 2 == b
    w = np.array([[a, b, 0.0, -b], [b, a, a, 0.0]])
    np.testing.assert_array_equal(share_weights(DenseLayer("e", w, None, False)).dense(), w)


def test_kmeans_with_many_duplicates():
    # heavy duplicates: a cluster of equal values must never be "split" into an empty half
    values = np.concatenate([np.full(1000, 0.3), np.full(1000, -0.7), np.linspace(1, 2, 40)])
    c = kmeans_1d(values, 15)
    assert np.all(np.isfinite(c)) and np.all(np.diff(c) >= 0)
    assert np.isclose(c, 0.3).any() and np.isclose(c, -0.7).any()


def test_other_widths_and_bad_bits():
    layer = pruned_layer(4)
    q = share_weights(layer, bits=2)
    assert q.codebook.shape == (4,) and q.indices.max() <= 3
    with pytest.raises(ValueError, match="bits"):
        share_weights(layer, bits=1)


def test_all_zero_layer():
    q = share_weights(DenseLayer("z", np.zeros((3, 4)), None, False))
    assert not q.indices.any() and not q.codebook.any()


def test_large_layer_vectorised():
    # ESE-sized layer: 3.25M weights at 11 % density; must not be quadratic.
    layer = pruned_layer(5, shape=(2048, 1587), density=0.11)
    q = share_weights(layer)
    survivors = layer.weight != 0
    assert np.count_nonzero(q.indices) == np.count_nonzero(survivors)


def test_ternarize():
    rng = np.random.default_rng(6)
    w = rng.standard_normal((20, 25))
    q = ternarize(DenseLayer("t", w, None, False), threshold=0.05)
    limit = 0.05 * np.abs(w).max()
    assert set(np.unique(q.dense())) <= {0.0, q.codebook[1], q.codebook[2]}
    assert np.unique(q.dense()).size == 3
    assert q.codebook[1] == pytest.approx(w[w < -limit].mean())
    assert q.codebook[2] == pytest.approx(w[w > limit].mean())
    np.testing.assert_array_equal(q.codebook[3:], 0.0)
    np.testing.assert_array_equal(q.indices == 0, np.abs(w) <= limit)
    # a ternary layer survives a second pass of k-means sharing unchanged
    again = share_weights(DenseLayer("t", q.dense(), None, False))
    np.testing.assert_array_equal(again.dense(), q.dense())


def test_finetune_centroids_sums_gradients_per_cluster():
    indices = np.array([[0, 1, 2], [1, 1, 2]], dtype=np.uint8)
    codebook = np.zeros(16)
    codebook[1:3] = [-0.5, 0.5]
    q = QuantLayer("f", indices, codebook, None, False)
    grad = np.array([[9.0, 1.0, 2.0], [3.0, -1.0, 4.0]])
    out = finetune_centroids(q, grad, lr=0.1)
    assert out.codebook[0] == 0.0
    assert out.codebook[1] == pytest.approx(-0.5 - 0.1 * (1.0 + 3.0 - 1.0))
    assert out.codebook[2] == pytest.approx(0.5 - 0.1 * (2.0 + 4.0))
    np.testing.assert_array_equal(out.indices, indices)
    assert q.codebook[1] == -0.5  # input untouched


def test_centroid_finetuning_lowers_loss():
    torch.manual_seed(0)
    x = torch.randn(256, 8)
    teacher = nn.Linear(8, 3)
    y = teacher(x).detach()
    c = compress(nn.Sequential(teacher), density=0.5, bits=2)
    before = nn.functional.mse_loss(c.to_torch()(x), y).item()
    for _ in range(20):
        model = c.to_torch()
        (grad,) = weight_grads(model, nn.functional.mse_loss(model(x), y))
        c.layers[0] = finetune_centroids(c.layers[0], grad, lr=0.01)
    after = nn.functional.mse_loss(c.to_torch()(x), y).item()
    assert after < before


@settings(max_examples=60, deadline=None)
@given(w=arrays(np.float64, st.tuples(st.integers(1, 12), st.integers(1, 12)),
                elements=st.one_of(st.just(0.0), st.floats(-8, 8, width=32))),
       bits=st.integers(2, 5))
def test_sharing_properties(w, bits):
    q = share_weights(DenseLayer("h", w, None, False), bits=bits)
    assert q.codebook.shape == (1 << bits,) and q.codebook[0] == 0.0
    np.testing.assert_array_equal(q.indices == 0, w == 0)
    assert int(q.indices.max(initial=0)) < (1 << bits)
    survivors = w != 0
    if np.unique(w[survivors]).size < (1 << bits):
        np.testing.assert_array_equal(q.dense(), w)
    elif survivors.any():
        assert q.dense()[survivors].min() >= w[survivors].min()
        assert q.dense()[survivors].max() <= w[survivors].max()


# ---- compress() ---------------------------------------------------------------------------

def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 6))


def test_compress_density_and_torch_export():
    model = mlp()
    c = compress(model, density=0.25)
    assert [s["nnz"] for s in c.stats] == [80, 24]
    assert [s["density"] for s in c.stats] == [0.25, 0.25]
    assert all(s["source_density"] == 1.0 and s["distinct"] == 15 for s in c.stats)
    assert c.density == pytest.approx(104 / 416)
    np.testing.assert_array_equal(c.source[0].weight, model[0].weight.detach().double().numpy())
    exported = c.to_torch()
    linears = [m for m in exported if isinstance(m, nn.Linear)]
    assert [type(m) for m in exported] == [nn.Linear, nn.ReLU, nn.Linear]
    for lin, q in zip(linears, c.layers, strict=True):
        assert lin.weight.dtype == torch.float32
        np.testing.assert_array_equal(lin.weight.detach().numpy(), q.dense().astype(np.float32))
        np.testing.assert_array_equal(lin.bias.detach().numpy(), q.bias.astype(np.float32))
    x = torch.randn(5, 20)
    w0 = torch.tensor(c.layers[0].dense(), dtype=torch.float32)
    w1 = torch.tensor(c.layers[1].dense(), dtype=torch.float32)
    ref = torch.relu(x @ w0.T + model[0].bias) @ w1.T + model[2].bias
    torch.testing.assert_close(exported(x), ref)


def test_compress_without_density_keeps_sparsity():
    model = mlp(1)
    with torch.no_grad():
        model[0].weight[:, ::2] = 0.0
    c = compress(model)
    assert c.stats[0]["density"] == 0.5 and c.stats[1]["density"] == 1.0
    np.testing.assert_array_equal(c.layers[0].indices == 0, model[0].weight.detach().numpy() == 0)


def test_compress_balance_and_options():
    c = compress(mlp(), density=0.25, balance=True, n_pes=4)
    assert [np.count_nonzero(c.layers[0].indices[p::4]) for p in range(4)] == [20] * 4
    with pytest.raises(ValueError, match="n_pes"):
        compress(mlp(), density=0.25, balance=True)
    with pytest.raises(ValueError, match="density"):
        compress(mlp(), balance=True, n_pes=4)
    t = compress(mlp(), ternary=True, relu=[False, True])
    assert all(s["distinct"] <= 2 for s in t.stats)
    assert [l.relu for l in t.layers] == [False, True]
    assert [l.relu for l in compress(mlp(), final_relu=True).layers] == [True, True]
    g = compress(mlp(), density=0.1, scope="global", bits=3)
    assert sum(s["nnz"] for s in g.stats) == round(0.1 * 416)
    assert all(l.codebook.shape == (8,) for l in g.layers)


def test_compress_idempotent_on_compressed_model():
    c = compress(mlp(2), density=0.3)
    again = compress(c.to_torch())
    for a, b in zip(c.layers, again.layers, strict=True):
        np.testing.assert_array_equal(b.dense(), a.dense().astype(np.float32))


if __name__ == "__main__":
    # Figures quoted in docs/compression.md: ESE-size layer, 3.25M weights at 11 % density.
    import time

    layer = pruned_layer(0, shape=(4096, 794), density=0.11)
    survivors = layer.weight != 0
    for reseed in (False, True):
        start = time.perf_counter()
        q = share_weights(layer, reseed_empty=reseed)
        seconds = time.perf_counter() - start
        rms = np.sqrt(np.mean((q.dense()[survivors] - layer.weight[survivors]) ** 2))
        print(f"reseed_empty={reseed}: {survivors.sum()} survivors, {seconds:.3f} s, "
              f"{np.unique(q.indices[survivors]).size}/15 centroids used, RMS error {rms:.5f}")
    init_rms = np.sqrt(linear_init_error(layer.weight[survivors], 15))
    print(f"linear initialisation alone (no Lloyd iterations): RMS error {init_rms:.5f}")

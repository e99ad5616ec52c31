"""Magnitude, load-balance-aware and iterative pruning.

Run as a script to print the digits-MLP table quoted in docs/compression.md:
``PYTHONPATH=. .venv/bin/python tests/test_prune.py``
"""

import copy

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from torch import nn

from compiler.model import layers_to_torch
from compiler.prune import (
    apply_masks,
    balance_prune,
    classifier_train_fn,
    density_schedule,
    iterative_prune,
    magnitude_prune,
)
from compiler.types import DenseLayer
from eie import digits


def rand_layers(seed=0, shapes=((20, 30), (7, 20)), zero_frac=0.0):
    rng = np.random.default_rng(seed)
    layers = []
    for k, (n_out, n_in) in enumerate(shapes):
        w = rng.standard_normal((n_out, n_in))
        w[rng.random(w.shape) < zero_frac] = 0.0
        layers.append(DenseLayer(f"l{k}", w, rng.standard_normal(n_out), k < len(shapes) - 1))
    return layers


# ---- magnitude pruning ---------------------------------------------------------------------

@pytest.mark.parametrize("density", [0.0, 0.1, 0.25, 0.5, 0.9, 1.0])
def test_layer_scope_exact_density(density):
    layers = rand_layers()
    pruned = magnitude_prune(layers, density)
    for src, out in zip(layers, pruned, strict=True):
        keep = round(density * src.weight.size)
        assert np.count_nonzero(out.weight) == keep
        # survivors keep their value; every survivor is at least as large as every victim
        survivors = out.weight != 0
        np.testing.assert_array_equal(out.weight[survivors], src.weight[survivors])
        if 0 < keep < src.weight.size:
            assert np.abs(src.weight[survivors]).min() >= np.abs(src.weight[~survivors]).max()
        np.testing.assert_array_equal(out.bias, src.bias)
        assert out.relu == src.relu and out.name == src.name


def test_density_one_unchanged_and_inputs_untouched():
    layers = rand_layers()
    before = [l.weight.copy() for l in layers]
    for out, src in zip(magnitude_prune(layers, 1.0), before, strict=True):
        np.testing.assert_array_equal(out.weight, src)
    magnitude_prune(layers, 0.1)
    for layer, src in zip(layers, before, strict=True):
        np.testing.assert_array_equal(layer.weight, src)


def test_global_scope_single_threshold():
    layers = rand_layers(1)
    layers[1].weight *= 3.0  # the second layer should keep a larger share
    pruned = magnitude_prune(layers, 0.2, scope="global")
    total = sum(l.weight.size for l in layers)
    assert sum(np.count_nonzero(l.weight) for l in pruned) == round(0.2 * total)
    everything = np.abs(np.concatenate([l.weight.ravel() for l in layers]))
    threshold = np.sort(everything)[::-1][round(0.2 * total) - 1]
    for src, out in zip(layers, pruned, strict=True):
        np.testing.assert_array_equal(out.weight != 0, np.abs(src.weight) >= threshold)
    d0, d1 = (np.count_nonzero(l.weight) / l.weight.size for l in pruned)
    assert d1 > d0


def test_global_scope_zero_and_one():
    layers = rand_layers()
    assert all(np.count_nonzero(l.weight) == 0 for l in magnitude_prune(layers, 0, "global"))
    for src, out in zip(layers, magnitude_prune(layers, 1, "global"), strict=True):
        np.testing.assert_array_equal(src.weight, out.weight)


def test_existing_zeros_stay_zero():
    layers = rand_layers(2, zero_frac=0.6)
    for src, out in zip(layers, magnitude_prune(layers, 0.8), strict=True):
        assert not np.any(out.weight[src.weight == 0])
        assert np.count_nonzero(out.weight) == np.count_nonzero(src.weight)  # capped


def test_ties_broken_by_position():
    w = np.array([[1.0, -1.0, 1.0, 1.0]])
    out = magnitude_prune([DenseLayer("t", w, None, False)], 0.5)[0].weight
    np.testing.assert_array_equal(out, [[1.0, -1.0, 0.0, 0.0]])


def test_bad_arguments():
    layers = rand_layers()
    for bad in (-0.1, 1.5, float("nan"), "x"):
        with pytest.raises(ValueError, match="density"):
            magnitude_prune(layers, bad)
    with pytest.raises(ValueError, match="scope"):
        magnitude_prune(layers, 0.5, scope="row")
    with pytest.raises(ValueError, match="n_pes"):
        balance_prune(layers, 0.5, 0)


# ---- load-balance-aware pruning --------------------------------------------------------------

@pytest.mark.parametrize("n_pes", [1, 3, 4, 8])
@pytest.mark.parametrize("density", [0.1, 0.3])
def test_balance_equal_nnz_per_pe(n_pes, density):
    layers = rand_layers(3, shapes=((64, 40), (33, 64)))
    for src, out in zip(layers, balance_prune(layers, density, n_pes), strict=True):
        k = round(density * src.weight.size / n_pes)
        per_pe = [np.count_nonzero(out.weight[p::n_pes]) for p in range(n_pes)]
        assert per_pe == [k] * n_pes
        # within each PE it is magnitude pruning
        for p in range(n_pes):
            sub_src, sub_out = src.weight[p::n_pes], out.weight[p::n_pes]
            kept = sub_out != 0
            assert np.abs(sub_src[kept]).min() >= np.abs(sub_src[~kept]).max()


def test_balance_differs_from_plain_magnitude():
    rng = np.random.default_rng(4)
    w = rng.uniform(0.1, 1.0, (8, 50)) * rng.choice([-1.0, 1.0], (8, 50))
    w[0::4] *= 10.0  # PE 0's rows are all larger: plain pruning keeps only PE 0
    layer = DenseLayer("x", w, None, False)
    plain = magnitude_prune([layer], 0.25)[0].weight
    assert [np.count_nonzero(plain[p::4]) for p in range(4)] == [100, 0, 0, 0]
    balanced = balance_prune([layer], 0.25, 4)[0].weight
    assert [np.count_nonzero(balanced[p::4]) for p in range(4)] == [25] * 4


def test_balance_caps_and_narrow_layers():
    # 3 rows on 8 PEs: only 3 PEs own rows, they share the whole budget.
    layer = DenseLayer("n", np.random.default_rng(5).standard_normal((3, 40)), None, False)
    out = balance_prune([layer], 0.5, 8)[0].weight
    assert [np.count_nonzero(out[p]) for p in range(3)] == [20, 20, 20]
    # a PE with fewer non-zeros than k keeps them all; the others keep k
    w = np.random.default_rng(6).standard_normal((4, 40))
    w[1, 5:] = 0.0
    out = balance_prune([DenseLayer("c", w, None, False)], 0.5, 4)[0].weight
    assert [np.count_nonzero(out[p]) for p in range(4)] == [20, 5, 20, 20]


@settings(max_examples=60, deadline=None)
@given(w=arrays(np.float64, st.tuples(st.integers(1, 20), st.integers(1, 12)),
                elements=st.one_of(st.just(0.0), st.floats(-4, 4, width=32))),
       density=st.floats(0, 1), n_pes=st.integers(1, 9))
def test_pruning_properties(w, density, n_pes):
    layer = DenseLayer("h", w, None, False)
    out = magnitude_prune([layer], density)[0].weight
    assert np.count_nonzero(out) == min(round(density * w.size), np.count_nonzero(w))
    assert np.all((out == 0) | (out == w))
    bal = balance_prune([layer], density, n_pes)[0].weight
    owners = min(n_pes, w.shape[0])
    k = round(density * w.size / owners)
    for p in range(owners):
        assert np.count_nonzero(bal[p::n_pes]) == min(k, np.count_nonzero(w[p::n_pes]))
    assert np.all((bal == 0) | (bal == w))


# ---- iterative pruning -----------------------------------------------------------------------

def test_density_schedule_geometric():
    sched = density_schedule(0.1, 4)
    assert sched[-1] == 0.1 and len(sched) == 4
    np.testing.assert_allclose(sched, [0.1 ** 0.25, 0.1 ** 0.5, 0.1 ** 0.75, 0.1])
    with pytest.raises(ValueError):
        density_schedule(0.0, 3)
    with pytest.raises(ValueError):
        density_schedule(0.5, 0)


def test_iterative_prune_calls_train_fn_and_hits_target():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 5))
    calls, seen = [], []

    def train_fn(module, masks):
        assert module is model
        assert set(masks) == {"0", "2"}
        calls.append({k: m.float().mean().item() for k, m in masks.items()})
        seen.append({k: m.clone() for k, m in masks.items()})
        with torch.no_grad():  # a careless trainer that touches every weight
            for p in module.parameters():
                p.add_(0.01)

    layers = iterative_prune(model, 0.2, 3, train_fn)
    assert len(calls) == 3
    expected = density_schedule(0.2, 3)
    for step, densities in enumerate(calls):
        assert densities["0"] == pytest.approx(round(expected[step] * 192) / 192)
        assert densities["2"] == pytest.approx(round(expected[step] * 60) / 60)
    assert [np.count_nonzero(l.weight) for l in layers] == [round(0.2 * 192), round(0.2 * 60)]
    # masks were re-applied after the careless trainer: the module itself is pruned
    assert np.count_nonzero(model[0].weight.detach().numpy()) == round(0.2 * 192)
    # pruned sets are nested: a weight pruned at one step never comes back
    for before, after in zip(seen, seen[1:], strict=False):
        for name in before:
            assert not torch.any(after[name] & ~before[name])
    assert [l.relu for l in layers] == [True, False]


def test_iterative_prune_from_layers_balanced():
    layers = rand_layers(7, shapes=((16, 10), (8, 16)))
    out = iterative_prune(layers, 0.25, 2, None, balance=True, n_pes=4)
    assert [l.name for l in out] == ["l0", "l1"]
    for src, o in zip(layers, out, strict=True):
        k = round(0.25 * src.weight.size / 4)
        assert [np.count_nonzero(o.weight[p::4]) for p in range(4)] == [k] * 4
    with pytest.raises(ValueError, match="n_pes"):
        iterative_prune(layers, 0.25, 2, None, balance=True)


def test_apply_masks_handles_torch_prune_reparametrisation():
    from torch.nn.utils import prune
    lin = nn.Linear(4, 3)
    prune.identity(lin, "weight")
    mask = torch.tensor([[True, False, True, False]] * 3)
    apply_masks(nn.Sequential(lin), {"0": mask})
    lin(torch.zeros(1, 4))  # recompute weight from weight_orig * weight_mask
    assert torch.all(lin.weight[:, 1] == 0) and torch.all(lin.weight_orig[:, 1] == 0)
    with pytest.raises(KeyError):
        apply_masks(nn.Sequential(lin), {"9": mask})


# ---- digits MLP: load balance costs little accuracy --------------------------------------------

def _accuracy(model, x, y):
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def digits_experiment(densities=(0.1,), pe_counts=(4,), steps=3, epochs=5):
    """Dense digits MLP 64-128-10, then prune-and-retrain with plain magnitude pruning and
    with load-balance-aware pruning; also the accuracy after 4-bit k-means sharing.

    Returns ``{(density, n_pes): {"dense", "plain", "balanced", "plain_shared",
    "balanced_shared"}}`` (test-split accuracies).
    """
    from compiler.compress import compress

    data = digits.load_data()
    x_te, y_te = torch.from_numpy(data.x_test), torch.from_numpy(data.y_test)
    dense = digits.train_mlp(data, hidden=(128,), epochs=10)
    retrain = classifier_train_fn(data.x_train, data.y_train, epochs=epochs)

    def accuracies(layers):
        return (_accuracy(layers_to_torch(layers), x_te, y_te),
                _accuracy(compress(layers, bits=4).to_torch(), x_te, y_te))

    results = {}
    for density in densities:
        plain = accuracies(iterative_prune(copy.deepcopy(dense), density, steps, retrain))
        for n_pes in pe_counts:
            balanced = accuracies(iterative_prune(copy.deepcopy(dense), density, steps,
                                                  retrain, balance=True, n_pes=n_pes))
            results[density, n_pes] = {
                "dense": _accuracy(dense, x_te, y_te), "plain": plain[0],
                "balanced": balanced[0], "plain_shared": plain[1],
                "balanced_shared": balanced[1]}
    return results


def test_balance_prune_costs_little_accuracy_on_digits():
    torch.set_num_threads(1)
    (acc,) = digits_experiment((0.1,), (4,)).values()
    assert acc["dense"] > 0.95
    assert acc["plain"] > 0.90
    assert acc["balanced"] >= acc["plain"] - 0.02
    # 4-bit sharing of the retrained sparse model costs little as well
    assert acc["balanced_shared"] >= acc["balanced"] - 0.02


if __name__ == "__main__":
    torch.set_num_threads(1)
    for title, kwargs in (("prune-and-retrain, 3 steps x 5 epochs", {}),
                          ("one-shot, no retraining", {"steps": 1, "epochs": 0})):
        table = digits_experiment((0.05, 0.1, 0.2, 0.3), (4, 8, 16, 32), **kwargs)
        print(f"\n{title}\n")
        print("| density | n_pes | dense | plain | balanced | delta (pp) | plain+4b "
              "| balanced+4b |")
        print("|---|---|---|---|---|---|---|---|")
        for (density, n_pes), a in table.items():
            print(f"| {density:.2f} | {n_pes} | {a['dense']:.4f} | {a['plain']:.4f} | "
                  f"{a['balanced']:.4f} | {100 * (a['balanced'] - a['plain']):+.2f} | "
                  f"{a['plain_shared']:.4f} | {a['balanced_shared']:.4f} |")

"""Balanced row assignment (compiler/balance.py, ``pack(..., balance_rows=True)``): the
image computes the same function as the default layout, bit for bit, in the model's order."""

import json

import numpy as np
import pytest

import golden
from compiler.balance import row_order
from compiler.pack import pack
from compiler.types import QuantLayer
from contract.config import EIEConfig
from contract.image_read import read_image
from contract.image_write import write_image

CONFIG = EIEConfig(n_pes=4, queue_depth=4, act_depth=32, acc_depth=6, spmat_depth=2048,
                   ptr_depth=1024, bias_depth=128, max_layers=4, max_tiles=16)


def _mlp(seed, widths=(70, 90, 50, 30)):
    rng = np.random.default_rng(seed)
    layers = []
    for k in range(len(widths) - 1):
        n_out, n_in = widths[k + 1], widths[k]
        # Skewed rows: some dense, most sparse, so i mod N is unbalanced.
        density = np.where(rng.random(n_out) < 0.2, 0.8, 0.1)[:, None]
        mask = rng.random((n_out, n_in)) < density
        idx = (rng.integers(1, 16, (n_out, n_in)) * mask).astype(np.uint8)
        codebook = np.concatenate([[0.0], rng.normal(0, 0.3, 15)])
        layers.append(QuantLayer(f"fc{k}", idx, codebook, rng.normal(0, 1, n_out), k < 2))
    return layers


def _inputs(seed, n_in, batch=4):
    rng = np.random.default_rng(seed)
    q = rng.integers(-600, 600, (batch, n_in)) * (rng.random((batch, n_in)) < 0.6)
    return q.astype(np.int64)


def test_balanced_image_computes_the_same_outputs_bit_for_bit():
    layers = _mlp(1)
    plain, balanced = pack(layers, CONFIG), pack(layers, CONFIG, balance_rows=True)
    q = _inputs(2, layers[0].n_in)
    want, got = golden.run(plain, q), golden.run(balanced, q)
    np.testing.assert_array_equal(got.q, want.q)
    np.testing.assert_array_equal(got.y, want.y)
    # The hardware really computes the rows in another order.
    assert any(info.row_order != list(range(info.n_out)) for info in balanced.layers)
    assert all(info.row_order is None for info in plain.layers)
    # An intermediate layer's outputs (hardware order) permuted back equal the plain ones.
    for k in range(len(layers) - 1):
        order = np.asarray(balanced.layers[k].row_order)
        back = np.empty_like(got.layer_q[k])
        back[:, order] = got.layer_q[k]
        np.testing.assert_array_equal(back, want.layer_q[k])


def test_balanced_rows_lower_the_busiest_pe():
    # A tile's cycles follow its busiest PE: sum the tiles' busiest PEs over the layers.
    layers = _mlp(3)
    q = _inputs(4, layers[0].n_in)[0]
    busiest = [sum(int(t.span.busy.max()) for layer in golden.cycles(image, q).layers
                   for t in layer.tiles)
               for image in (pack(layers, CONFIG), pack(layers, CONFIG, balance_rows=True))]
    assert busiest[1] < busiest[0]


def _set_loads(order, costs, config):
    """Cost sum of every (tile, PE) set, [tiles, PEs], the layout of docs/image-format.md."""
    h = np.arange(len(order))
    home = (h // config.rows_per_tile) * config.n_pes + h % config.n_pes
    n_sets = -(-len(order) // config.rows_per_tile) * config.n_pes
    loads = np.bincount(home, np.asarray(costs)[order], minlength=n_sets)
    return loads.reshape(-1, config.n_pes).astype(np.int64)


def _old_lpt(costs, config):
    """The first --balance-rows algorithm: plain LPT over the slot sets (for comparison)."""
    n, rpt = config.n_pes, config.rows_per_tile
    slots = {}
    for h in range(len(costs)):
        slots.setdefault((h // rpt, h % n), []).append(h)
    loads = {key: 0 for key in slots}
    dealt = {key: [] for key in slots}
    for i in sorted(range(len(costs)), key=lambda i: -costs[i]):
        key = min((k for k in slots if len(dealt[k]) < len(slots[k])),
                  key=lambda k: (loads[k], k))
        dealt[key].append(i)
        loads[key] += costs[i]
    order = [0] * len(costs)
    for key, rows in dealt.items():
        for h, i in zip(slots[key], sorted(rows), strict=True):
            order[h] = i
    return order


def _check_layout(order, config):
    """A permutation whose every PE's rows of a tile rise in model order."""
    assert sorted(order) == list(range(len(order)))
    rpt, n = config.rows_per_tile, config.n_pes
    for t0 in range(0, len(order), rpt):
        for p in range(n):
            rows = order[t0 + p:t0 + rpt:n]
            assert rows == sorted(rows)


def test_row_order_gives_the_sets_with_more_slots_the_light_rows():
    # 2 PEs, 5 rows in one tile: PE 0 holds 3, PE 1 holds 2. Costs 4, 4, 4, 3, 3 (sum 18)
    # split best as {4, 4} | {4, 3, 3} -> max 10 (the optimum: PE 0's three rows weigh
    # at least 3 + 3 + 4). Plain LPT deals 4 | 4, 4 -> PE 0 (tie, lower PE), 3 -> PE 1,
    # 3 -> PE 0: {4, 4, 3} | {4, 3} -> max 11.
    config = EIEConfig(n_pes=2, acc_depth=3)
    costs = [4, 4, 4, 3, 3]
    assert _set_loads(_old_lpt(costs, config), costs, config).max() == 11
    order = row_order(costs, config)
    _check_layout(order, config)
    assert sorted(_set_loads(order, costs, config)[0]) == [8, 10]


def test_row_order_swaps_to_a_perfect_partition_plain_lpt_misses():
    # 3 PEs x 3 slots, costs 7 7 6 5 4 4 3 2 1 (sum 39): {7 4 2} {7 5 1} {6 4 3} is a
    # perfect 13 | 13 | 13. Plain LPT: 7 | 7 | 6; 5 -> C (11); 4 -> A, 4 -> B (11 each);
    # 3 -> A (tie, lowest: 14, full); 2 -> B (13); 1 -> C (12): max 14.
    config = EIEConfig(n_pes=3, acc_depth=3)
    costs = [7, 7, 6, 5, 4, 4, 3, 2, 1]
    assert _set_loads(_old_lpt(costs, config), costs, config).max() > 13
    order = row_order(costs, config)
    _check_layout(order, config)
    assert _set_loads(order, costs, config).max() == 13


@pytest.mark.parametrize("seed", range(6))
def test_row_order_never_loses_to_the_default_layout(seed):
    rng = np.random.default_rng(seed)
    n_pes = int(rng.integers(2, 9))
    config = EIEConfig(n_pes=n_pes, acc_depth=int(rng.integers(1, 6)))
    n_out = int(rng.integers(1, 4 * config.rows_per_tile))
    costs = rng.integers(0, 50, n_out) * (rng.random(n_out) < 0.7)
    order = row_order(costs, config)
    _check_layout(order, config)
    busiest = _set_loads(order, costs, config).max(axis=1).sum()
    default = _set_loads(list(range(n_out)), costs, config).max(axis=1).sum()
    assert busiest <= default
    assert busiest <= _set_loads(_old_lpt(costs, config), costs, config).max(axis=1).sum()


def test_row_order_deals_heaviest_rows_apart():
    config = EIEConfig(n_pes=2, acc_depth=2)            # 4 rows per tile
    # rows 0 and 2 (both PE 0 by default) carry everything
    order = row_order([5, 0, 5, 0, 1], config)
    assert sorted(order) == [0, 1, 2, 3, 4]
    assert {order[0], order[1]} == {0, 2}               # one heavy row per PE in tile 0


def test_row_order_survives_the_image_files(tmp_path):
    layers = _mlp(4)
    image = pack(layers, CONFIG, balance_rows=True)
    write_image(image, tmp_path / "bal")
    again = read_image(tmp_path / "bal")
    assert [i.row_order for i in again.layers] == [i.row_order for i in image.layers]
    q = _inputs(5, layers[0].n_in)
    np.testing.assert_array_equal(golden.run(again, q).q, golden.run(image, q).q)
    write_image(pack(layers, CONFIG), tmp_path / "plain")
    manifest = json.loads((tmp_path / "plain" / "manifest.json").read_text())
    assert all("row_order" not in rec for rec in manifest["layers"])


def test_bad_row_order_is_refused(tmp_path):
    image = pack(_mlp(6), CONFIG, balance_rows=True)
    write_image(image, tmp_path / "img")
    path = tmp_path / "img" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["layers"][0]["row_order"][0] = manifest["layers"][0]["row_order"][1]
    path.write_text(json.dumps(manifest))
    with pytest.raises(Exception, match="row_order"):
        read_image(tmp_path / "img")


def test_unchained_layers_are_refused():
    layers = _mlp(7)
    with pytest.raises(ValueError, match="chained"):
        pack(layers, CONFIG, chain=False, balance_rows=True)


def test_cli_pack_balance_rows_and_golden_in_model_order(tmp_path, capsys):
    import torch
    from torch import nn

    from eie.cli import main

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 24), nn.ReLU(), nn.Linear(24, 7))
    torch.save(model.state_dict(), tmp_path / "mlp.pt")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).uniform(-1, 1, (3, 20)))
    for name, extra in (("plain", []), ("bal", ["--balance-rows"])):
        assert main(["pack", str(tmp_path / "mlp.pt"), "-o", str(tmp_path / name), "--pes",
                     "3", "--acc-depth", "4", "--density", "0.4", *extra]) == 0
        assert main(["golden", str(tmp_path / name), "--input", str(tmp_path / "x.npy"),
                     "-o", str(tmp_path / f"{name}.npz")]) == 0
    layers = json.loads((tmp_path / "bal" / "manifest.json").read_text())["layers"]
    assert [sorted(rec["row_order"]) for rec in layers] == [list(range(24)), list(range(7))]
    want, got = np.load(tmp_path / "plain.npz"), np.load(tmp_path / "bal.npz")
    for field in ("q", "y"):
        np.testing.assert_array_equal(got[field], want[field], err_msg=field)

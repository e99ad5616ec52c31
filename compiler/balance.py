"""Balanced row assignment (``eie pack --balance-rows``): which PE computes which output row.

By default row ``i`` of a tile goes to PE ``i mod N`` (docs/image-format.md), so a PE's load
is whatever the matrix puts on those rows. :func:`balance_rows` instead deals the rows of
each layer to the (tile, PE) slots greedily, heaviest row first onto the least loaded PE
with a free slot (longest-processing-time first, with each PE's slot count as capacity),
and reorders the layer's rows so that the default layout puts every row where it was dealt.
The next layer reads the permuted outputs, so its columns are permuted the same way; the
network computes exactly the same function (integer sums do not depend on order), and the
image records each layer's order (``LayerInfo.row_order``) so that golden and the host
deliver the outputs in the model's order.
"""

from __future__ import annotations

import dataclasses
import heapq

import numpy as np

from contract.config import EIEConfig

from .types import QuantLayer

__all__ = ["balance_rows", "row_order"]


def row_order(costs, config: EIEConfig) -> list[int]:
    """Hardware row ``h`` -> model row, balancing ``costs`` (one per output row).

    Hardware row ``h`` lies in tile ``h // rows_per_tile`` on PE ``h % n_pes`` (local row
    ``(h % rows_per_tile) // n_pes``); every (tile, PE) slot set gets rows until full, the
    heaviest row first onto the least loaded set (ties: lowest tile, then PE); within a PE
    the rows keep ascending model order.
    """
    costs = np.asarray(costs, np.int64)
    n_out = costs.size
    n, rpt = config.n_pes, config.rows_per_tile
    slots = {}                                    # (tile, pe) -> hardware rows, ascending
    for h in range(n_out):
        slots.setdefault(((h // rpt), h % n), []).append(h)
    heap = [(0, key) for key in sorted(slots)]
    heapq.heapify(heap)
    dealt = {key: [] for key in slots}
    for i in np.argsort(-costs, kind="stable"):
        load, key = heapq.heappop(heap)
        dealt[key].append(int(i))
        if len(dealt[key]) < len(slots[key]):
            heapq.heappush(heap, (load + int(costs[i]), key))
    order = [0] * n_out
    for key, rows in dealt.items():
        for h, i in zip(slots[key], sorted(rows), strict=True):
            order[h] = i
    return order


def balance_rows(layers: list[QuantLayer], config: EIEConfig):
    """Permute a chained MLP's rows (and the next layer's columns) to balance the PEs.

    Returns ``(layers, orders)``: the permuted layers (hardware row ``h`` of layer ``k``
    is the model's row ``orders[k][h]``; layer ``k + 1``'s column ``h`` the model's column
    ``orders[k][h]``; layer 0's columns are unchanged) and the orders. A row's cost is its
    non-zero weights (padding entries depend on the neighbours a row gets, so they are
    not known before packing; docs/benchmarks.md reports the loads with padding).
    """
    out, orders, previous = [], [], None
    for layer in layers:
        idx = np.asarray(layer.indices)
        if previous is not None:
            idx = idx[:, previous]
        order = row_order(np.count_nonzero(idx, axis=1), config)
        bias = None if layer.bias is None else np.asarray(layer.bias)[order]
        out.append(dataclasses.replace(layer, indices=idx[order], bias=bias))
        orders.append(order)
        previous = order
    return out, orders

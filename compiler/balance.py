"""Balanced row assignment (``eie pack --balance-rows``): which PE computes which output row.

By default row ``i`` of a tile goes to PE ``i mod N`` (docs/image-format.md), so a PE's load
is whatever the matrix puts on those rows. :func:`balance_rows` instead deals the rows of
each layer to the (tile, PE) slot sets so as to minimise each tile's busiest PE (a tile's
cycles follow its busiest PE; the layer's are the sum over its tiles), and reorders the
layer's rows so that the default layout puts every row where it was dealt. The next layer
reads the permuted outputs, so its columns are permuted the same way; the network computes
exactly the same function (integer sums do not depend on order), and the image records each
layer's order (``LayerInfo.row_order``) so that golden and the host deliver the outputs in
the model's order.

The layout fixes how many rows each (tile, PE) set holds (``m`` rows on ``N`` PEs: the
first ``m mod N`` PEs hold one more), so the busiest PE cannot always reach the ideal
``sum / N``: a PE with more slots needs lighter rows. :func:`row_order` works in three
steps: deal the rows to the tiles by falling cost in proportion to the tiles' sizes (every
tile gets heavy and light rows alike); per tile, seed greedily, heaviest row first onto the
set with the least *projected* final load (its load plus its remaining free slots times the
mean cost of the rows still to deal), which hands the sets with more slots the lighter
rows; then swap rows between the most loaded set and any other while a swap lowers it.
Plain LPT and the default layout are kept as starts, so the result is never busier than
either on ``costs``. Given the layer's non-zeros, a last bounded pass makes the same swaps
on the sets' exact entries, padding included.
"""

from __future__ import annotations

import dataclasses
import heapq

import numpy as np

from contract.config import EIEConfig

from .types import QuantLayer

__all__ = ["balance_rows", "row_order"]

# Local-search swaps per tile. Each swap lowers the busiest set or leaves fewer sets at its
# load, so the search ends by itself; the cap only bounds the time on adversarial costs
# (the bench layers stop after at most a few hundred swaps).
MAX_SWAPS = 20_000
_NEVER = np.iinfo(np.int64).max
# Cells (rows x columns) the exact-entries pass may recount per layer: about 0.3 s here.
REFINE_CELLS = 40_000_000


def _tile_split(costs: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    """Model rows of each tile: rows by falling cost, the ``k``-th row of tile ``t`` at
    rank ``(k + 1/2) / sizes[t]`` (ties: lower tile), so each tile samples every cost."""
    keys = np.concatenate([(np.arange(s) + 0.5) / s for s in sizes])
    tile_of_rank = np.repeat(np.arange(len(sizes)), sizes)[np.argsort(keys, kind="stable")]
    by_cost = np.argsort(-costs, kind="stable")
    return [by_cost[tile_of_rank == t] for t in range(len(sizes))]


def _seed(costs: np.ndarray, caps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Set of each row, and the sets' loads: heaviest row first onto the set whose load
    plus (free slots - 1) x (mean cost of the rows after this one) is least (ties: lowest
    set). With equal slot counts this is plain LPT."""
    load = np.zeros(caps.size, np.int64)
    free = caps.astype(np.int64)
    where = np.empty(costs.size, np.int64)
    order = np.argsort(-costs, kind="stable")
    tail = np.cumsum(costs[order][::-1])[::-1]              # sum of ranks i.. (falling cost)
    mean_after = np.zeros(costs.size)
    mean_after[:-1] = tail[1:] / np.arange(costs.size - 1, 0, -1)
    for i, r in enumerate(order):
        key = np.where(free > 0, load + (free - 1) * mean_after[i], np.inf)
        p = int(np.argmin(key))
        where[r] = p
        load[p] += costs[r]
        free[p] -= 1
    return where, load


def _improve(costs: np.ndarray, where: np.ndarray, load: np.ndarray) -> None:
    """Swap a row of the most loaded set ``a`` with a lighter row of another set ``b`` while
    one lowers ``a`` without lifting ``b`` to ``a``'s old load, the swap that leaves the
    two closest each time (in place). Slot counts are fixed, so there are no moves."""
    for _ in range(MAX_SWAPS):
        a = int(np.argmax(load))
        mine = np.flatnonzero(where == a)
        mine = mine[np.argsort(costs[mine], kind="stable")]
        ca = costs[mine]
        if ca.size == 0:
            return
        # For every row r (of set b) the best partner in a has cost ca = costs[r] + d with
        # 0 < d < gap and d nearest gap / 2: a nearest-value lookup in the sorted ca.
        gap = load[a] - load[where]
        pos = np.searchsorted(ca, costs + gap / 2)
        best, score = np.zeros_like(pos), np.full(costs.size, _NEVER)
        for cand in (np.maximum(pos - 1, 0), np.minimum(pos, ca.size - 1)):
            d = ca[cand] - costs
            s = np.where((d > 0) & (d < gap), np.abs(2 * d - gap), _NEVER)
            better = s < score
            best, score = np.where(better, cand, best), np.minimum(s, score)
        r = int(np.argmin(score))
        if score[r] == _NEVER:
            return
        ra, b = int(mine[best[r]]), int(where[r])
        d = int(costs[ra] - costs[r])
        where[ra], where[r] = b, a
        load[a] -= d
        load[b] += d


def _entries(block: np.ndarray, step: int) -> int:
    """Entries of one PE's rows (``block``: bool, local rows x columns): the non-zeros plus
    one padding entry per ``step`` zeros before a non-zero in a column (compiler.pack)."""
    j, r = np.nonzero(block.T)                              # column by column, rows rising
    if r.size == 0:
        return 0
    prev = np.empty_like(r)
    prev[0] = -1
    prev[1:] = r[:-1]
    prev[1:][j[1:] != j[:-1]] = -1
    return int(r.size + ((r - prev - 1) // step).sum())


def _refine(mask: np.ndarray, costs: np.ndarray, where: np.ndarray, n: int, step: int,
            budget: int) -> None:
    """Swaps as in :func:`_improve` but on the sets' exact entries, padding included (in
    place on ``where``): the most loaded set ``a`` against the 4 least loaded, the 8 row
    pairs whose non-zeros best halve the gap tried first, the first one that lowers ``a``
    taken. Each try recounts two sets, so ``budget`` caps the cells recounted."""
    members = [np.flatnonzero(where == p) for p in range(n)]
    load = np.array([_entries(mask[rows], step) for rows in members], np.int64)
    spent = 0
    while spent < budget:
        a = int(np.argmax(load))
        swap = None
        for b in (int(b) for b in np.argsort(load, kind="stable")[:4] if b != a):
            ma, mb = members[a], members[b]
            d = costs[ma][:, None] - costs[mb][None, :]
            for k in np.argsort(np.abs(2 * d - (load[a] - load[b])), axis=None,
                                kind="stable")[:8]:
                ia, ib = divmod(int(k), mb.size)
                na = np.sort(np.append(np.delete(ma, ia), mb[ib]))
                nb = np.sort(np.append(np.delete(mb, ib), ma[ia]))
                ea, eb = _entries(mask[na], step), _entries(mask[nb], step)
                spent += (na.size + nb.size) * mask.shape[1]
                if max(ea, eb) < load[a]:
                    swap = b, na, nb, ea, eb
                    break
            if swap is not None or spent >= budget:
                break
        if swap is None:
            break
        b, na, nb, ea, eb = swap
        members[a], members[b], load[a], load[b] = na, nb, ea, eb
    for p, rows in enumerate(members):
        where[rows] = p


def row_order(costs, config: EIEConfig, mask=None) -> list[int]:
    """Hardware row ``h`` -> model row, balancing ``costs`` (one integer per output row).

    Hardware row ``h`` lies in tile ``h // rows_per_tile`` on PE ``h % n_pes`` (local row
    ``(h % rows_per_tile) // n_pes``). The result is a permutation of ``range(len(costs))``
    that keeps every (tile, PE) set's slot count, puts each PE's rows of a tile in
    ascending model order, and aims to minimise the sum over tiles of the busiest set's
    cost sum (module docstring). Deterministic: the same inputs give the same order.

    ``mask`` (optional, bool ``[len(costs), n_in]``: the layer's non-zeros) adds a last
    pass that balances the sets' exact entries, padding included (``REFINE_CELLS``
    bounds its work); without it the order depends on ``costs`` only.
    """
    costs = np.asarray(costs, np.int64).ravel()
    n_out = costs.size
    n, rpt = config.n_pes, config.rows_per_tile
    h = np.arange(n_out)
    home = (h // rpt) * n + h % n                        # (tile, PE) set of hardware row h
    caps = np.bincount(home, minlength=-(-n_out // rpt) * n)
    # Three starts: the proportional one, plain LPT and the default. A start is improved by
    # swaps within its tiles only if it begins below the best so far (the others rarely
    # do; with few coarse rows the proportional tile split can be the worse one), so the
    # result is never busier than the default or plain LPT.
    best = None
    for start in (_proportional_start(costs, caps, n), _lpt_start(costs, caps), home.copy()):
        tiles = [np.flatnonzero(start // n == t) for t in range(caps.size // n)]
        loads = [np.bincount(start[rows] % n, costs[rows], n).astype(np.int64)
                 for rows in tiles]
        if best is not None and sum(int(load.max()) for load in loads) >= best[0]:
            continue
        for t, (rows, load) in enumerate(zip(tiles, loads, strict=True)):
            where = start[rows] % n
            _improve(costs[rows], where, load)
            start[rows] = t * n + where
        busiest = sum(int(load.max()) for load in loads)
        if best is None or busiest < best[0]:
            best = busiest, start
    gid = best[1]
    order = np.empty(n_out, np.int64)
    for t in range(caps.size // n):
        rows = np.flatnonzero(gid // n == t)
        where = gid[rows] % n
        if mask is not None:
            block = np.asarray(mask[rows], bool)
            if (block.sum(axis=1) != costs[rows]).any():
                raise ValueError("row_order: mask must hold costs[i] non-zeros in row i")
            _refine(block, costs[rows], where, n, config.max_run + 1,
                    REFINE_CELLS * rows.size // n_out)
        # Each PE's slots (hardware rows of its set, ascending) take its rows in ascending
        # model order.
        hw = np.flatnonzero(home // n == t)
        order[hw[np.argsort(home[hw], kind="stable")]] = rows[np.lexsort((rows, where))]
    return order.tolist()


def _proportional_start(costs: np.ndarray, caps: np.ndarray, n: int) -> np.ndarray:
    """Set of each row: proportional tile split, then the projected-load seed per tile."""
    sizes = [int(caps[t0:t0 + n].sum()) for t0 in range(0, caps.size, n)]
    gid = np.empty(costs.size, np.int64)
    for t, rows in enumerate(_tile_split(costs, sizes)):
        where, _ = _seed(costs[rows], caps[t * n:(t + 1) * n])
        gid[rows] = t * n + where
    return gid


def _lpt_start(costs: np.ndarray, caps: np.ndarray) -> np.ndarray:
    """Set of each row: heaviest row first onto the least loaded set with a free slot over
    all (tile, PE) sets (ties: lowest set), the first ``--balance-rows`` algorithm."""
    heap = [(0, g) for g in range(caps.size) if caps[g]]
    free = caps.copy()
    gid = np.empty(costs.size, np.int64)
    for r in np.argsort(-costs, kind="stable"):
        load, g = heapq.heappop(heap)
        gid[r] = g
        free[g] -= 1
        if free[g]:
            heapq.heappush(heap, (load + int(costs[r]), g))
    return gid


def balance_rows(layers: list[QuantLayer], config: EIEConfig):
    """Permute a chained MLP's rows (and the next layer's columns) to balance the PEs.

    Returns ``(layers, orders)``: the permuted layers (hardware row ``h`` of layer ``k``
    is the model's row ``orders[k][h]``; layer ``k + 1``'s column ``h`` the model's column
    ``orders[k][h]``; layer 0's columns are unchanged) and the orders. A row's cost is its
    non-zero weights over all columns, and a last pass balances the PEs' exact entries
    (padding included: it depends on which rows share a PE). The load that sets the cycles
    is a PE's entries in the columns the input activates, which the compiler cannot know;
    all columns are its proxy (docs/benchmarks.md measures the difference).
    """
    out, orders, previous = [], [], None
    for layer in layers:
        idx = np.asarray(layer.indices)
        if previous is not None:
            idx = idx[:, previous]
        nonzero = idx != 0
        order = row_order(nonzero.sum(axis=1), config, mask=nonzero)
        bias = None if layer.bias is None else np.asarray(layer.bias)[order]
        out.append(dataclasses.replace(layer, indices=idx[order], bias=bias))
        orders.append(order)
        previous = order
    return out, orders

"""The broadcast of ``B > 1`` lanes (docs/architecture.md, "Broadcast width"): its
signature and the row scanner that issues up to ``B`` non-zeros of a row per cycle."""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .lnzd import LNZD, RowScanner, _check_positive, walk_rows

__all__ = ["WideRowScanner", "broadcast_signature"]


def broadcast_signature(layout, width: int) -> wiring.Signature:
    """``width`` broadcast lanes, from the sender's side (docs/architecture.md,
    "Broadcast width").

    Members: ``valid`` Out(width), ``ready`` In(width), ``payload``
    Out(ArrayLayout(layout, width)). Lane ``i`` transfers when ``valid[i] & ready[i]``.
    Both are thermometer codes (lane ``i`` valid or ready only if lane ``i - 1`` is), so
    the lanes that transfer are always lanes ``0 .. k-1``: ``ready[i]`` means "room for
    ``i + 1`` columns".
    """
    _check_positive("Broadcast width", width)
    return wiring.Signature({
        "valid": Out(width),
        "ready": In(width),
        "payload": Out(data.ArrayLayout(layout, width)),
    })


class WideRowScanner(RowScanner):
    """:class:`RowScanner` with ``width`` broadcast lanes: up to ``width`` non-zeros of the
    current row per cycle.

    Lane ``i`` offers the row's ``i``-th remaining non-zero (ascending ``p``, so ascending
    ``j``); the ``k`` lanes that transfer (``valid & ready``, a prefix) leave the row, and
    the row is done when none is left. An all-zero row costs one cycle (``empty``), and the
    next row is prefetched as in :class:`RowScanner`, whose timing this keeps: with
    ``width = 1`` it broadcasts the same columns in the same cycles. Each lane has its own
    :class:`LNZD` over the mask with the lanes before it cleared.

    Parameters
    ----------
    n_pes, act_bits, depth : int
        As for :class:`RowScanner`.
    width : int
        Lanes ``B`` (at most ``n_pes``).

    Members
    -------
    start, rows, row_addr, row_data, running, empty
        As for :class:`RowScanner`.
    o : Out(broadcast_signature(StructLayout({"value", "index"}), width))
        The lanes; ``o.payload[i].index`` is the global column ``j``.
    """

    def __init__(self, *, n_pes: int, act_bits: int, depth: int, width: int):
        _check_positive("Number of PEs", n_pes)
        self._width = _check_positive("Broadcast width", width)
        if width > n_pes:
            raise ValueError(f"Broadcast width ({width}) must not exceed the number of PEs "
                             f"({n_pes})")
        super().__init__(n_pes=n_pes, act_bits=act_bits, depth=depth)

    def _output_signature(self, layout) -> wiring.Signature:
        return broadcast_signature(layout, self._width)

    @property
    def width(self) -> int:
        return self._width

    def elaborate(self, platform):
        m = Module()
        n, width = self._n_pes, self._width
        row_q = Signal(self.rows.shape(), name="row_q")
        row_base_q = Signal(self._layout["index"].shape, name="row_base_q")
        mask_q = Signal(n, name="mask_q")
        values_q = Signal(data.ArrayLayout(signed(self._act_bits), n), name="values_q")

        # masks[i]: the row's non-zeros without the i lowest; lane i shows masks[i]'s lowest.
        masks = [mask_q]
        for i in range(width):
            lnzd = LNZD(width=n, value_shape=signed(self._act_bits))
            m.submodules[f"lnzd{i}"] = lnzd
            m.d.comb += [
                lnzd.mask.eq(masks[i]),
                lnzd.values.eq(values_q),
                self.o.valid[i].eq(self.running & lnzd.valid),
                self.o.payload[i].value.eq(lnzd.value),
                self.o.payload[i].index.eq(row_base_q + lnzd.index),
            ]
            rest = Signal(n, name=f"mask{i + 1}")
            m.d.comb += rest.eq(masks[i] & (masks[i] - 1))
            masks.append(rest)
        m.d.comb += self.empty.eq(self.running & (mask_q == 0))

        taken = self.o.valid & self.o.ready          # a prefix of the lanes
        count = Signal(range(width + 1), name="count")
        m.d.comb += count.eq(sum(taken[i] for i in range(width)))
        left = Signal(n, name="left")                # the row after this cycle's transfers
        with m.Switch(count):
            for k in range(width + 1):
                with m.Case(k):
                    m.d.comb += left.eq(masks[k])
        finish = Signal(name="finish")
        m.d.comb += finish.eq(self.empty | ((count != 0) & (left == 0)))
        walk_rows(m, self, finish=finish, moved=count != 0, left=left, row_q=row_q,
                  row_base_q=row_base_q, mask_q=mask_q, values_q=values_q)
        return m

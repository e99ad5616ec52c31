"""Leading-non-zero detection (LNZD) and the activation row scanner of the EIE array.

The EIE paper finds the next non-zero activation with a quadtree of 4-input LNZD nodes.
Here the array scans the source activation buffer one *row* at a time (row ``l`` holds
activation ``j = l*N + p`` in PE ``p``); :class:`LNZD` picks the lowest-index non-zero of a
row and :class:`RowScanner` turns the rows into the broadcast stream of ``(a_j, j)`` pairs
defined in docs/architecture.md ("Broadcast slots").
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Shape, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from contract.config import clog2

__all__ = ["LNZD", "RowScanner", "lnzd_leaves", "walk_rows"]

_DEFAULT_VALUE_SHAPE = signed(16)


def _check_positive(name: str, value) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise TypeError(f"{name} must be a positive integer, not {value!r}")
    return value


def lnzd_leaves(width: int) -> int:
    """Leaves of the LNZD quadtree for ``width`` inputs: the next power of 4 (at least 4)."""
    leaves = 4
    while leaves < width:
        leaves *= 4
    return leaves


class LNZD(wiring.Component):
    """Leading-non-zero detector: a combinational quadtree of 4-input nodes.

    Every node takes up to four ``(valid, index, value)`` children and forwards the
    lowest-numbered valid one, extending the index by two bits. The ``width`` inputs are
    padded with never-valid leaves to the next power of 4 (at least 4), so 64 inputs use
    16 + 4 + 1 = 21 nodes and 70 inputs use 64 + 16 + 4 + 1 = 85.

    Parameters
    ----------
    width : int
        Number of inputs (one per PE).
    value_shape : shape-castable
        Shape of the value carried with each input (the activation).

    Members
    -------
    mask : In(width)
        Input ``p`` is valid when ``mask[p]`` is set.
    values : In(ArrayLayout(value_shape, width))
        Values of the inputs.
    valid : Out(1)
        Some input is valid.
    index : Out(clog2(width))
        Lowest ``p`` with ``mask[p]`` set (0 when ``valid`` is low).
    value : Out(value_shape)
        ``values[index]`` (0 when ``valid`` is low).

    Purely combinational (zero latency).
    """

    def __init__(self, *, width: int, value_shape=_DEFAULT_VALUE_SHAPE):
        self._width = _check_positive("LNZD width", width)
        self._value_shape = value_shape
        super().__init__({
            "mask": In(width),
            "values": In(data.ArrayLayout(value_shape, width)),
            "valid": Out(1),
            "index": Out(clog2(width)),
            "value": Out(value_shape),
        })

    @property
    def width(self) -> int:
        return self._width

    @property
    def leaves(self) -> int:
        return lnzd_leaves(self._width)

    @property
    def node_count(self) -> int:
        """4-input nodes in the quadtree: ``(leaves - 1) / 3``."""
        return (self.leaves - 1) // 3

    def elaborate(self, platform):
        m = Module()
        width = Shape.cast(self._value_shape).width
        level = []
        for p in range(self.leaves):
            if p < self._width:
                level.append((self.mask[p], Const(0, 0), Value.cast(self.values[p])))
            else:
                level.append((Const(0, 1), Const(0, 0), Const(0, width)))
        depth, nodes = 0, 0
        while len(level) > 1:
            next_level = []
            for n in range(len(level) // 4):
                children = level[4 * n: 4 * n + 4]
                valid = Signal(name=f"node{depth}_{n}_valid")
                index = Signal(2 * (depth + 1), name=f"node{depth}_{n}_index")
                value = Signal(width, name=f"node{depth}_{n}_value")
                m.d.comb += valid.eq(Cat(*(c[0] for c in children)).any())
                # Priority: the lowest-numbered valid child wins.
                with m.If(children[0][0]):
                    m.d.comb += [index.eq(Cat(children[0][1], Const(0, 2))),
                                 value.eq(children[0][2])]
                with m.Elif(children[1][0]):
                    m.d.comb += [index.eq(Cat(children[1][1], Const(1, 2))),
                                 value.eq(children[1][2])]
                with m.Elif(children[2][0]):
                    m.d.comb += [index.eq(Cat(children[2][1], Const(2, 2))),
                                 value.eq(children[2][2])]
                with m.Elif(children[3][0]):
                    m.d.comb += [index.eq(Cat(children[3][1], Const(3, 2))),
                                 value.eq(children[3][2])]
                next_level.append((valid, index, value))
                nodes += 1
            level = next_level
            depth += 1
        assert nodes == self.node_count
        valid, index, value = level[0]
        m.d.comb += [self.valid.eq(valid), self.index.eq(index), self.value.eq(value)]
        return m


class RowScanner(wiring.Component):
    """Row scan and broadcast of the non-zero activations of one source buffer.

    After ``start``, the scanner walks rows ``l = 0 .. rows-1``. A row with ``k > 0``
    non-zeros yields ``k`` transfers on ``o`` in ascending ``p`` (``o.payload.index =
    l*N + p``); an all-zero row costs exactly one cycle (``empty`` is high). There is no
    bubble between rows: the next row is prefetched. A non-zero waits (``o.valid`` high)
    until ``o.ready``; the top drives ``o.ready`` with the AND of every PE queue's ready.

    Rows come from synchronous-read memories (one-cycle latency): ``row_data`` in cycle
    ``c`` must be row ``row_addr`` of cycle ``c-1``. While idle ``row_addr`` is 0, so
    ``row_data`` shows row 0 in the cycle of ``start``.

    Timing (``start`` in cycle -1; slot ``k`` in cycle ``b_k`` as in docs/architecture.md)::

        cycle      -1     0      1      2     ...   b_last  b_last+1
        start      1      0      0      0            0       0
        running    0      1      1      1            1       0
        o.valid    0      slot0  slot1  ...          last    0

    Parameters
    ----------
    n_pes : int
        Activations per row.
    act_bits : int
        Signed activation width.
    depth : int
        Rows per activation buffer (``act_depth``); ``rows`` may be up to ``depth``.

    Members
    -------
    start : In(1)
        Begin a scan of ``rows`` rows (ignored while ``running``).
    rows : In(bits(depth))
        Rows to scan (``in_local``); held stable while ``running``.
    row_addr : Out(clog2(depth))
        Row to read for the next cycle.
    row_data : In(ArrayLayout(signed(act_bits), n_pes))
        Row read in the previous cycle.
    o : Out(stream.Signature(StructLayout({"value", "index"})))
        Broadcast stream; ``index`` is the global column ``j = l*N + p``.
    running : Out(1)
        A scan is in progress (high from the cycle after ``start`` to the last slot).
    empty : Out(1)
        The current cycle is an empty slot (all-zero row).
    """

    def __init__(self, *, n_pes: int, act_bits: int, depth: int):
        self._n_pes = _check_positive("Number of PEs", n_pes)
        self._act_bits = _check_positive("Activation width", act_bits)
        self._depth = _check_positive("Activation depth", depth)
        self._layout = data.StructLayout({
            "value": signed(act_bits),
            "index": unsigned(clog2(n_pes * depth)),
        })
        super().__init__({
            "start": In(1),
            "rows": In(max(1, depth.bit_length())),
            "row_addr": Out(clog2(depth)),
            "row_data": In(data.ArrayLayout(signed(act_bits), n_pes)),
            "o": Out(self._output_signature(self._layout)),
            "running": Out(1),
            "empty": Out(1),
        })

    def _output_signature(self, layout) -> wiring.Signature:
        """The broadcast port's signature (one stream here; lanes in the wide scanner)."""
        return stream.Signature(layout)

    @property
    def n_pes(self) -> int:
        return self._n_pes

    @property
    def payload_layout(self) -> data.StructLayout:
        return self._layout

    def elaborate(self, platform):
        m = Module()
        n = self._n_pes
        m.submodules.lnzd = lnzd = LNZD(width=n, value_shape=signed(self._act_bits))

        row_q = Signal(self.rows.shape(), name="row_q")              # l
        row_base_q = Signal(self.o.payload.index.shape(), name="row_base_q")  # l*N
        mask_q = Signal(n, name="mask_q")
        values_q = Signal(data.ArrayLayout(signed(self._act_bits), n), name="values_q")

        m.d.comb += [
            lnzd.mask.eq(mask_q),
            lnzd.values.eq(values_q),
            self.o.valid.eq(self.running & lnzd.valid),
            self.o.payload.value.eq(lnzd.value),
            self.o.payload.index.eq(row_base_q + lnzd.index),
            self.empty.eq(self.running & ~lnzd.valid),
        ]
        rest = mask_q & (mask_q - 1)          # clear the lowest set bit
        transfer = self.o.valid & self.o.ready
        finish = Signal(name="finish")        # the current row's last slot is this cycle
        m.d.comb += finish.eq(self.empty | (transfer & (rest == 0)))
        walk_rows(m, self, finish=finish, moved=transfer, left=rest, row_q=row_q,
                  row_base_q=row_base_q, mask_q=mask_q, values_q=values_q)
        return m


def walk_rows(m, scanner, *, finish, moved, left, row_q, row_base_q, mask_q, values_q):
    """The row walk both scanners share: the prefetch address, the start of a scan, the
    next row after ``finish`` and, after a transfer (``moved``) that leaves the row
    unfinished, the mask of what is ``left``."""
    n = scanner.n_pes
    incoming_mask = Cat(*(scanner.row_data[p] != 0 for p in range(n)))
    # Prefetch: address the row that will be current in the next cycle plus one, so the
    # row after a finishing row is already on row_data (no bubble between rows).
    with m.If(scanner.running):
        m.d.comb += scanner.row_addr.eq(row_q + 1 + finish)
    with m.Elif(scanner.start):
        m.d.comb += scanner.row_addr.eq(1)
    with m.Else():
        m.d.comb += scanner.row_addr.eq(0)

    with m.If(~scanner.running):
        with m.If(scanner.start):
            m.d.sync += [
                scanner.running.eq(scanner.rows != 0),
                row_q.eq(0),
                row_base_q.eq(0),
                mask_q.eq(incoming_mask),
                values_q.eq(scanner.row_data),
            ]
    with m.Elif(finish):
        with m.If(row_q + 1 >= scanner.rows):
            m.d.sync += [scanner.running.eq(0), mask_q.eq(0)]
        with m.Else():
            m.d.sync += [
                row_q.eq(row_q + 1),
                row_base_q.eq(row_base_q + n),
                mask_q.eq(incoming_mask),
                values_q.eq(scanner.row_data),
            ]
    with m.Elif(moved):
        m.d.sync += mask_q.eq(left)



"""Activation queue of one PE: a synchronous FIFO of the non-empty broadcast columns,
``(a_j, start, len)`` (the spmat reader's command, pointers already read)."""

from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Shape, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .common import validating

__all__ = ["ActQueue", "WideActQueue"]


class ActQueue(wiring.Component):
    """First-in first-out queue of activation broadcasts.

    In the PE the payload is :func:`rtl.spmat_read.spmat_command_layout`: the pointer
    stage writes the columns with entries, the spmat reader pops them.  The PE's own
    ``act_in.ready`` (``level - pop + pending < depth``) keeps a write from ever meeting
    a full queue; ``i.ready`` here is the plain FIFO rule.

    Timing contract: a transfer on ``i`` (``valid & ready``) in cycle ``b`` makes the entry
    visible on ``o`` from cycle ``b + 1``; a transfer on ``o`` in cycle ``s`` removes it at
    the end of ``s``.  ``i.ready`` is ``level < depth`` at the start of the cycle, so a full
    queue refuses a write even when it is popped in the same cycle; it never depends on
    ``i.valid``.  ``o.payload`` is valid whenever ``o.valid`` is (combinational read of the
    head entry).  Push and pop in the same cycle keep ``level``.

    Parameters
    ----------
    layout : data.Layout
        Payload layout (``rtl.spmat_read.spmat_command_layout(config)`` in the PE).
    depth : int
        Number of entries (``config.queue_depth``), at least 1.

    Members
    -------
    i : In(stream.Signature(layout))
        Broadcast input.
    o : Out(stream.Signature(layout))
        Head of the queue; ``o.ready`` pops.
    level : Out(range(depth + 1))
        Entries held at the start of the cycle.

    Raises
    ------
    TypeError
        ``layout`` is not a data layout, or ``depth`` is not a positive integer.
    """

    def __init__(self, *, layout, depth):
        with validating(self):
            if not isinstance(layout, data.Layout):
                raise TypeError(f"Queue layout must be a data.Layout, not {layout!r}")
            if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
                raise TypeError(f"Queue depth must be a positive integer, not {depth!r}")
            self._layout = layout
            self._depth = depth
            super().__init__({
                "i": In(stream.Signature(layout)),
                "o": Out(stream.Signature(layout)),
                "level": Out(range(depth + 1)),
            })

    @property
    def layout(self):
        return self._layout

    @property
    def depth(self):
        return self._depth

    def elaborate(self, platform):
        m = Module()
        m.submodules.fifo = fifo = SyncFIFO(width=Shape.cast(self._layout).width,
                                            depth=self._depth)
        m.d.comb += [
            fifo.w_data.eq(self.i.payload.as_value()),
            fifo.w_en.eq(self.i.valid),
            self.i.ready.eq(fifo.w_rdy),
            self.o.payload.eq(fifo.r_data),
            self.o.valid.eq(fifo.r_rdy),
            fifo.r_en.eq(self.o.ready),
            self.level.eq(fifo.level),
        ]
        return m


class WideActQueue(wiring.Component):
    """:class:`ActQueue` that takes up to ``lanes`` entries per cycle (broadcast width).

    The lanes of ``i`` that are valid (any subset; the PE drives the non-empty columns of
    the group in its pointer stage) are written in lane order behind the queue's tail in
    one cycle. Timing as for :class:`ActQueue`: written in ``b``, visible on ``o`` from
    ``b + 1``; ``o.ready`` pops at the end of the cycle. There is no ``ready`` on ``i``:
    the writer must keep ``level - pop + written <= depth`` (the PE's accept rule does);
    ``overflow`` shows a write that breaks it, for the tests.

    Storage: ``lanes`` interleaved banks of ``depth / lanes`` entries, queue position
    ``P`` in bank ``P mod lanes`` at ``P // lanes``, each bank a memory with one write
    port and one asynchronous read port (LUT-RAM, as :class:`ActQueue`'s FIFO). The
    ``lanes`` positions written in one cycle are consecutive, so each bank takes at most
    one write a cycle; the head is read from every bank at ``head // lanes`` and taken
    from bank ``head mod lanes``.

    Parameters
    ----------
    layout : data.Layout
    depth : int
        A multiple of ``lanes`` (``EIEConfig`` enforces it for the PE).
    lanes : int
        Writes per cycle, at least 1.

    Members
    -------
    i_valid : In(lanes)
    i_payload : In(ArrayLayout(layout, lanes))
    o : Out(stream.Signature(layout))
    level : Out(range(depth + 1))
        Entries held at the start of the cycle.
    overflow : Out(1)
        The writes of this cycle do not fit (a contract violation by the writer).

    Raises
    ------
    TypeError
        ``layout`` is not a data layout, or ``depth``/``lanes`` is not a positive integer.
    ValueError
        ``depth`` is not a multiple of ``lanes``.
    """

    def __init__(self, *, layout, depth, lanes):
        with validating(self):
            if not isinstance(layout, data.Layout):
                raise TypeError(f"Queue layout must be a data.Layout, not {layout!r}")
            for what, value in (("Queue depth", depth), ("Queue lanes", lanes)):
                if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                    raise TypeError(f"{what} must be a positive integer, not {value!r}")
            if depth % lanes:
                raise ValueError(f"Queue depth ({depth}) must be a multiple of its lanes "
                                 f"({lanes})")
            self._layout, self._depth, self._lanes = layout, depth, lanes
            super().__init__({
                "i_valid": In(lanes),
                "i_payload": In(data.ArrayLayout(layout, lanes)),
                "o": Out(stream.Signature(layout)),
                "level": Out(range(depth + 1)),
                "overflow": Out(1),
            })

    @property
    def depth(self):
        return self._depth

    @property
    def lanes(self):
        return self._lanes

    def elaborate(self, platform):
        m = Module()
        depth, lanes = self._depth, self._lanes
        rows = depth // lanes
        head = Signal(range(depth), name="head")
        level = Signal(range(depth + 1), name="level_q")
        pop = self.o.valid & self.o.ready

        def wrap(value):
            return Mux(value >= depth, value - depth, value)

        # Lane i goes to position tail + (valid lanes before i); tail = head + level.
        tail = Signal(range(depth), name="tail")
        m.d.comb += tail.eq(wrap(head + level))
        positions, offset = [], 0
        for lane in range(lanes):
            position = Signal(range(depth), name=f"position{lane}")
            m.d.comb += position.eq(wrap(tail + offset))
            positions.append(position)
            offset = offset + self.i_valid[lane]
        written = Signal(range(lanes + 1), name="written")
        m.d.comb += [written.eq(offset), self.overflow.eq(level - pop + written > depth)]

        head_bank = Signal(range(lanes), name="head_bank")
        m.d.comb += head_bank.eq(head % lanes)
        heads = []
        for bank in range(lanes):
            memory = Memory(shape=self._layout, depth=rows, init=[])
            m.submodules[f"bank{bank}"] = memory
            write, read = memory.write_port(), memory.read_port(domain="comb")
            # At most one lane writes this bank: the written positions are consecutive.
            for lane in range(lanes):
                with m.If(self.i_valid[lane] & (positions[lane] % lanes == bank)):
                    m.d.comb += [write.en.eq(1), write.addr.eq(positions[lane] // lanes),
                                 write.data.eq(self.i_payload[lane])]
            m.d.comb += read.addr.eq(head // lanes)
            heads.append(read.data)
        m.d.comb += [self.level.eq(level), self.o.valid.eq(level != 0),
                     self.o.payload.eq(Array(heads)[head_bank])]
        m.d.sync += level.eq(level + written - pop)
        with m.If(pop):
            m.d.sync += head.eq(Mux(head == depth - 1, 0, head + 1))
        return m

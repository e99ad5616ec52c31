"""Activation queue of one PE: a synchronous FIFO of the non-empty broadcast columns,
``(a_j, start, len)`` (the spmat reader's command, pointers already read)."""

from __future__ import annotations

from amaranth.hdl import Module, Shape
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from .common import validating

__all__ = ["ActQueue"]


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

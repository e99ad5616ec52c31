"""The front of a PE with broadcast width ``B > 1``: ``B`` lanes in, their pointers read
in the transfer cycle, the non-empty ones queued in the next (docs/architecture.md,
"Broadcast width"; :class:`rtl.pe.PE` uses it when ``config.broadcast_width > 1``)."""

from __future__ import annotations

from amaranth.hdl import Signal, signed
from amaranth.lib import wiring

from .act_queue import WideActQueue
from .ptr_read import WidePtrRead
from .spmat_read import spmat_command_layout

__all__ = ["wide_front"]


def wide_front(pe, m):
    """B > 1 (docs/architecture.md, "Broadcast width"): up to B columns a cycle.

    Lane ``i`` of ``act_in`` has its pointers read in its transfer cycle; in the next
    cycle the non-empty lanes are written into the queue in lane order. ``ready[i]``
    is ``level - pop + pending + i < queue_depth`` (``pending``: lanes accepted in the
    previous cycle), room for ``i + 1`` columns, a function of registers only.
    """
    config, init = pe._config, pe._init
    lanes = config.broadcast_width
    queue = WideActQueue(layout=spmat_command_layout(config), depth=config.queue_depth,
                         lanes=lanes)
    ptr = WidePtrRead(config=config, lanes=lanes, init_even=init["ptr_even"],
                      init_odd=init["ptr_odd"])
    spmat, arith, act = pe._units(m, queue, ptr)
    tile = pe.tile

    transfer = pe.act_in.valid & pe.act_in.ready
    m.d.comb += [ptr.en.eq(transfer), ptr.base.eq(tile.ptr_base)]
    for lane in range(lanes):
        m.d.comb += ptr.index[lane].eq(pe.act_in.payload[lane].index)
    pending = Signal(lanes, name="pending")
    m.d.sync += pending.eq(transfer)
    entry_shift = config.entries_per_word.bit_length() - 1
    for lane in range(lanes):
        pending_act = Signal(signed(config.act_bits), name=f"pending_act{lane}")
        with m.If(transfer[lane]):
            m.d.sync += pending_act.eq(pe.act_in.payload[lane].value)
        length = Signal(config.pointer_bits, name=f"length{lane}")
        command = queue.i_payload[lane]
        m.d.comb += [
            length.eq(ptr.end[lane] - ptr.start[lane]),
            queue.i_valid[lane].eq(pending[lane] & (length != 0)),
            command.start.eq((tile.spmat_base << entry_shift) + ptr.start[lane]),
            command.length.eq(length),
            command.act.eq(pending_act),
        ]
    wiring.connect(m, queue.o, spmat.i)
    pop = queue.o.valid & spmat.i.ready
    held = Signal(range(config.queue_depth + lanes + 1), name="held")
    m.d.comb += held.eq(queue.level + sum(pending[lane] for lane in range(lanes)))
    for lane in range(lanes):
        m.d.comb += pe.act_in.ready[lane].eq(held + lane < config.queue_depth + pop)
    return queue, ptr, spmat, arith, act, pending

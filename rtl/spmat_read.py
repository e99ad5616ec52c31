"""Sparse-matrix reader of one PE: streams one ``(v, z)`` entry per cycle per column."""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from contract.config import clog2

from .common import HostWrite, check_config, check_init, validating

__all__ = ["SpmatRead", "spmat_command_layout", "spmat_entry_layout"]


def _log2_entries(config) -> int:
    return config.entries_per_word.bit_length() - 1


def spmat_command_layout(config) -> data.StructLayout:
    """One column to stream: absolute entry address, entry count and its activation."""
    return data.StructLayout({
        "start": unsigned(clog2(config.spmat_depth) + _log2_entries(config)),
        "length": unsigned(config.pointer_bits),
        "act": signed(config.act_bits),
    })


def spmat_entry_layout(config) -> data.StructLayout:
    """One matrix entry with its column's activation; ``first`` marks a column's first."""
    return data.StructLayout({
        "v": unsigned(config.weight_bits),
        "z": unsigned(config.index_bits),
        "first": unsigned(1),
        "act": signed(config.act_bits),
    })


class SpmatRead(wiring.Component):
    """Streams the entries of sparse-matrix columns, one per cycle, with no bubble.

    The sparse-matrix SRAM (``word_bits x spmat_depth``, ``entries_per_word`` entries per
    word, first entry in the LSBs) is one logical memory stored as two physical banks:
    word ``w`` lives in bank ``w & 1`` at ``w >> 1``.  A column start fetches the word
    holding its first entry and, if the column reaches it, the next word, in the same
    cycle (one from each bank), skipping a word the window already holds; afterwards the
    reader keeps the two-word window and fetches word ``w + 2`` while it emits the last
    entry of word ``w``.  So a long column costs one SRAM word read per
    ``entries_per_word`` entries, and a run of columns that follow each other in memory
    (the packer's layout) reads each word exactly once.  A host write empties the window.

    Timing contract::

        cycle      t          t+1      t+2      ...  t+L
        i.valid    1 (L>0)
        i.ready    1          0        0        ...  1 (if L > 1; 1 throughout if L = 1)
        o.valid               1        1        ...  1
        o.payload             e[0]     e[1]     ...  e[L-1]
        o.first               1        0        ...  0

    A command transfer (``i.valid & i.ready`` with ``length = L > 0``) in cycle ``t``
    emits its ``L`` entries in cycles ``t+1 .. t+L``.  ``i.ready`` is high when at most
    one entry is left to emit (``left <= 1``, a function of registers only), i.e. from
    cycle ``t+L`` (while the last entry is emitted) on: a command taken then has its first
    entry follow the previous column's last entry with no bubble.  A command with
    ``L = 0`` is taken and ignored (the PE never issues one: empty columns are not
    queued).  ``o`` has no back-pressure.  Host writes take effect at the end of their
    cycle; they must not overlap streaming.

    Parameters
    ----------
    config : EIEConfig
        ``entries_per_word`` is a power of two (``EIEConfig`` enforces it).
    init : sequence of int, optional
        Initial words of the logical memory (``spmat_depth`` rows, missing rows are 0).

    Members
    -------
    i : In(stream.Signature(spmat_command_layout(config)))
        ``start``: absolute entry address (``spmat_base * entries_per_word + P_j``);
        ``length``: entries; ``act``: activation travelling with the entries.
        ``ready`` does not depend on ``valid``.
    o : Out(stream.Signature(spmat_entry_layout(config), always_ready=True))
        ``v``, ``z``, ``first`` (first entry of a column) and ``act``.
    host : In(HostWrite.Signature(clog2(spmat_depth), word_bits))
        Host write of a logical word (the reader splits it over its banks).

    Raises
    ------
    TypeError
        ``config`` is not an ``EIEConfig``, or an initial value is not an integer.
    ValueError
        More initial words than ``spmat_depth``.
    """

    def __init__(self, *, config, init=None):
        with validating(self):
            self._config = check_config(config)
            self._init = check_init("the sparse-matrix memory", init, config.spmat_depth)
            super().__init__({
                "i": In(stream.Signature(spmat_command_layout(config))),
                "o": Out(stream.Signature(spmat_entry_layout(config), always_ready=True)),
                "host": In(HostWrite.Signature(clog2(config.spmat_depth), config.word_bits)),
            })

    @property
    def config(self):
        return self._config

    def elaborate(self, platform):
        config = self._config
        m = Module()
        shift = _log2_entries(config)
        epw = config.entries_per_word
        bank_depth = (config.spmat_depth + 1) // 2
        shape = unsigned(config.word_bits)
        m.submodules.even = even = Memory(shape=shape, depth=bank_depth,
                                          init=self._init[0::2])
        m.submodules.odd = odd = Memory(shape=shape, depth=bank_depth, init=self._init[1::2])
        even_read, odd_read = even.read_port(), odd.read_port()
        even_write, odd_write = even.write_port(), odd.write_port()
        self._read_ports = (even_read, odd_read)  # exposed for read counting in tests

        layout = spmat_command_layout(config)
        entry_q = Signal(layout["start"].shape)            # address of the entry to emit
        left_q = Signal(config.pointer_bits)              # entries left, this one included
        first_q = Signal()
        act_q = Signal(layout["act"].shape)

        active = left_q != 0
        # Ready for the next column while the last entry of this one is emitted (or idle).
        m.d.comb += self.i.ready.eq(left_q[1:] == 0)
        word = entry_q >> shift
        offset = entry_q[:shift]
        # The read ports hold their last data, so they are the two-word window.
        window = Signal(config.word_bits)
        with m.If(word[0]):
            m.d.comb += window.eq(odd_read.data)
        with m.Else():
            m.d.comb += window.eq(even_read.data)
        entry = window.word_select(offset, config.entry_bits)
        m.d.comb += [
            self.o.valid.eq(active),
            self.o.payload.v.eq(entry[:config.weight_bits]),
            self.o.payload.z.eq(entry[config.weight_bits:]),
            self.o.payload.first.eq(first_q),
            self.o.payload.act.eq(act_q),
        ]

        with m.If(active):
            m.d.sync += [entry_q.eq(entry_q + 1), left_q.eq(left_q - 1), first_q.eq(0)]

        command = self.i.payload
        # Read-port enables default to 1; the ports must hold the window otherwise.
        m.d.comb += [even_read.en.eq(0), odd_read.en.eq(0)]
        # Which word each bank's read register holds: a column that starts in words the
        # window already holds (the common case when columns follow each other in memory)
        # reads nothing, so every word of a run of consecutive columns is read once.
        even_tag, odd_tag = Signal.like(even_read.addr), Signal.like(odd_read.addr)
        even_held, odd_held = Signal(), Signal()
        with m.If(self.i.valid & self.i.ready & (command.length != 0)):
            start_word = command.start >> shift
            # Second word of the window only if the column reaches it.
            second = (command.start[:shift] + command.length) > epw
            m.d.comb += [
                odd_read.addr.eq(start_word >> 1),
                even_read.addr.eq((start_word >> 1) + start_word[0]),
                odd_read.en.eq((start_word[0] | second) &
                               ~(odd_held & (odd_tag == odd_read.addr))),
                even_read.en.eq((~start_word[0] | second) &
                                ~(even_held & (even_tag == even_read.addr))),
            ]
            m.d.sync += [
                entry_q.eq(command.start),
                left_q.eq(command.length),
                first_q.eq(1),
                act_q.eq(command.act),
            ]
        with m.Elif(active & (offset == epw - 1) & (left_q > epw + 1)):
            # Leaving word w: refill its bank with word w + 2 (needed by this column).
            next_word = word + 2
            m.d.comb += [odd_read.addr.eq(next_word >> 1), even_read.addr.eq(next_word >> 1)]
            with m.If(word[0]):
                m.d.comb += odd_read.en.eq(1)
            with m.Else():
                m.d.comb += even_read.en.eq(1)

        for port, tag, held in ((even_read, even_tag, even_held),
                                (odd_read, odd_tag, odd_held)):
            with m.If(port.en):
                m.d.sync += [tag.eq(port.addr), held.eq(1)]
        with m.If(self.host.en):
            m.d.sync += [even_held.eq(0), odd_held.eq(0)]

        for port, bank in ((even_write, 0), (odd_write, 1)):
            m.d.comb += [
                port.addr.eq(self.host.addr >> 1),
                port.data.eq(self.host.data),
                port.en.eq(self.host.en & (self.host.addr[0] == bank)),
            ]
        return m

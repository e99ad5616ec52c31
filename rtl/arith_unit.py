"""Arithmetic unit of one PE: codebook, row decode, multiply, accumulate, write-back."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from contract.config import clog2

from .common import HostWrite, check_config, check_init, tile_layout, validating
from .spmat_read import spmat_entry_layout

__all__ = ["ArithUnit", "writeback_layout"]


def writeback_layout(config) -> data.StructLayout:
    """One written-back activation: local accumulator row and its value."""
    return data.StructLayout({
        "row": unsigned(clog2(config.acc_depth)),
        "value": signed(config.act_bits),
    })


class ArithUnit(wiring.Component):
    """Decodes matrix entries and accumulates ``C[v] * a`` into the local accumulators.

    Holds the per-PE codebook (``max_layers * 2**weight_bits x codebook_bits``, address
    ``slot * 2**weight_bits + v``), bias (``bias_depth x acc_bits``) and accumulator
    (``acc_depth x acc_bits``) memories.  The local row of an entry is
    ``r = r_prev + z + 1`` with ``r_prev = -1`` at a column's ``first`` entry.  Entries with
    ``v = 0`` (padding) do not write.  Accumulation wraps modulo ``2**acc_bits``.  An
    accumulator written in one cycle and read by the next entry in the following cycle is
    forwarded (bypass), so back-to-back updates of one row are exact.

    Timing contract (cycle ``t`` = the cycle the entry, preload or write-back request is
    presented):

    - entry on ``i``: accumulator written at the end of ``t + 3`` (reads of that row
      issued from ``t + 4`` on see it; ``busy`` covers ``t + 1 .. t + 3``).
    - ``preload_en``: ``acc[preload_row] <= bias_en ? bias[bias_base + preload_row] : 0``
      written at the end of ``t + 1``.
    - ``wb_en``: ``acc[wb_row]`` read in ``t``; the write-back rule of docs/numerics.md
      (shift, round half up, saturate, ReLU per ``tile``) appears on ``wb`` in ``t + 2``.

    One entry, preload or write-back per cycle each, fully pipelined.  Preload, compute
    and write-back must not overlap (they share the accumulator ports).

    Parameters
    ----------
    config : EIEConfig
    codebook_init, bias_init : sequence of int, optional
        Initial (signed) contents of the codebook and bias memories.

    Members
    -------
    i : In(stream.Signature(spmat_entry_layout(config), always_ready=True))
        Matrix entries with their activation.
    tile : In(tile_layout(config))
        Uses ``slot``, ``bias_base``, ``bias_en``, ``shift`` and ``relu``.
    preload_en : In(1)
    preload_row : In(range(acc_depth))
    wb_en : In(1)
    wb_row : In(range(acc_depth))
    wb : Out(stream.Signature(writeback_layout(config), always_ready=True))
        Written-back activations, two cycles after ``wb_en``.
    busy : Out(1)
        An entry, preload or write-back is in flight.
    host_codebook : In(HostWrite.Signature(clog2(codebook depth), codebook_bits))
        Host write of the codebook (address ``slot * 2**weight_bits + v``).
    host_bias : In(HostWrite.Signature(clog2(bias_depth), acc_bits))
        Host write of the bias memory.

    Raises
    ------
    TypeError
        ``config`` is not an ``EIEConfig``, or an initial value is not an integer.
    ValueError
        More initial values than the memory depth.
    """

    def __init__(self, *, config, codebook_init=None, bias_init=None):
        with validating(self):
            self._config = check_config(config)
            codebook_depth = config.max_layers * config.codebook_size
            self._codebook_init = check_init("the codebook", codebook_init, codebook_depth)
            self._bias_init = check_init("the bias memory", bias_init, config.bias_depth)
            super().__init__({
                "i": In(stream.Signature(spmat_entry_layout(config), always_ready=True)),
                "tile": In(tile_layout(config)),
                "preload_en": In(1),
                "preload_row": In(range(config.acc_depth)),
                "wb_en": In(1),
                "wb_row": In(range(config.acc_depth)),
                "wb": Out(stream.Signature(writeback_layout(config), always_ready=True)),
                "busy": Out(1),
                "host_codebook": In(HostWrite.Signature(clog2(codebook_depth),
                                                        config.codebook_bits)),
                "host_bias": In(HostWrite.Signature(clog2(config.bias_depth), config.acc_bits)),
            })

    @property
    def config(self):
        return self._config

    def elaborate(self, platform):
        config = self._config
        m = Module()
        acc_shape = signed(config.acc_bits)
        m.submodules.codebook = codebook = Memory(
            shape=signed(config.codebook_bits), depth=config.max_layers * config.codebook_size,
            init=self._codebook_init)
        m.submodules.bias = bias = Memory(shape=acc_shape, depth=config.bias_depth,
                                          init=self._bias_init)
        m.submodules.acc = acc = Memory(shape=acc_shape, depth=config.acc_depth, init=[])
        codebook_read, codebook_write = codebook.read_port(), codebook.write_port()
        bias_read, bias_write = bias.read_port(), bias.write_port()
        acc_read, acc_write = acc.read_port(), acc.write_port()
        tile = self.tile
        row_shape = unsigned(clog2(config.acc_depth))

        # ---- stage 1: register the entry, decode its row, look up the codebook ----------
        valid_1 = Signal()
        entry_1 = Signal.like(self.i.payload)
        row_prev = Signal(row_shape)
        m.d.sync += [valid_1.eq(self.i.valid), entry_1.eq(self.i.payload)]
        row_1 = Signal(row_shape)
        m.d.comb += row_1.eq(Mux(entry_1.first, entry_1.z, row_prev + entry_1.z + 1))
        with m.If(valid_1):
            m.d.sync += row_prev.eq(row_1)
        m.d.comb += [
            codebook_read.addr.eq(Cat(entry_1.v, tile.slot)),
            codebook_read.en.eq(1),
        ]

        # ---- stage 2: multiply (registered, maps onto a DSP), read the accumulator -------
        write_2 = Signal()          # padding (v = 0) adds nothing: no write
        row_2 = Signal(row_shape)
        act_2 = Signal(signed(config.act_bits))
        m.d.sync += [
            write_2.eq(valid_1 & (entry_1.v != 0)),
            row_2.eq(row_1),
            act_2.eq(entry_1.act),
        ]
        product_3 = Signal(signed(config.act_bits + config.codebook_bits))
        write_3 = Signal()
        row_3 = Signal(row_shape)
        m.d.sync += [
            product_3.eq(act_2 * codebook_read.data),
            write_3.eq(write_2),
            row_3.eq(row_2),
        ]

        # ---- stage 3: accumulate and write, forwarding the previous cycle's write --------
        # The accumulator read of this entry was issued while the previous entry was being
        # written, so it returned the stale value when both hit the same row.
        sum_4 = Signal(acc_shape)
        row_4 = Signal(row_shape)
        write_4 = Signal()
        old = Signal(acc_shape)
        total = Signal(acc_shape)   # wraps modulo 2**acc_bits by truncation
        m.d.comb += [
            old.eq(Mux(write_4 & (row_4 == row_3), sum_4, acc_read.data)),
            total.eq(old + product_3),
        ]
        m.d.sync += [sum_4.eq(total), row_4.eq(row_3), write_4.eq(write_3)]

        # ---- preload: bias read, then accumulator write --------------------------------
        preload_1 = Signal()
        preload_row_1 = Signal(row_shape)
        m.d.sync += [preload_1.eq(self.preload_en), preload_row_1.eq(self.preload_row)]
        m.d.comb += [
            bias_read.addr.eq(tile.bias_base + self.preload_row),
            bias_read.en.eq(self.preload_en),
        ]
        with m.If(preload_1):
            m.d.comb += [
                acc_write.addr.eq(preload_row_1),
                acc_write.data.eq(Mux(tile.bias_en, bias_read.data, 0)),
                acc_write.en.eq(1),
            ]
        with m.Else():
            m.d.comb += [
                acc_write.addr.eq(row_3),
                acc_write.data.eq(total),
                acc_write.en.eq(write_3),
            ]

        # ---- write-back: read, shift + round half up, saturate + ReLU --------------------
        m.d.comb += [
            acc_read.addr.eq(Mux(self.wb_en, self.wb_row, row_2)),
            acc_read.en.eq(1),
        ]
        wb_1, wb_2 = Signal(), Signal()
        wb_row_1, wb_row_2 = Signal(row_shape), Signal(row_shape)
        m.d.sync += [
            wb_1.eq(self.wb_en), wb_row_1.eq(self.wb_row),
            wb_2.eq(wb_1), wb_row_2.eq(wb_row_1),
        ]
        # floor((acc + 2**(s-1)) / 2**s) == floor((floor(2*acc / 2**s) + 1) / 2) for s >= 1,
        # and the right side is acc for s = 0: one formula, exact for every shift.
        doubled = acc_read.data * 2
        rounded_2 = Signal(signed(config.acc_bits + 1))
        m.d.sync += rounded_2.eq(((doubled >> tile.shift) + 1) >> 1)
        low, high = -(1 << (config.act_bits - 1)), (1 << (config.act_bits - 1)) - 1
        value = Signal(signed(config.act_bits))
        with m.If(tile.relu & (rounded_2 < 0)):
            m.d.comb += value.eq(0)
        with m.Elif(rounded_2 < low):
            m.d.comb += value.eq(low)
        with m.Elif(rounded_2 > high):
            m.d.comb += value.eq(high)
        with m.Else():
            m.d.comb += value.eq(rounded_2)
        m.d.comb += [
            self.wb.valid.eq(wb_2),
            self.wb.payload.row.eq(wb_row_2),
            self.wb.payload.value.eq(value),
        ]

        m.d.comb += self.busy.eq(valid_1 | write_2 | write_3 | preload_1 | wb_1 | wb_2)

        m.d.comb += [
            codebook_write.addr.eq(self.host_codebook.addr),
            codebook_write.data.eq(self.host_codebook.data),
            codebook_write.en.eq(self.host_codebook.en),
            bias_write.addr.eq(self.host_bias.addr),
            bias_write.data.eq(self.host_bias.data),
            bias_write.en.eq(self.host_bias.en),
        ]
        return m

"""Arithmetic of one ESE PE position for ``C`` channels that share one copy of the weights."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from contract.config import clog2

from .common import HostWrite, check_config, check_init, tile_layout, validating
from .spmat_read import spmat_entry_layout

__all__ = ["ChannelArith", "channel_entry_layout", "channel_writeback_layout",
           "check_channels", "write_back_value"]


def check_channels(channels) -> int:
    """Raise ``TypeError`` unless ``channels`` is a positive integer; return it."""
    if not isinstance(channels, int) or isinstance(channels, bool) or channels < 1:
        raise TypeError(f"Channel count must be a positive integer, not {channels!r}")
    return channels


def channel_entry_layout(config, channels: int) -> data.StructLayout:
    """One matrix entry (``v``, ``z``, ``first`` as :func:`spmat_entry_layout`) with the
    activation of its column in each of ``channels`` channels (``acts[c]``)."""
    entry = spmat_entry_layout(check_config(config))
    return data.StructLayout({
        "v": entry["v"].shape,
        "z": entry["z"].shape,
        "first": entry["first"].shape,
        "acts": data.ArrayLayout(signed(config.act_bits), check_channels(channels)),
    })


def channel_writeback_layout(config, channels: int) -> data.StructLayout:
    """One written-back accumulator: its local row, its channel (``clog2(channels)`` bits,
    at least 1) and its value."""
    check_config(config)
    return data.StructLayout({
        "row": unsigned(clog2(config.acc_depth)),
        "channel": unsigned(clog2(check_channels(channels))),
        "value": signed(config.act_bits),
    })


def write_back_value(m, acc, tile, config, name="value"):
    """The write-back rule of docs/numerics.md on ``acc`` (an accumulator read returned in
    cycle ``t``), as a value valid in cycle ``t + 1``: shift with round half up is
    registered at the end of ``t``, saturation and ReLU (``tile.relu``) follow in ``t + 1``.

    ``floor((acc + 2**(s-1)) / 2**s) == floor((floor(2*acc / 2**s) + 1) / 2)`` for
    ``s >= 1`` and the right side is ``acc`` for ``s = 0``: one arithmetic shift, exact for
    every shift and unable to overflow in ``acc_bits + 1`` bits.  ``name`` names the
    value signal (the rounding register is ``<name>_rounded``).
    """
    rounded = Signal(signed(config.acc_bits + 1), name=f"{name}_rounded")
    m.d.sync += rounded.eq(((acc * 2 >> tile.shift) + 1) >> 1)
    low, high = -(1 << (config.act_bits - 1)), (1 << (config.act_bits - 1)) - 1
    value = Signal(signed(config.act_bits), name=name)
    m.d.comb += value.eq(Mux(tile.relu & (rounded < 0), 0,
                             Mux(rounded < low, low, Mux(rounded > high, high, rounded))))
    return value


def _select(values, index):
    """``values[index]`` as a balanced tree of 2:1 multiplexers, one level per bit of
    ``index`` (low bit first), which Yosys maps onto LUT6 4:1 multiplexers; an index past
    the end selects one of the values."""
    level = list(values)
    for bit in range(len(index)):
        if len(level) == 1:
            break
        level = [Mux(index[bit], level[k + 1], level[k]) if k + 1 < len(level) else level[k]
                 for k in range(0, len(level), 2)]
    return level[0]


class ChannelArith(wiring.Component):
    """Decodes matrix entries once and accumulates ``C[v] * a[c]`` for ``C`` channels.

    ESE runs ``channels`` utterances in lockstep on one copy of the weights: an entry's
    row decode, codebook lookup and a preload's bias read are the same for every channel,
    so one codebook (``max_layers * 2**weight_bits x codebook_bits``, address
    ``slot * 2**weight_bits + v``) and one bias memory (``bias_depth x acc_bits``) serve
    all channels, while each channel has its own multiplier, accumulator memory
    (``acc_depth x acc_bits``) and accumulate-and-bypass path.  Write-back is
    channel-serial: one write-back path (shift, round, saturate, ReLU) serves all
    channels, one ``(row, channel)`` per cycle, because that path costs several times a
    multiply-accumulate path in LUTs.

    Every channel has exactly the numerics and timing of
    :class:`~rtl.arith_unit.ArithUnit` (with ``act = acts[c]``; for ``channels = 1`` the
    outputs equal ``ArithUnit``'s cycle for cycle, ``wb.payload.value`` being its
    ``wb.payload.value``).  The local row of an entry is ``r = r_prev + z + 1`` with
    ``r_prev = -1`` at a column's ``first`` entry.  Entries with ``v = 0`` (padding) do not
    write.  Accumulation wraps modulo ``2**acc_bits``.  An accumulator written in one cycle
    and read by the next entry in the following cycle is forwarded (bypass), so
    back-to-back updates of one row are exact.

    Timing contract (cycle ``t`` = the cycle the entry, preload or write-back request is
    presented)::

        cycle       t        t+1      t+2      t+3      t+4
        i           entry                      acc[c][r] written at the end
        preload_en  row      acc[c][row] written at the end
        wb_en       row, c            wb (row, channel, value)

    - entry on ``i``: every channel's accumulator written at the end of ``t + 3`` (reads
      of that row issued from ``t + 4`` on see it; ``busy`` covers ``t + 1 .. t + 3``).
    - ``preload_en``: ``acc[c][preload_row] <= bias_en ? bias[bias_base + preload_row]
      : 0`` for every ``c``, written at the end of ``t + 1``.
    - ``wb_en``: ``acc[wb_channel][wb_row]`` read in ``t`` (every channel's memory reads
      ``wb_row``; a ``C:1`` multiplexer in ``t + 1`` picks one); the write-back rule of
      docs/numerics.md (shift, round half up, saturate, ReLU per ``tile``) of it appears
      on ``wb.payload.value`` in ``t + 2`` with ``row = wb_row``,
      ``channel = wb_channel``.  Requests for any ``(row, channel)`` in any order, one per
      cycle, back to back.

    One entry, preload or write-back per cycle each, fully pipelined.  Preload, compute
    and write-back must not overlap (they share the accumulator ports).

    Parameters
    ----------
    config : EIEConfig
        The channel config (``ESEConfig.channel``).
    channels : int
        Channels ``C >= 1``.
    codebook_init, bias_init : sequence of int, optional
        Initial (signed) contents of the codebook and bias memories.

    Members
    -------
    i : In(stream.Signature(channel_entry_layout(config, channels), always_ready=True))
        Matrix entries with each channel's activation.
    tile : In(tile_layout(config))
        Uses ``slot``, ``bias_base``, ``bias_en``, ``shift`` and ``relu``.
    preload_en : In(1)
    preload_row : In(range(acc_depth))
    wb_en : In(1)
    wb_row : In(range(acc_depth))
    wb_channel : In(range(channels))
        The channel of a write-back request (sampled with ``wb_en``).
    wb : Out(stream.Signature(channel_writeback_layout(config, channels), always_ready=True))
        One channel's written-back accumulator, two cycles after ``wb_en``.
    busy : Out(1)
        An entry, preload or write-back is in flight.
    host_codebook : In(HostWrite.Signature(clog2(codebook depth), codebook_bits))
        Host write of the codebook (address ``slot * 2**weight_bits + v``).
    host_bias : In(HostWrite.Signature(clog2(bias_depth), acc_bits))
        Host write of the bias memory.

    Raises
    ------
    TypeError
        ``config`` is not an ``EIEConfig``, ``channels`` is not a positive integer, or an
        initial value is not an integer.
    ValueError
        More initial values than the memory depth.
    """

    def __init__(self, *, config, channels, codebook_init=None, bias_init=None):
        with validating(self):
            self._config = check_config(config)
            self._channels = check_channels(channels)
            codebook_depth = config.max_layers * config.codebook_size
            self._codebook_init = check_init("the codebook", codebook_init, codebook_depth)
            self._bias_init = check_init("the bias memory", bias_init, config.bias_depth)
            entry = channel_entry_layout(config, channels)
            writeback = channel_writeback_layout(config, channels)
            super().__init__({
                "i": In(stream.Signature(entry, always_ready=True)),
                "tile": In(tile_layout(config)),
                "preload_en": In(1),
                "preload_row": In(range(config.acc_depth)),
                "wb_en": In(1),
                "wb_row": In(range(config.acc_depth)),
                "wb_channel": In(range(channels)),
                "wb": Out(stream.Signature(writeback, always_ready=True)),
                "busy": Out(1),
                "host_codebook": In(HostWrite.Signature(clog2(codebook_depth),
                                                        config.codebook_bits)),
                "host_bias": In(HostWrite.Signature(clog2(config.bias_depth), config.acc_bits)),
            })

    @property
    def config(self):
        return self._config

    @property
    def channels(self):
        return self._channels

    def elaborate(self, platform):
        config = self._config
        m = Module()
        acc_shape = signed(config.acc_bits)
        m.submodules.codebook = codebook = Memory(
            shape=signed(config.codebook_bits), depth=config.max_layers * config.codebook_size,
            init=self._codebook_init)
        m.submodules.bias = bias = Memory(shape=acc_shape, depth=config.bias_depth,
                                          init=self._bias_init)
        codebook_read, codebook_write = codebook.read_port(), codebook.write_port()
        bias_read, bias_write = bias.read_port(), bias.write_port()
        tile = self.tile
        row_shape = unsigned(clog2(config.acc_depth))

        # ---- shared stage 1: register the entry, decode its row, look up the codebook ---
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

        # ---- shared control of stages 2 and 3 (row, write enable, bypass condition) -----
        write_2, write_3, write_4 = Signal(), Signal(), Signal()   # v = 0 does not write
        row_2, row_3, row_4 = Signal(row_shape), Signal(row_shape), Signal(row_shape)
        m.d.sync += [
            write_2.eq(valid_1 & (entry_1.v != 0)), row_2.eq(row_1),
            write_3.eq(write_2), row_3.eq(row_2),
            write_4.eq(write_3), row_4.eq(row_3),
        ]
        # The accumulator read of the entry in stage 3 was issued while the previous entry
        # was being written, so it returned the stale value when both hit the same row.
        bypass = Signal()
        m.d.comb += bypass.eq(write_4 & (row_4 == row_3))

        # ---- shared preload (bias read) and write-back (row) control ---------------------
        preload_1 = Signal()
        preload_row_1 = Signal(row_shape)
        preload_value = Signal(acc_shape)
        m.d.sync += [preload_1.eq(self.preload_en), preload_row_1.eq(self.preload_row)]
        m.d.comb += [
            bias_read.addr.eq(tile.bias_base + self.preload_row),
            bias_read.en.eq(self.preload_en),
            preload_value.eq(Mux(tile.bias_en, bias_read.data, 0)),
        ]
        wb_1, wb_2 = Signal(), Signal()
        wb_row_1, wb_row_2 = Signal(row_shape), Signal(row_shape)
        channel_shape = unsigned(clog2(self._channels))
        wb_channel_1, wb_channel_2 = Signal(channel_shape), Signal(channel_shape)
        m.d.sync += [
            wb_1.eq(self.wb_en), wb_row_1.eq(self.wb_row), wb_channel_1.eq(self.wb_channel),
            wb_2.eq(wb_1), wb_row_2.eq(wb_row_1), wb_channel_2.eq(wb_channel_1),
        ]
        m.d.comb += [self.wb.valid.eq(wb_2), self.wb.payload.row.eq(wb_row_2),
                     self.wb.payload.channel.eq(wb_channel_2)]
        acc_reads = []

        # ---- per channel: multiply, accumulate with bypass, write -----------------------
        for channel in range(self._channels):
            acc = Memory(shape=acc_shape, depth=config.acc_depth, init=[])
            m.submodules[f"acc_{channel}"] = acc
            acc_read, acc_write = acc.read_port(), acc.write_port()
            act_2 = Signal(signed(config.act_bits), name=f"act_2_{channel}")
            product_3 = Signal(signed(config.act_bits + config.codebook_bits),
                               name=f"product_3_{channel}")
            sum_4 = Signal(acc_shape, name=f"sum_4_{channel}")
            total = Signal(acc_shape, name=f"total_{channel}")   # wraps by truncation
            m.d.sync += [
                act_2.eq(entry_1.acts[channel]),
                product_3.eq(act_2 * codebook_read.data),    # registered: maps onto a DSP
                sum_4.eq(total),
            ]
            m.d.comb += [
                total.eq(Mux(bypass, sum_4, acc_read.data) + product_3),
                acc_read.addr.eq(Mux(self.wb_en, self.wb_row, row_2)),
                acc_read.en.eq(1),
                acc_write.addr.eq(Mux(preload_1, preload_row_1, row_3)),
                acc_write.data.eq(Mux(preload_1, preload_value, total)),
                acc_write.en.eq(preload_1 | write_3),
            ]
            acc_reads.append(acc_read.data)

        # ---- one write-back path: pick the requested channel's read, then round -------
        selected = Signal(acc_shape)
        m.d.comb += [
            selected.eq(_select(acc_reads, wb_channel_1)),
            self.wb.payload.value.eq(write_back_value(m, selected, tile, config)),
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

"""Cell unit of one ESE PE: gate write-back in, cell update, ``m`` out (docs/ese.md)."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from contract.config import clog2

from .common import HostWrite, validating
from .sigmoid_tanh import SigmoidTanh, check_ese_config, check_signed_init

__all__ = ["CellUnit"]


def _saturate(value, bits):
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return Mux(value < low, low, Mux(value > high, high, value))


def _rshift(value, shift):
    """Round half up arithmetic shift by a constant (docs/ese.md ``rshift``)."""
    return (value + (1 << (shift - 1))) >> shift if shift > 0 else value


def _peephole_term(product, shift):
    """``rshift(product, shift)`` by a variable amount: ``((2a >> s) + 1) >> 1`` is exact
    for every ``s >= 0``."""
    return ((product * 2 >> shift) + 1) >> 1


class CellUnit(wiring.Component):
    """The elementwise stage of one PE: one datapath, the ``C`` channels one after the other.

    Consumes a gate tile's write-back as passes, one per channel: local rows ``4k + q``
    (``q`` = i, f, g, o) of the tile's local cell ``k`` of channel ``wb.channel``, one row
    per cycle.  Per cell it computes, exactly as ``golden.lstm_model.run_lstm``::

        i = σ(u_i + pk(p_ci, c_prev))    f = σ(u_f + pk(p_cf, c_prev))    g = tanh(u_g)
        c = sat_cell(rshift(f c_prev + i g, Y))
        o = σ(u_o + pk(p_co, c))         m = sat_act(rshift(o tanh(rshift(c, Y - F)), 2Y - F))

    with ``pk(p, c) = rshift(p c, peep_shift)`` (0 when ``tile.peephole`` is low) and the
    sums ``u + pk`` exact (saturated to ``act_bits + 1`` bits before the table, which the
    table's clamp makes exact); ``c`` is written back to the cell memory, ``m`` goes out
    with the cell's channel.

    Timing contract (cycle ``t`` = the cycle row ``4k + 3`` (o) of a cell is on ``wb``):

    - its ``m`` is on ``m`` (``valid`` high, ``addr = m_base + k``, ``channel`` = the
      rows' channel) in ``t + LATENCY``;
    - its ``c`` is written at the end of ``t + 6`` (a read for a later tile sees it);
    - the four rows of a cell come on consecutive cycles (i, f, g, o), with the same
      ``channel < C``; between two cells any number of idle cycles (0 included), and the
      channel may change from one cell to the next: one cell every 4 cycles is sustained
      indefinitely, across cells, passes and channels;
    - ``tile`` is stable from the tile's first row (of its first pass) until its last
      ``m`` is out (it is read as the pipeline needs it); the next tile's rows may start
      in the next cycle.

    ::

        wb.row      i0 f0 g0 o0 i1 f1 g1 o1 .. (gap) i0 f0 g0 o0 ..
        wb.channel  0  0  0  0  0  0  0  0  ..       1  1  1  1
        m           .. (11 cycles after o0) m0 .  .  .  m1 .. m0 (channel 1)

    Every shared unit (memory port, multiplier, σ/tanh unit, peephole shift) serves one
    cell within a window of at most 4 consecutive cycles; values needed later travel in
    delay lines.  So cells at least 4 cycles apart never collide, whatever their spacing.
    No back-pressure.  ``clear.en`` writes 0 into the cell memory at ``clear.addr`` at the
    end of the cycle (and wins over the cell write-back if both come in one cycle).  Host
    writes take effect at the end of the cycle.

    Parameters
    ----------
    config : ESEConfig
    sigmoid_init, tanh_init : sequence of int, optional
        The σ and tanh tables (``K + 1`` signed ``gate_bits`` samples each).
    peephole_init : sequence of int, optional
        Peephole memory (``3 * cell_depth`` signed ``codebook_bits`` words).

    Members
    -------
    wb : In(StructLayout({"valid": 1, "row": unsigned(clog2(acc_depth)),
        "channel": unsigned(clog2(C)), "value": signed(act_bits)}))
        Gate pre-activation ``u`` of one local row of one channel.
    tile : In(StructLayout({"cell_base", "m_base", "peephole", "peep_shift"}))
        Cell ``k`` lives at ``cell_base + k`` (of its channel), its peepholes at
        ``3 (cell_base + k) + 0, 1, 2`` (p_ci, p_cf, p_co, the same for every channel),
        its ``m`` goes to ``m_base + k``; ``peep_shift = peep_frac + Y - F`` (6 bits).
    m : Out(StructLayout({"valid": 1, "addr": unsigned(clog2(act_depth)),
        "channel": unsigned(clog2(C)), "value": signed(act_bits)}))
    clear : In(StructLayout({"en": 1, "addr": unsigned(clog2(C * cell_depth))}))
        The cell memory holds cell ``k`` of channel ``ch`` at
        ``ch * cell_depth + cell_base + k``.
    host_table : In(HostWrite.Signature(clog2(2 * (K + 1)), gate_bits))
        Address ``func * (K + 1) + s`` (0 = σ, 1 = tanh), written into both units.
    host_peephole : In(HostWrite.Signature(clog2(3 * cell_depth), codebook_bits))

    Raises
    ------
    TypeError
        ``config`` is not an ``ESEConfig``, or an initial value is not an integer.
    ValueError
        Too many initial values, or one that does not fit its memory's width.
    """

    #: Cycles from a cell's o row on ``wb`` to its ``m`` on ``m``.
    LATENCY = 11

    def __init__(self, *, config, sigmoid_init=None, tanh_init=None, peephole_init=None):
        with validating(self):
            self._config = check_ese_config(config)
            ch = config.channel
            size, bits = config.table_size, config.gate_bits
            self._tables = (check_signed_init("the σ table", sigmoid_init, size, bits),
                            check_signed_init("the tanh table", tanh_init, size, bits))
            self._peephole_init = check_signed_init(
                "the peephole memory", peephole_init, 3 * config.cell_depth, ch.codebook_bits)
            channel = unsigned(clog2(config.channels))
            super().__init__({
                "wb": In(data.StructLayout({
                    "valid": 1, "row": unsigned(clog2(ch.acc_depth)), "channel": channel,
                    "value": signed(ch.act_bits)})),
                "tile": In(data.StructLayout({
                    "cell_base": unsigned(clog2(config.cell_depth)),
                    "m_base": unsigned(clog2(ch.act_depth)),
                    "peephole": 1, "peep_shift": unsigned(6)})),
                "m": Out(data.StructLayout({
                    "valid": 1, "addr": unsigned(clog2(ch.act_depth)), "channel": channel,
                    "value": signed(ch.act_bits)})),
                "clear": In(data.StructLayout({
                    "en": 1, "addr": unsigned(clog2(config.channels * config.cell_depth))})),
                "host_table": In(HostWrite.Signature(clog2(2 * size), bits)),
                "host_peephole": In(HostWrite.Signature(clog2(3 * config.cell_depth),
                                                        ch.codebook_bits)),
            })

    @property
    def config(self):
        return self._config

    def elaborate(self, platform):
        config = self._config
        ch = config.channel
        y_frac, f_act = config.gate_frac, ch.act_frac
        in_bits = ch.act_bits + 1
        cell_shape, in_shape = signed(config.cell_bits), signed(in_bits)
        gate_shape = signed(config.gate_bits)
        m = Module()
        tile = self.tile

        def reg(shape, name):
            return Signal(shape, name=name, reset_less=True)

        # The schedule, in cycles s after a cell's i row (s = 0) on wb:
        #   s1..s3   read c_prev (s1); read p_ci, p_cf, p_co (s1, s2, s3; p_co delayed to s9)
        #   s2, s3   multiplier A: p_ci c_prev, p_cf c_prev;  s3, s4 sums u_i + pk, u_f + pk
        #   s3..s5   σ/tanh A: g = tanh(u_g), i, f (out s5, s6, s7)
        #   s6, s7, s9  multiplier B: i g, f c_prev, p_co c;  s8  c = sat(rshift(.., Y))
        #   s9       c written back, tc(c);  s10  u_o + pk
        #   s10, s11 σ/tanh B: tanh(tc(c)), o (out s12, s13)
        #   s13      multiplier C: o tanh(c);  s14  m out
        # Every shared unit is busy for one cell within 4 consecutive cycles at most, so
        # two cells whose i rows are 4 or more cycles apart never collide: rows back to
        # back and any gap between cells or passes (a change of channel) are all fine.
        last = self.LATENCY + 3
        valid = [Signal(name=f"valid_{s}") for s in range(last + 1)]
        cell = [Signal(self.wb.row.shape().width - 2, name="cell_0")]
        cell += [reg(cell[0].shape(), f"cell_{s}") for s in range(1, last + 1)]
        chan = [Signal(self.wb.channel.shape(), name="chan_0")]
        chan += [reg(chan[0].shape(), f"chan_{s}") for s in range(1, last + 1)]
        m.d.comb += [valid[0].eq(self.wb.valid & (self.wb.row[:2] == 0)),
                     cell[0].eq(self.wb.row[2:]), chan[0].eq(self.wb.channel)]
        for s in range(1, last + 1):
            m.d.sync += [valid[s].eq(valid[s - 1]), cell[s].eq(cell[s - 1]),
                         chan[s].eq(chan[s - 1])]

        # ---- u delay line: u_i, u_f in s3, s4 (3 back), u_g in s3 (1), u_o in s10 (7) ---
        u = [self.wb.value]
        for d in range(1, 8):
            u.append(reg(signed(ch.act_bits), f"u{d}"))
            m.d.sync += u[d].eq(u[d - 1])

        # ---- peephole memory (shared by the channels): p_ci, p_cf, p_co read in s1..s3 ---
        m.submodules.peephole = peephole = Memory(
            shape=signed(ch.codebook_bits), depth=3 * config.cell_depth, init=self._peephole_init)
        peep_read, peep_write = peephole.read_port(), peephole.write_port()
        peep_cell = Signal.like(cell[0])
        peep_gate = Signal(2)
        with m.If(valid[1]):
            m.d.comb += [peep_cell.eq(cell[1]), peep_gate.eq(0)]
        with m.Elif(valid[2]):
            m.d.comb += [peep_cell.eq(cell[2]), peep_gate.eq(1)]
        with m.Else():
            m.d.comb += [peep_cell.eq(cell[3]), peep_gate.eq(2)]
        peep_addr = Signal(range(3 * config.cell_depth + 3))
        m.d.comb += [
            peep_addr.eq((tile.cell_base + peep_cell) * 3 + peep_gate),
            peep_read.addr.eq(peep_addr),
            peep_read.en.eq(valid[1] | valid[2] | valid[3]),
            peep_write.addr.eq(self.host_peephole.addr),
            peep_write.data.eq(self.host_peephole.data),
            peep_write.en.eq(self.host_peephole.en),
        ]
        p = Signal(signed(ch.codebook_bits))         # p_ci in s2, p_cf in s3, p_co in s4
        m.d.comb += p.eq(Mux(tile.peephole, peep_read.data, 0))
        p_co = [p]
        for d in range(1, 6):                        # p_co in s9
            p_co.append(reg(p.shape(), f"p_co{d}"))
            m.d.sync += p_co[d].eq(p_co[d - 1])

        # ---- cell memory (all channels): c_prev read in s1, c written in s9 ------------
        depth = config.cell_depth

        def cell_addr(s):
            local = tile.cell_base + cell[s]
            return local if config.channels == 1 else chan[s] * depth + local

        m.submodules.cell = memory = Memory(shape=cell_shape, depth=config.channels * depth,
                                            init=[])
        cell_read, cell_write = memory.read_port(), memory.write_port()
        m.d.comb += [cell_read.addr.eq(cell_addr(1)), cell_read.en.eq(valid[1])]
        c_prev = cell_read.data                     # holds s2 .. s5 (read enable in s1)
        c_prev_hold = reg(cell_shape, "c_prev_hold")  # for f c_prev in s7
        with m.If(valid[3]):
            m.d.sync += c_prev_hold.eq(c_prev)
        c_new = reg(cell_shape, "c")                # valid in s9
        with m.If(self.clear.en):
            m.d.comb += [cell_write.addr.eq(self.clear.addr), cell_write.data.eq(0),
                         cell_write.en.eq(1)]
        with m.Else():
            m.d.comb += [cell_write.addr.eq(cell_addr(9)), cell_write.data.eq(c_new),
                         cell_write.en.eq(valid[9])]

        # ---- multiplier A and the i, f peephole sums -------------------------------------
        product_a = reg(signed(ch.codebook_bits + config.cell_bits), "product_a")
        m.d.sync += product_a.eq(p * c_prev)        # p_ci c_prev in s3, p_cf c_prev in s4
        peep_sum_a = reg(in_shape, "peep_sum_a")    # u_i in s4, u_f in s5
        m.d.sync += peep_sum_a.eq(
            _saturate(u[3] + _peephole_term(product_a, tile.peep_shift), in_bits))

        # ---- σ/tanh A: g (s3), i (s4), f (s5); out in s5, s6, s7 -------------------------
        tables = dict(sigmoid_init=self._tables[0], tanh_init=self._tables[1])
        m.submodules.lut_a = lut_a = SigmoidTanh(config=config, in_bits=in_bits, **tables)
        m.submodules.lut_b = lut_b = SigmoidTanh(config=config, in_bits=in_bits, **tables)
        for lut in (lut_a, lut_b):
            m.d.comb += [lut.host.en.eq(self.host_table.en),
                         lut.host.addr.eq(self.host_table.addr),
                         lut.host.data.eq(self.host_table.data)]
        m.d.comb += [
            lut_a.i.valid.eq(valid[3] | valid[4] | valid[5]),
            lut_a.i.payload.u.eq(Mux(valid[3], u[1], peep_sum_a)),
            lut_a.i.payload.func.eq(valid[3]),
        ]
        g = reg(gate_shape, "g")                    # g in s6
        m.d.sync += g.eq(lut_a.o.payload.y)

        # ---- multiplier B: i g (s6), f c_prev (s7), p_co c (s9); the cell update ---------
        product_b = reg(signed(max(config.gate_bits, ch.codebook_bits)
                               + max(config.cell_bits, config.gate_bits)), "product_b")
        m.d.sync += product_b.eq(Mux(valid[9], p_co[5], lut_a.o.payload.y)
                                 * Mux(valid[6], g, Mux(valid[7], c_prev_hold, c_new)))
        input_gate = reg(product_b.shape(), "input_gate")   # i g in s8
        m.d.sync += [
            input_gate.eq(product_b),
            c_new.eq(_saturate(_rshift(product_b + input_gate, y_frac), config.cell_bits)),
        ]
        peep_sum_b = reg(in_shape, "peep_sum_b")    # u_o in s11
        m.d.sync += peep_sum_b.eq(
            _saturate(u[7] + _peephole_term(product_b, tile.peep_shift), in_bits))

        # ---- σ/tanh B: tanh(tc(c)) (s10), o (s11); out in s12, s13 ---------------------
        table_c = reg(in_shape, "table_c")          # tc(c) in s10
        m.d.sync += table_c.eq(_saturate(_rshift(c_new, y_frac - f_act), in_bits))
        m.d.comb += [
            lut_b.i.valid.eq(valid[10] | valid[11]),
            lut_b.i.payload.u.eq(Mux(valid[10], table_c, peep_sum_b)),
            lut_b.i.payload.func.eq(valid[10]),
        ]

        # ---- multiplier C: o tanh(c) (s13); m out in s14 ---------------------------------
        tanh_c = reg(gate_shape, "tanh_c")          # tanh(c) in s13
        m.d.sync += tanh_c.eq(lut_b.o.payload.y)
        product_c = reg(signed(2 * config.gate_bits), "product_c")
        m.d.sync += product_c.eq(lut_b.o.payload.y * tanh_c)
        m.d.comb += [
            self.m.valid.eq(valid[last]),
            self.m.addr.eq(tile.m_base + cell[last]),
            self.m.channel.eq(chan[last]),
            self.m.value.eq(_saturate(_rshift(product_c, 2 * y_frac - f_act), ch.act_bits)),
        ]
        return m

"""σ/tanh unit of the ESE cell unit: table lookup with linear interpolation (docs/ese.md)."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from contract.config import clog2
from contract.lstm_config import ESEConfig

from .common import HostWrite, check_init, validating

__all__ = ["SigmoidTanh", "check_ese_config", "check_signed_init"]


def check_ese_config(config) -> ESEConfig:
    """Raise ``TypeError`` unless ``config`` is an :class:`ESEConfig`; return it."""
    if not isinstance(config, ESEConfig):
        raise TypeError(f"Config must be an ESEConfig, not {config!r}")
    return config


def check_signed_init(name: str, init, depth: int, bits: int) -> list[int]:
    """:func:`~rtl.common.check_init`, and every value must fit signed ``bits`` bits
    (``ValueError`` otherwise): a memory would silently truncate it."""
    values = check_init(name, init, depth)
    for value in values:
        if not -(1 << (bits - 1)) <= value < (1 << (bits - 1)):
            raise ValueError(f"Initial contents of {name} must fit signed {bits} bits, "
                             f"not {value}")
    return values


class SigmoidTanh(wiring.Component):
    """σ or tanh of one input per cycle: ``golden.lstm_model.table_lookup``, bit for bit.

    The input ``u`` (``act_frac`` fraction bits) is clamped to ``[-R 2**F, R 2**F - 1]``
    and offset to ``v`` in ``[0, 2R 2**F)``; ``s = v >> b`` selects a segment and
    ``r = v & (2**b - 1)`` interpolates: ``y = T[s] + rshift((T[s+1] - T[s]) * r, b)``
    (round half up), ``T`` the σ table for ``func = 0`` and the tanh table for ``func = 1``
    (``K + 1`` signed ``gate_bits`` samples each, as the image holds them).  ``saturated``
    flags inputs outside ``[-R, R)``.

    ``T[s]`` and ``T[s+1]`` are read in the same cycle from two banks: even samples
    ``T[2j]`` in one, odd samples ``T[2j+1]`` in the other (``K/2`` words per table each,
    address ``func * K/2 + j``), and ``T[K]`` of each table in a register, so both banks
    are ``K`` words deep.

    Timing contract: a transfer on ``i`` in cycle ``t`` appears on ``o`` in cycle
    ``t + LATENCY`` (``o.valid`` high for that one cycle); one lookup per cycle, fully
    pipelined, no back-pressure.  A host write in cycle ``t`` takes effect at the end of
    ``t``: a lookup presented in ``t`` still sees the old sample.

    ::

        clk     _/‾\\_/‾\\_/‾\\_/‾\\_
        i.valid _/‾‾‾\\___________
        o.valid _________/‾‾‾\\___     (LATENCY = 2)

    Parameters
    ----------
    config : ESEConfig
    in_bits : int, optional
        Signed width of the input (default ``act_bits + 1``, a gate pre-activation plus
        its peephole term saturated to this width, which the clamp makes exact).
    sigmoid_init, tanh_init : sequence of int, optional
        The σ and tanh samples (``K + 1`` each, signed ``gate_bits``; missing ones are 0).

    Members
    -------
    i : In(stream.Signature(StructLayout({"u": signed(in_bits), "func": 1}),
        always_ready=True))
        ``func``: 0 = σ, 1 = tanh.
    o : Out(stream.Signature(StructLayout({"y": signed(gate_bits), "saturated": 1}),
        always_ready=True))
    host : In(HostWrite.Signature(clog2(2 * (K + 1)), gate_bits))
        Host write of sample ``s`` of table ``func`` at address ``func * (K + 1) + s``;
        addresses from ``2 * (K + 1)`` on are ignored.

    Raises
    ------
    TypeError
        ``config`` is not an ``ESEConfig``, ``in_bits`` is not a positive integer, or an
        initial value is not an integer.
    ValueError
        More than ``K + 1`` initial values, or one that does not fit signed ``gate_bits``.
    """

    #: Cycles from a transfer on ``i`` to its result on ``o``.
    LATENCY = 2

    def __init__(self, *, config, in_bits=None, sigmoid_init=None, tanh_init=None):
        with validating(self):
            self._config = check_ese_config(config)
            if in_bits is None:
                in_bits = config.channel.act_bits + 1
            if not isinstance(in_bits, int) or isinstance(in_bits, bool) or in_bits < 1:
                raise TypeError(f"Input width must be a positive integer, not {in_bits!r}")
            self._in_bits = in_bits
            size, bits = config.table_size, config.gate_bits
            self._init = (check_signed_init("the σ table", sigmoid_init, size, bits),
                          check_signed_init("the tanh table", tanh_init, size, bits))
            super().__init__({
                "i": In(stream.Signature(data.StructLayout({
                    "u": signed(in_bits), "func": 1}), always_ready=True)),
                "o": Out(stream.Signature(data.StructLayout({
                    "y": signed(bits), "saturated": 1}), always_ready=True)),
                "host": In(HostWrite.Signature(clog2(2 * size), bits)),
            })

    @property
    def config(self):
        return self._config

    @property
    def in_bits(self):
        return self._in_bits

    def elaborate(self, platform):
        config = self._config
        m = Module()
        b, k = config.interpolation_bits, config.table_segments_log2
        half_k = 1 << (k - 1)
        gate = signed(config.gate_bits)
        tables = [list(t) + [0] * (config.table_size - len(t)) for t in self._init]
        m.submodules.even = even = Memory(
            shape=gate, depth=2 * half_k, init=[t[2 * j] for t in tables for j in range(half_k)])
        m.submodules.odd = odd = Memory(
            shape=gate, depth=2 * half_k,
            init=[t[2 * j + 1] for t in tables for j in range(half_k)])
        # Reset-less like the banks: a reset must not undo a host write.
        last = [Signal(gate, init=t[-1], reset_less=True, name=f"last{f}")
                for f, t in enumerate(tables)]
        even_read, odd_read = even.read_port(), odd.read_port()
        even_write, odd_write = even.write_port(), odd.write_port()

        # ---- cycle t: clamp, split into segment and offset, address both banks --------
        half = 1 << (config.table_range_log2 + config.channel.act_frac)
        u, func = self.i.payload.u, self.i.payload.func
        offset = Signal(unsigned(k + b))            # v = clamp(u) + R 2**F
        saturated = Signal()
        m.d.comb += saturated.eq((u < -half) | (u >= half))
        with m.If(u < -half):
            m.d.comb += offset.eq(0)
        with m.Elif(u >= half):
            m.d.comb += offset.eq(2 * half - 1)
        with m.Else():
            m.d.comb += offset.eq(u + half)
        segment, fraction = offset[b:], offset[:b]
        j, odd_segment = segment[1:], segment[0]
        # T[s] and T[s+1]: even[j], odd[j] for even s; odd[j], even[j+1] for odd s, where
        # even[K/2] (past the bank) is the register T[K].
        m.d.comb += [
            odd_read.addr.eq(Cat(j, func)),
            even_read.addr.eq(Cat((j + odd_segment)[:k - 1], func)),
        ]
        valid_1, saturated_1, odd_1, top_1, func_1 = (Signal() for _ in range(5))
        fraction_1 = Signal(b, reset_less=True)
        m.d.sync += [
            valid_1.eq(self.i.valid), saturated_1.eq(saturated), odd_1.eq(odd_segment),
            top_1.eq(segment == (1 << k) - 1), func_1.eq(func), fraction_1.eq(fraction),
        ]

        # ---- cycle t+1: interpolate exactly, (lo 2**b + 2**(b-1) + (hi - lo) r) ---------
        low, high = Signal(gate), Signal(gate)
        m.d.comb += [
            low.eq(Mux(odd_1, odd_read.data, even_read.data)),
            high.eq(Mux(odd_1, Mux(top_1, Mux(func_1, last[1], last[0]), even_read.data),
                        odd_read.data)),
        ]
        total_2 = Signal(signed(config.gate_bits + b + 1), reset_less=True)
        valid_2, saturated_2 = Signal(), Signal()
        m.d.sync += [
            total_2.eq((low << b) + (1 << (b - 1)) + (high - low) * fraction_1),
            valid_2.eq(valid_1), saturated_2.eq(saturated_1),
        ]

        # ---- cycle t+2: the result lies between lo and hi, so it fits gate_bits ----------
        m.d.comb += [
            self.o.valid.eq(valid_2),
            self.o.payload.y.eq(total_2 >> b),
            self.o.payload.saturated.eq(saturated_2),
        ]

        # ---- host writes: address func * (K + 1) + s ------------------------------------
        size = config.table_size
        host = self.host
        host_func = Signal()
        host_sample = Signal(range(size))
        m.d.comb += [
            host_func.eq(host.addr >= size),
            host_sample.eq(Mux(host_func, host.addr - size, host.addr)),
        ]
        in_range = host.en & (host.addr < 2 * size)
        for port, parity in ((even_write, 0), (odd_write, 1)):
            m.d.comb += [
                port.addr.eq(Cat(host_sample[1:k], host_func)),
                port.data.eq(host.data),
                port.en.eq(in_range & (host_sample != size - 1) & (host_sample[0] == parity)),
            ]
        for f in (0, 1):
            with m.If(in_range & (host_sample == size - 1) & (host_func == f)):
                m.d.sync += last[f].eq(host.data)
        return m

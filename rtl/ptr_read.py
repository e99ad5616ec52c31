"""Column-pointer reader of one PE: even/odd pointer banks read in one cycle."""

from __future__ import annotations

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from contract.config import clog2

from .common import HostWrite, check_config, check_init, validating

__all__ = ["PtrRead", "WidePtrRead"]


class PtrRead(wiring.Component):
    """Reads the column pointers ``P_j`` and ``P_{j+1}`` of a column in one cycle.

    Pointers are interleaved over two banks (docs/image-format.md): ``P_j`` sits in the
    even bank at ``base + j/2`` for even ``j`` and in the odd bank at ``base + (j-1)/2``
    for odd ``j``, so ``P_j`` and ``P_{j+1}`` always come from different banks.

    Timing contract: ``en`` in cycle ``t`` with ``base``/``index`` samples them; ``start``
    (``P_j``) and ``end`` (``P_{j+1}``) are valid in cycle ``t + 1`` and hold until the
    next ``en``.  Host writes take effect at the end of the cycle they are issued in.
    In the PE, ``en``/``index`` are the broadcast transfer on ``act_in`` itself, so the
    column length ``end - start`` is known in the cycle after the broadcast and decides
    whether the column is queued at all (empty columns are not).

    Parameters
    ----------
    config : EIEConfig
    init_even, init_odd : sequence of int, optional
        Initial contents of the banks (``ptr_depth`` rows each, missing rows are 0).

    Members
    -------
    en : In(1)
        Read the pointers of column ``index``.
    base : In(clog2(ptr_depth))
        ``ptr_base`` of the tile.
    index : In(clog2(n_pes * act_depth))
        Column ``j`` (global index within the tile).
    start, end : Out(pointer_bits)
        ``P_j`` and ``P_{j+1}``, one cycle after ``en``.
    host : In(HostWrite.Signature(clog2(ptr_depth), pointer_bits))
        Host write of bank ``host_bank``.
    host_bank : In(1)
        0: even bank, 1: odd bank.

    Raises
    ------
    TypeError
        ``config`` is not an ``EIEConfig``, or an initial value is not an integer.
    ValueError
        More initial values than ``ptr_depth``.
    """

    def __init__(self, *, config, init_even=None, init_odd=None):
        with validating(self):
            self._config = check_config(config)
            self._init_even = check_init("the even pointer bank", init_even, config.ptr_depth)
            self._init_odd = check_init("the odd pointer bank", init_odd, config.ptr_depth)
            addr = clog2(config.ptr_depth)
            super().__init__({
                "en": In(1),
                "base": In(addr),
                "index": In(clog2(config.n_pes * config.act_depth)),
                "start": Out(config.pointer_bits),
                "end": Out(config.pointer_bits),
                "host": In(HostWrite.Signature(addr, config.pointer_bits)),
                "host_bank": In(1),
            })

    @property
    def config(self):
        return self._config

    def elaborate(self, platform):
        config = self._config
        m = Module()
        shape = unsigned(config.pointer_bits)
        m.submodules.even = even = Memory(shape=shape, depth=config.ptr_depth,
                                          init=self._init_even)
        m.submodules.odd = odd = Memory(shape=shape, depth=config.ptr_depth,
                                        init=self._init_odd)
        even_read, odd_read = even.read_port(), odd.read_port()
        even_write, odd_write = even.write_port(), odd.write_port()

        # For odd j, P_j is odd[base + (j-1)/2] and P_{j+1} is even[base + (j+1)/2].
        half = self.index >> 1
        odd_index = self.index[0]
        m.d.comb += [
            odd_read.addr.eq(self.base + half),
            even_read.addr.eq(self.base + half + odd_index),
            odd_read.en.eq(self.en),
            even_read.en.eq(self.en),
        ]
        odd_index_q = Signal()
        with m.If(self.en):
            m.d.sync += odd_index_q.eq(odd_index)
        with m.If(odd_index_q):
            m.d.comb += [self.start.eq(odd_read.data), self.end.eq(even_read.data)]
        with m.Else():
            m.d.comb += [self.start.eq(even_read.data), self.end.eq(odd_read.data)]

        for port, bank in ((even_write, 0), (odd_write, 1)):
            m.d.comb += [
                port.addr.eq(self.host.addr),
                port.data.eq(self.host.data),
                port.en.eq(self.host.en & (self.host_bank == bank)),
            ]
        return m


class WidePtrRead(wiring.Component):
    """:class:`PtrRead` for ``lanes`` columns per cycle (broadcast width ``B``).

    Lane ``i`` reads ``P_j`` and ``P_{j+1}`` of its column exactly as :class:`PtrRead`
    does (one read from each bank, ``start``/``end`` one cycle after ``en[i]``), so each
    bank has ``lanes`` read ports and one write port. Read port 0 shares its address with
    the host write port (the host writes only while no run is in progress), so a bank is
    one true dual-port block RAM for ``lanes <= 2``; synthesis replicates it for more.

    Parameters
    ----------
    config : EIEConfig
    lanes : int
        Columns per cycle, at least 1.
    init_even, init_odd : sequence of int, optional
        As for :class:`PtrRead`.

    Members
    -------
    en : In(lanes)
    base : In(clog2(ptr_depth))
    index : In(ArrayLayout(clog2(n_pes * act_depth), lanes))
    start, end : Out(ArrayLayout(pointer_bits, lanes))
    host, host_bank
        As for :class:`PtrRead`.

    Raises
    ------
    TypeError
        ``config`` is not an ``EIEConfig``, ``lanes`` not a positive integer, or an
        initial value is not an integer.
    ValueError
        More initial values than ``ptr_depth``.
    """

    def __init__(self, *, config, lanes, init_even=None, init_odd=None):
        with validating(self):
            self._config = check_config(config)
            if not isinstance(lanes, int) or isinstance(lanes, bool) or lanes < 1:
                raise TypeError(f"Pointer read lanes must be a positive integer, not {lanes!r}")
            self._lanes = lanes
            self._init_even = check_init("the even pointer bank", init_even, config.ptr_depth)
            self._init_odd = check_init("the odd pointer bank", init_odd, config.ptr_depth)
            addr = clog2(config.ptr_depth)
            index = clog2(config.n_pes * config.act_depth)
            super().__init__({
                "en": In(lanes),
                "base": In(addr),
                "index": In(data.ArrayLayout(index, lanes)),
                "start": Out(data.ArrayLayout(config.pointer_bits, lanes)),
                "end": Out(data.ArrayLayout(config.pointer_bits, lanes)),
                "host": In(HostWrite.Signature(addr, config.pointer_bits)),
                "host_bank": In(1),
            })

    @property
    def config(self):
        return self._config

    @property
    def lanes(self) -> int:
        return self._lanes

    def elaborate(self, platform):
        config = self._config
        m = Module()
        shape = unsigned(config.pointer_bits)
        m.submodules.even = even = Memory(shape=shape, depth=config.ptr_depth,
                                          init=self._init_even)
        m.submodules.odd = odd = Memory(shape=shape, depth=config.ptr_depth,
                                        init=self._init_odd)
        writes = {0: even.write_port(), 1: odd.write_port()}
        for lane in range(self._lanes):
            even_read, odd_read = even.read_port(), odd.read_port()
            index = self.index[lane]
            half = index >> 1
            odd_index = index[0]
            even_addr = Signal.like(even_read.addr, name=f"even_addr{lane}")
            odd_addr = Signal.like(odd_read.addr, name=f"odd_addr{lane}")
            m.d.comb += [even_addr.eq(self.base + half + odd_index),
                         odd_addr.eq(self.base + half)]
            if lane == 0:
                # Read port 0 and the write port share one address signal, which makes
                # them one read-write port: with a second read port, a true dual-port
                # block RAM per bank.
                with m.If(self.host.en):
                    m.d.comb += [even_addr.eq(self.host.addr), odd_addr.eq(self.host.addr)]
                for bank, addr in ((0, even_addr), (1, odd_addr)):
                    m.d.comb += [writes[bank].addr.eq(addr),
                                 writes[bank].data.eq(self.host.data),
                                 writes[bank].en.eq(self.host.en & (self.host_bank == bank))]
            m.d.comb += [
                odd_read.addr.eq(odd_addr),
                even_read.addr.eq(even_addr),
                odd_read.en.eq(self.en[lane]),
                even_read.en.eq(self.en[lane]),
            ]
            odd_index_q = Signal(name=f"odd_index_q{lane}")
            with m.If(self.en[lane]):
                m.d.sync += odd_index_q.eq(odd_index)
            with m.If(odd_index_q):
                m.d.comb += [self.start[lane].eq(odd_read.data),
                             self.end[lane].eq(even_read.data)]
            with m.Else():
                m.d.comb += [self.start[lane].eq(even_read.data),
                             self.end[lane].eq(odd_read.data)]
        return m

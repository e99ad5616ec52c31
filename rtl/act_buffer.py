"""Activation buffers of one PE: two banks (source and destination, swapped per layer)."""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from contract.config import clog2

from .common import HostWrite, check_config, check_init, validating

__all__ = ["ActBuffer"]


class ActBuffer(wiring.Component):
    """Two activation banks of ``act_depth x act_bits`` (signed) each.

    Timing contract: ``scan_data`` is bank ``scan_bank`` at ``scan_addr`` of the previous
    cycle (synchronous read, 1-cycle latency, every cycle).  A write in cycle ``t`` takes
    effect at the end of ``t`` (a read issued in ``t`` returns the old value).  Host and
    write-back writes must not hit the same cycle; if they do, the host write wins.

    Parameters
    ----------
    config : EIEConfig
    init0, init1 : sequence of int, optional
        Initial (signed) contents of bank 0 and bank 1.

    Members
    -------
    scan_bank : In(1)
    scan_addr : In(range(act_depth))
    scan_data : Out(signed(act_bits))
    wb_en : In(1)
        Write-back write strobe.
    wb_bank : In(1)
    wb_addr : In(range(act_depth))
    wb_data : In(signed(act_bits))
    host : In(HostWrite.Signature(clog2(act_depth), act_bits))
        Host write of bank ``host_bank`` (two's complement data).
    host_bank : In(1)

    Raises
    ------
    TypeError
        ``config`` is not an ``EIEConfig``, or an initial value is not an integer.
    ValueError
        More initial values than ``act_depth``.
    """

    def __init__(self, *, config, init0=None, init1=None):
        with validating(self):
            self._config = check_config(config)
            self._init = (check_init("activation bank 0", init0, config.act_depth),
                          check_init("activation bank 1", init1, config.act_depth))
            act = signed(config.act_bits)
            addr = clog2(config.act_depth)
            super().__init__({
                "scan_bank": In(1), "scan_addr": In(addr), "scan_data": Out(act),
                "wb_en": In(1), "wb_bank": In(1), "wb_addr": In(addr), "wb_data": In(act),
                "host": In(HostWrite.Signature(addr, config.act_bits)), "host_bank": In(1),
            })

    @property
    def config(self):
        return self._config

    def elaborate(self, platform):
        config = self._config
        m = Module()
        bank_q = Signal()
        m.d.sync += bank_q.eq(self.scan_bank)
        for bank in (0, 1):
            memory = Memory(shape=signed(config.act_bits), depth=config.act_depth,
                            init=self._init[bank])
            m.submodules[f"bank{bank}"] = memory
            read, write = memory.read_port(), memory.write_port()
            m.d.comb += read.addr.eq(self.scan_addr)
            with m.If(bank_q == bank):
                m.d.comb += self.scan_data.eq(read.data)
            with m.If(self.host.en):
                m.d.comb += [
                    write.addr.eq(self.host.addr),
                    write.data.eq(self.host.data),
                    write.en.eq(self.host_bank == bank),
                ]
            with m.Else():
                m.d.comb += [
                    write.addr.eq(self.wb_addr),
                    write.data.eq(self.wb_data),
                    write.en.eq(self.wb_en & (self.wb_bank == bank)),
                ]
        return m

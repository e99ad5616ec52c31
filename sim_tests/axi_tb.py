"""cocotb driver of the AXI4-Lite system test (rtl/axi_host.py): ``AxiTB`` and
``image_writes``.

``AxiTB`` owns the clock, the reset and a cocotbext-axi ``AxiLiteMaster`` (its five
channels randomly throttled) on the register map of docs/register-map.md, plus the
AXI4-Stream source and sink when the design has them. Every read it makes is checked
against :class:`sim_tests.axi_model.LiteModel` (fed in bus order by
:class:`~sim_tests.axi_model.BusMonitor`); :meth:`AxiTB.expect` records further checks.
``image_writes`` lists the host writes that load an image; it is the reference driver of
docs/register-map.md. The scenarios that use it are in sim_tests/axi_scenarios.py.
"""

from __future__ import annotations

import random
import warnings

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge, SimTimeoutError, with_timeout
from cocotbext.axi import (
    AxiLiteBus,
    AxiLiteMaster,
    AxiStreamBus,
    AxiStreamFrame,
    AxiStreamSink,
    AxiStreamSource,
)

from contract.host_map import REGS_WINDOW, AxiReg, MemSel, Reg, Region, host_address
from sim_tests.axi_model import BusMonitor, LiteModel, register_name

__all__ = ["AxiTB", "image_writes", "CLOCK_NS"]

# cocotbext-axi 0.1.28 still calls APIs deprecated in cocotb 2 (setimmediatevalue); keep
# PYTHONWARNINGS=error runs about our code, not theirs.
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"cocotbext\.")

CLOCK_NS = 5  # 200 MHz
_MASK32 = (1 << 32) - 1
_MASK64 = (1 << 64) - 1


def _pause(rng: random.Random, probability: float):
    """Endless pause pattern: True (stall) with ``probability`` each cycle."""
    while True:
        yield rng.random() < probability


def image_writes(image, previous=None) -> list[tuple[int, int]]:
    """Array host writes ``(word address, value)`` that load ``image``.

    Only words that differ from ``previous`` (the image loaded before, or all-zero memories
    after reset) are written, so a reload also clears the old image's leftovers.
    """
    cfg = image.config
    writes = []

    def diff(new, old):
        new = np.asarray(new)
        old = np.zeros_like(new) if old is None else np.asarray(old)
        return [int(a) for a in np.flatnonzero(new != old)]

    for p in range(cfg.n_pes):
        for name, sel in (("spmat", MemSel.SPMAT), ("ptr_even", MemSel.PTR_EVEN),
                          ("ptr_odd", MemSel.PTR_ODD), ("bias", MemSel.BIAS)):
            new = getattr(image, name)[p]
            old = None if previous is None else getattr(previous, name)[p]
            for a in diff(new, old):
                writes.append((host_address(Region.PE, a, pe=p, sel=sel), int(new[a])))
    old = None if previous is None else previous.codebook
    for a in diff(image.codebook, old):
        writes.append((host_address(Region.CODEBOOK, a), int(image.codebook[a])))
    new_prog = [d.encode(cfg) for d in image.program]
    old_prog = [] if previous is None else [d.encode(cfg) for d in previous.program]
    high = None  # WDATA_HIGH is 0 after reset; descriptors wider than 64 bits need it
    for t, word in enumerate(new_prog):
        if t >= len(old_prog) or old_prog[t] != word:
            if cfg.descriptor_bits > 64 and word >> 64 != high:
                high = word >> 64
                writes.append((host_address(Region.REGS, Reg.WDATA_HIGH), high))
            writes.append((host_address(Region.PROGRAM, t), word & _MASK64))
    return writes


class AxiTB:
    """Clock, reset, an AXI4-Lite master (cocotbext-axi) on ``s_axil__*``, the stream
    source/sink when the design has them, and the bus monitor with its model.

    Parameters
    ----------
    dut : cocotb handle of the AxiHost Verilog top.
    config : EIEConfig of the design.
    seed : seed of the backpressure pattern.
    stall : probability that the master stalls each channel (valid on AW/W/AR, ready on
        B/R) in a given cycle; 0 disables throttling.
    """

    def __init__(self, dut, config, *, seed: int = 0, stall: float = 0.3):
        self.dut = dut
        self.config = config
        self.stall = stall
        self.rng = random.Random(seed)
        bus = AxiLiteBus.from_prefix(dut, "s_axil", bus_separator="__")
        self.axil = AxiLiteMaster(bus, dut.clk, dut.rst)
        w, r = self.axil.write_if, self.axil.read_if
        self._lite_channels = (w.aw_channel, w.w_channel, w.b_channel, r.ar_channel,
                               r.r_channel)
        self.throttle(True)
        self.host_addr = None  # mirror of HOST_ADDR (auto-increment), None = unknown
        self.wdata_hi = 0
        self.source = self.sink = None
        streams = hasattr(dut, "s_axis__tvalid")
        if streams:
            self.source = AxiStreamSource(
                AxiStreamBus.from_prefix(dut, "s_axis", bus_separator="__"), dut.clk, dut.rst)
            self.sink = AxiStreamSink(
                AxiStreamBus.from_prefix(dut, "m_axis", bus_separator="__"), dut.clk, dut.rst)
            if stall:
                self.source.set_pause_generator(_pause(random.Random(self.rng.random()), stall))
                self.sink.set_pause_generator(_pause(random.Random(self.rng.random()), stall))
        self.model = LiteModel(config, streams=streams)
        self.monitor = BusMonitor(dut, self.model)
        self._reads: list[list] = []  # [offset, value or None while in flight], call order
        self._verified = 0
        self.failures: list[str] = []
        self.checked = 0

    def throttle(self, on: bool):
        """Random stalls on the five AXI-Lite channels (``stall``), or none."""
        for channel in self._lite_channels:
            if on and self.stall:
                channel.set_pause_generator(_pause(random.Random(self.rng.random()),
                                                   self.stall))
            else:
                channel.set_pause_generator(None)
                channel.pause = False

    def expect(self, label: str, want, got):
        """Record one check (the test asserts that none failed)."""
        self.checked += 1
        if want != got:
            def show(value):
                return f"{value:#x}" if isinstance(value, int) and value > 9 else repr(value)

            self.failures.append(f"{label}: expected {show(want)}, got {show(got)}")

    def verify_reads(self):
        """Compare every completed read with the model's value at its acceptance."""
        while self._verified < len(self._reads) and self._reads[self._verified][1] is not None:
            k = self._verified
            offset, got = self._reads[k]
            if k >= len(self.monitor.reads):
                self.failures.append(f"read {k} of {register_name(offset)} returned but was "
                                     f"never accepted")
                break
            cycle, addr, want = self.monitor.reads[k]
            if addr != offset:
                self.failures.append(f"read {k}: the bus carried {addr:#x}, asked {offset:#x}")
            elif want is not None:
                self.expect(f"read {k} of {register_name(offset)} (accepted in cycle {cycle})",
                            want, got)
            self._verified += 1
        self.failures += self.monitor.errors
        self.monitor.errors.clear()

    async def start(self):
        Clock(self.dut.clk, CLOCK_NS, unit="ns").start()
        cocotb.start_soon(self.monitor.run())
        await self.reset()

    async def reset(self, cycles: int = 4):
        """Pulse ``rst`` (no AXI-Lite transaction may be in flight)."""
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, cycles)
        await FallingEdge(self.dut.clk)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)
        self.host_addr, self.wdata_hi = None, 0
        self.model.reset()

    async def read_reg(self, offset: int) -> int:
        entry = [int(offset), None]
        self._reads.append(entry)
        entry[1] = await self.axil.read_dword(offset)
        return entry[1]

    async def write_reg(self, offset: int, value: int):
        await self.axil.write_dword(offset, int(value) & _MASK32)

    async def host_write(self, addr: int, value: int):
        """Write one 64-bit array word through HOST_ADDR / WDATA_HI / DATA_LO."""
        value = int(value) & _MASK64
        if self.host_addr != addr:
            await self.write_reg(AxiReg.HOST_ADDR, addr)
        hi = value >> 32
        if hi != self.wdata_hi:
            await self.write_reg(AxiReg.WDATA_HI, hi)
            self.wdata_hi = hi
        await self.write_reg(AxiReg.DATA_LO, value & _MASK32)
        self.host_addr = addr + 1

    async def host_read(self, addr: int) -> int:
        """Read one array word (64 bits: DATA_LO then RDATA_HI)."""
        if self.host_addr != addr:
            await self.write_reg(AxiReg.HOST_ADDR, addr)
        lo = await self.read_reg(AxiReg.DATA_LO)
        hi = await self.read_reg(AxiReg.RDATA_HI)
        self.host_addr = addr + 1
        return (hi << 32) | lo

    async def load(self, writes):
        for addr, value in writes:
            await self.host_write(addr, value)

    async def write_input(self, q, in_local: int):
        n = self.config.n_pes
        # Address order PE-major so that HOST_ADDR auto-increments within a PE.
        for p in range(n):
            for row in range(in_local):
                j = row * n + p
                value = int(q[j]) if j < len(q) else 0
                await self.host_write(host_address(Region.PE, row, pe=p, sel=MemSel.ACT0),
                                      value)

    async def start_run(self) -> int:
        """Write the start bit; return CTRL_STATUS read 3 cycles later (1: running)."""
        await self.write_reg(AxiReg.CTRL_STATUS, 1)
        # The start strobe reaches the sequencer two cycles after the write is accepted.
        await ClockCycles(self.dut.clk, 3)
        return await self.read_reg(AxiReg.CTRL_STATUS)

    async def wait_done(self, timeout_cycles: int, outputs=None, bank: int = 0):
        if self.dut.busy.value:
            await self.wait_for(RisingEdge(self.dut.done), timeout_cycles, "done to rise")
        self.model.finish(outputs, bank)
        status = await self.read_reg(AxiReg.CTRL_STATUS)
        assert status == 2, f"STATUS after done is {status:#x}, expected 0x2 (done, not busy)"

    async def wait_for(self, trigger, timeout_cycles: int, what: str):
        try:
            return await with_timeout(trigger, timeout_cycles * CLOCK_NS, "ns")
        except SimTimeoutError:
            raise AssertionError(f"waited {timeout_cycles} cycles for {what}") from None

    async def run(self, timeout_cycles: int, outputs=None, bank: int = 0):
        await self.start_run()
        await self.wait_done(timeout_cycles, outputs, bank)

    async def read_output(self, n_out: int, bank: int) -> list[int]:
        n = self.config.n_pes
        sel = MemSel.ACT1 if bank else MemSel.ACT0
        out = [0] * n_out
        for p in range(n):
            for row in range((n_out - p + n - 1) // n):
                word = await self.host_read(host_address(Region.PE, row, pe=p, sel=sel))
                out[row * n + p] = word - (1 << 64) if word >> 63 else word
        return out

    async def send_input(self, q, in_local: int):
        """Queue the input vector on s_axis (zero-padded to ``in_local * n_pes`` beats,
        ``tlast`` on the last)."""
        n = self.config.n_pes
        values = [int(q[j]) if j < len(q) else 0 for j in range(in_local * n)]
        await self.source.send(AxiStreamFrame(
            b"".join((v & _MASK32).to_bytes(4, "little") for v in values)))

    async def receive_output(self, n_out: int, timeout_cycles: int) -> list[int]:
        frame = await self.wait_for(self.sink.recv(), timeout_cycles, "m_axis outputs")
        raw = bytes(frame.tdata)
        assert len(raw) == 4 * n_out, f"m_axis sent {len(raw) // 4} words, expected {n_out}"
        return [int.from_bytes(raw[4 * i:4 * i + 4], "little", signed=True)
                for i in range(n_out)]

    async def stream_setup(self, n_out: int, bank: int):
        await self.write_reg(AxiReg.OUT_COUNT, n_out)
        await self.write_reg(AxiReg.OUT_BANK, bank)
        await self.write_reg(AxiReg.STREAM_CTRL, 3)  # accept input, start after tlast
        self.model.start()  # the beats rewrite buffer 0, the run the rest

    async def stream_teardown(self):
        await self.write_reg(AxiReg.STREAM_CTRL, 0)
        await self.write_reg(AxiReg.OUT_COUNT, 0)

    async def stream_run(self, q, in_local: int, n_out: int, bank: int,
                         timeout_cycles: int, outputs=None) -> list[int]:
        """One inference over the AXI4-Stream ports: the input vector (tlast starts the
        run), the outputs back on m_axis."""
        await self.stream_setup(n_out, bank)
        await self.send_input(q, in_local)
        out = await self.receive_output(n_out, timeout_cycles)
        self.model.finish(outputs, bank)
        await self.stream_teardown()
        return out

    async def read_counters(self, layers: int) -> tuple[int, list[int]]:
        total = await self.read_reg(REGS_WINDOW + 4 * Reg.TOTAL_CYCLES)
        per = [await self.read_reg(REGS_WINDOW + 4 * (Reg.LAYER_CYCLES + k))
               for k in range(layers)]
        return total, per

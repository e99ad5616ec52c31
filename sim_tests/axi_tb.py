"""cocotb side of the AXI4-Lite system test (rtl/axi_host.py): ``AxiTB`` and the job.

``sim_tests/test_axi.py`` saves a job (config, images, inputs, seed, backpressure) and
points ``EIE_AXI_JOB`` at it. :func:`run_axi_job` loads each image through the AXI4-Lite
register map (docs/register-map.md) with a cocotbext-axi ``AxiLiteMaster`` whose five
channels are randomly throttled, runs every input, reads back outputs and cycle counters,
and saves the results next to the job. The images run one after the other in one
simulation: the second image is a run-time reload over the first.
"""

from __future__ import annotations

import os
import random
import warnings

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge, with_timeout
from cocotbext.axi import (
    AxiLiteBus,
    AxiLiteMaster,
    AxiStreamBus,
    AxiStreamFrame,
    AxiStreamSink,
    AxiStreamSource,
)

from rtl.axi_host import AXI_ID, REGS_WINDOW, AxiReg
from rtl.common import MemSel
from rtl.eie import Reg, Region, host_address
from sim_tests import jobs

__all__ = ["AxiTB", "run_axi_job", "JOB_ENV", "image_writes"]

# cocotbext-axi 0.1.28 still calls APIs deprecated in cocotb 2 (setimmediatevalue); keep
# PYTHONWARNINGS=error runs about our code, not theirs.
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"cocotbext\.")

JOB_ENV = "EIE_AXI_JOB"
CLOCK_NS = 5  # 200 MHz
_MASK32 = (1 << 32) - 1


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
            writes.append((host_address(Region.PROGRAM, t), word & ((1 << 64) - 1)))
    return writes


class AxiTB:
    """Clock, reset and an AXI4-Lite master (cocotbext-axi) on the ``s_axil__*`` port.

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
        bus = AxiLiteBus.from_prefix(dut, "s_axil", bus_separator="__")
        self.axil = AxiLiteMaster(bus, dut.clk, dut.rst)
        rng = random.Random(seed)
        if stall:
            w, r = self.axil.write_if, self.axil.read_if
            for channel in (w.aw_channel, w.w_channel, w.b_channel, r.ar_channel,
                            r.r_channel):
                channel.set_pause_generator(_pause(random.Random(rng.random()), stall))
        self.host_addr = None  # mirror of HOST_ADDR (auto-increment), None = unknown
        self.wdata_hi = 0
        self.source = self.sink = None
        if hasattr(dut, "s_axis__tvalid"):
            self.source = AxiStreamSource(
                AxiStreamBus.from_prefix(dut, "s_axis", bus_separator="__"), dut.clk, dut.rst)
            self.sink = AxiStreamSink(
                AxiStreamBus.from_prefix(dut, "m_axis", bus_separator="__"), dut.clk, dut.rst)
            if stall:
                self.source.set_pause_generator(_pause(random.Random(rng.random()), stall))
                self.sink.set_pause_generator(_pause(random.Random(rng.random()), stall))

    async def start(self):
        Clock(self.dut.clk, CLOCK_NS, unit="ns").start()
        await self.reset()

    async def reset(self, cycles: int = 4):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, cycles)
        await FallingEdge(self.dut.clk)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)
        self.host_addr, self.wdata_hi = None, 0

    async def read_reg(self, offset: int) -> int:
        return await self.axil.read_dword(offset)

    async def write_reg(self, offset: int, value: int):
        await self.axil.write_dword(offset, int(value) & _MASK32)

    async def host_write(self, addr: int, value: int):
        """Write one 64-bit array word through HOST_ADDR / WDATA_HI / DATA_LO."""
        value = int(value) & ((1 << 64) - 1)
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

    async def run(self, timeout_cycles: int):
        await self.write_reg(AxiReg.CTRL_STATUS, 1)
        # The start strobe reaches the sequencer two cycles after the write is accepted.
        await ClockCycles(self.dut.clk, 3)
        if self.dut.busy.value:
            await with_timeout(RisingEdge(self.dut.done), timeout_cycles * CLOCK_NS, "ns")
        status = await self.read_reg(AxiReg.CTRL_STATUS)
        assert status == 2, f"STATUS after done is {status:#x}, expected 0x2 (done, not busy)"

    async def read_output(self, n_out: int, bank: int) -> list[int]:
        n = self.config.n_pes
        sel = MemSel.ACT1 if bank else MemSel.ACT0
        out = [0] * n_out
        for p in range(n):
            for row in range((n_out - p + n - 1) // n):
                word = await self.host_read(host_address(Region.PE, row, pe=p, sel=sel))
                out[row * n + p] = word - (1 << 64) if word >> 63 else word
        return out

    async def stream_run(self, q, in_local: int, n_out: int, bank: int,
                         timeout_cycles: int) -> list[int]:
        """One inference over the AXI4-Stream ports: the input vector (zero-padded to
        ``in_local * n_pes`` beats, tlast starts the run), the outputs back on m_axis."""
        n = self.config.n_pes
        await self.write_reg(AxiReg.OUT_COUNT, n_out)
        await self.write_reg(AxiReg.OUT_BANK, bank)
        await self.write_reg(AxiReg.STREAM_CTRL, 3)  # accept input, start after tlast
        values = [int(q[j]) if j < len(q) else 0 for j in range(in_local * n)]
        data = b"".join((v & _MASK32).to_bytes(4, "little") for v in values)
        await self.source.send(AxiStreamFrame(data))
        frame = await with_timeout(self.sink.recv(), timeout_cycles * CLOCK_NS, "ns")
        await self.write_reg(AxiReg.STREAM_CTRL, 0)
        await self.write_reg(AxiReg.OUT_COUNT, 0)
        raw = bytes(frame.tdata)
        assert len(raw) == 4 * n_out, f"m_axis sent {len(raw) // 4} words, expected {n_out}"
        return [int.from_bytes(raw[4 * i:4 * i + 4], "little", signed=True)
                for i in range(n_out)]

    async def read_counters(self, layers: int) -> tuple[int, list[int]]:
        total = await self.read_reg(REGS_WINDOW + 4 * Reg.TOTAL_CYCLES)
        per = [await self.read_reg(REGS_WINDOW + 4 * (Reg.LAYER_CYCLES + k))
               for k in range(layers)]
        return total, per


async def run_axi_job(dut, job) -> dict:
    cfg = job["config"]
    tb = AxiTB(dut, cfg, seed=job["seed"], stall=job["stall"])
    await tb.start()
    assert await tb.read_reg(AxiReg.ID) == AXI_ID
    assert await tb.read_reg(AxiReg.CONFIG_ID) == cfg.config_id
    assert await tb.read_reg(AxiReg.N_PES) == cfg.n_pes
    assert await tb.read_reg(REGS_WINDOW + 4 * Reg.CONFIG_ID) == cfg.config_id
    assert await tb.read_reg(AxiReg.CTRL_STATUS) == 0
    # WDATA_HI / HOST_ADDR read back what was written
    await tb.write_reg(AxiReg.HOST_ADDR, 0x1234_5678)
    assert await tb.read_reg(AxiReg.HOST_ADDR) == 0x1234_5678
    await tb.write_reg(AxiReg.WDATA_HI, 0xCAFE_F00D)
    assert await tb.read_reg(AxiReg.WDATA_HI) == 0xCAFE_F00D
    await tb.write_reg(AxiReg.WDATA_HI, 0)
    assert await tb.read_reg(0x0FFC) == 0  # unmapped
    tb.host_addr = None
    results = []
    previous = None
    for image, batch in zip(job["images"], job["inputs"], strict=True):
        await tb.load(image_writes(image, previous))
        previous = image
        in_local = image.program[0].in_local
        outputs, totals, layers = [], [], []
        for q in batch:
            await tb.write_input(q, in_local)
            await tb.run(job["timeout_cycles"])
            outputs.append(await tb.read_output(image.n_out, image.output_bank))
            total, per = await tb.read_counters(len(image.layers))
            totals.append(total)
            layers.append(per)
        result = {"q": np.array(outputs, np.int64), "cycles_total": totals,
                  "cycles_per_layer": layers}
        if job.get("streams"):
            result["stream_q"] = np.array(
                [await tb.stream_run(q, in_local, image.n_out, image.output_bank,
                                     job["timeout_cycles"]) for q in batch], np.int64)
        results.append(result)
    return {"results": results}


@cocotb.test()
async def axi_job(dut):
    """Execute the job named by ``EIE_AXI_JOB`` (see sim_tests/test_axi.py, jobs.py)."""
    job = jobs.load(os.environ[JOB_ENV])
    result = await run_axi_job(dut, job)
    jobs.save(job["result"], result)

"""cocotb side of the EIE system simulation: the ``TB`` driver and the job entry point.

:func:`sim_tests.runner.simulate` saves a job (image, inputs, options) and points
``EIE_SIM_JOB`` at it; :func:`run_job` executes it inside the simulator and saves the
result next to it. Inputs are driven on the falling clock edge and outputs sampled there,
so every host access is race-free regardless of the simulator's scheduling.
"""

from __future__ import annotations

import os
import random
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge, with_timeout

from contract.host_map import MemSel, Reg, Region, host_address
from contract.image import Descriptor
from sim_tests import jobs

__all__ = ["TB", "run_job"]

CLOCK_NS = 10
_MASK64 = (1 << 64) - 1


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >> 63 else value


class TB:
    """Clock, reset and host-port driver of the ``eie_top`` Verilog top.

    Every coroutine starts and ends just after a falling edge with the strobes low.

    Parameters
    ----------
    dut : cocotb handle of ``eie_top``.
    config : EIEConfig of the design.
    idle : probability of an idle cycle before each host access (random throttling).
    seed : seed of the idle pattern.
    """

    def __init__(self, dut, config, *, idle: float = 0.0, seed: int = 0):
        self.dut = dut
        self.config = config
        self.idle = idle
        self.rng = random.Random(seed)
        self.clk = dut.clk

    async def start(self):
        """Start the clock and reset the array."""
        for name in ("host__addr", "host__wdata", "host__write", "host__read"):
            getattr(self.dut, name).value = 0
        Clock(self.clk, CLOCK_NS, unit="ns").start()
        await self.reset()

    async def reset(self, cycles: int = 3):
        await FallingEdge(self.clk)
        self.dut.rst.value = 1
        await ClockCycles(self.clk, cycles)
        await FallingEdge(self.clk)
        self.dut.rst.value = 0
        await FallingEdge(self.clk)

    async def _gap(self):
        while self.idle and self.rng.random() < self.idle:
            await FallingEdge(self.clk)

    async def write(self, addr: int, data: int):
        await self._gap()
        self.dut.host__addr.value = addr
        self.dut.host__wdata.value = int(data) & _MASK64
        self.dut.host__write.value = 1
        await FallingEdge(self.clk)
        self.dut.host__write.value = 0

    async def read_many(self, addrs) -> list[int]:
        """Pipelined reads (one per cycle unless throttled); raw 64-bit words in order."""
        addrs = list(addrs)
        results, issued = [], 0
        while len(results) < len(addrs):
            if issued < len(addrs) and not (self.idle and self.rng.random() < self.idle):
                self.dut.host__addr.value = addrs[issued]
                self.dut.host__read.value = 1
                issued += 1
            else:
                self.dut.host__read.value = 0
            await FallingEdge(self.clk)
            if self.dut.host__rvalid.value:
                results.append(int(self.dut.host__rdata.value))
        self.dut.host__read.value = 0
        return results

    async def read(self, addr: int) -> int:
        return (await self.read_many([addr]))[0]

    # ---- image and runs -------------------------------------------------------------------
    async def load_image(self, image):
        """Write every non-zero word of the image (the memories start at zero)."""
        cfg = self.config
        for p in range(cfg.n_pes):
            for name, sel in (("spmat", MemSel.SPMAT), ("ptr_even", MemSel.PTR_EVEN),
                              ("ptr_odd", MemSel.PTR_ODD), ("bias", MemSel.BIAS)):
                words = getattr(image, name)[p]
                for addr in np.flatnonzero(words):
                    await self.write(host_address(Region.PE, int(addr), pe=p, sel=sel),
                                     int(words[addr]))
        for addr in np.flatnonzero(image.codebook):
            await self.write(host_address(Region.CODEBOOK, int(addr)), int(image.codebook[addr]))
        for t, desc in enumerate(image.program):
            await self.write_descriptor(t, desc.encode(cfg))

    async def write_descriptor(self, t: int, word: int):
        """Program word ``t``; bits above 64 go first to ``WDATA_HIGH``."""
        if self.config.descriptor_bits > 64:
            await self.write(host_address(Region.REGS, Reg.WDATA_HIGH), word >> 64)
        await self.write(host_address(Region.PROGRAM, t), word & _MASK64)

    async def write_input(self, q, in_local: int):
        n = self.config.n_pes
        for j in range(in_local * n):
            value = int(q[j]) if j < len(q) else 0
            await self.write(host_address(Region.PE, j // n, pe=j % n, sel=MemSel.ACT0), value)

    async def start_run(self):
        await self.write(host_address(Region.REGS, Reg.CTRL_STATUS), 1)

    async def wait_done(self, timeout_cycles: int):
        await with_timeout(RisingEdge(self.dut.done), timeout_cycles * CLOCK_NS, "ns")
        await FallingEdge(self.clk)

    async def read_output(self, n_out: int, bank: int) -> list[int]:
        n = self.config.n_pes
        sel = MemSel.ACT1 if bank else MemSel.ACT0
        words = await self.read_many(
            host_address(Region.PE, j // n, pe=j % n, sel=sel) for j in range(n_out))
        return [_signed64(w) for w in words]

    async def read_counters(self, layers: int) -> tuple[int, list[int]]:
        addrs = [host_address(Region.REGS, Reg.TOTAL_CYCLES)]
        addrs += [host_address(Region.REGS, Reg.LAYER_CYCLES + k) for k in range(layers)]
        words = await self.read_many(addrs)
        return words[0], words[1:]


def _timeout_cycles(image) -> int:
    cfg = image.config
    n = cfg.n_pes
    per_tile = [50 + 2 * d.out_local + 2 * d.in_local * n + cfg.entries_per_word
                * int(np.max(np.count_nonzero(image.spmat, axis=1))) for d in image.program]
    return 10_000 + 2 * sum(per_tile)


async def _run(dut, job):
    image = job["image"]
    cfg = image.config
    tb = TB(dut, cfg, idle=job["host_idle"], seed=job["seed"])
    await tb.start()
    assert await tb.read(host_address(Region.REGS, Reg.CONFIG_ID)) == cfg.config_id
    assert await tb.read(host_address(Region.REGS, Reg.N_PES)) == cfg.n_pes
    if job.get("load", True):
        await tb.load_image(image)
    timeout = job["timeout_cycles"] or _timeout_cycles(image)
    in_local = image.program[0].in_local
    layers = len(image.layers)
    q_out, totals, per_layer = [], [], []
    for b, q in enumerate(job["q"]):
        await tb.write_input(q, in_local)
        await tb.start_run()
        if b == 0 and job["reset_after"] is not None:
            await ClockCycles(tb.clk, int(job["reset_after"]))
            assert dut.busy.value == 1, "reset_after is past the end of the run"
            await tb.reset()
            assert dut.busy.value == 0 and dut.done.value == 0
            status = await tb.read(host_address(Region.REGS, Reg.CTRL_STATUS))
            assert status == 0, f"status after reset {status}"
            await tb.write_input(q, in_local)
            await tb.start_run()
        await tb.wait_done(timeout)
        status = await tb.read(host_address(Region.REGS, Reg.CTRL_STATUS))
        assert status == 2, f"status after done {status}"
        q_out.append(await tb.read_output(image.n_out, image.output_bank))
        total, per = await tb.read_counters(layers)
        totals.append(total)
        per_layer.append(per)
    return {"q": np.array(q_out, np.int64), "cycles_total": np.array(totals, np.int64),
            "cycles_per_layer": np.array(per_layer, np.int64).reshape(len(totals), layers),
            "config_id": cfg.config_id}


async def _bench(dut, job):
    """Clock a 64-PE array through long runs; measure simulated cycles per second."""
    cfg = job["config"]
    tb = TB(dut, cfg)
    await tb.start()
    desc = Descriptor(in_local=cfg.act_depth, out_local=cfg.acc_depth, out_base=0,
                      ptr_base=0, spmat_base=0, bias_base=0, slot=0, shift=0, relu=False,
                      bias_en=False, swap=True, last=True)
    await tb.write_descriptor(0, desc.encode(cfg))
    # Dense input; the columns are empty (zero pointers), so every broadcast costs one
    # PE cycle: Verilator evaluates the whole design every cycle, so the figure does not
    # depend much on the matrix.
    await tb.write_input([1] * (cfg.act_depth * cfg.n_pes), cfg.act_depth)
    cycles, seconds = 0, 0.0
    while cycles < job["bench_cycles"]:
        await tb.start_run()
        t0 = time.perf_counter()
        await tb.wait_done(10_000_000)
        seconds += time.perf_counter() - t0
        cycles += await tb.read(host_address(Region.REGS, Reg.TOTAL_CYCLES))
    return {"cycles": cycles, "seconds": seconds, "n_pes": cfg.n_pes}


@cocotb.test()
async def run_job(dut):
    """Execute the job named by ``EIE_SIM_JOB`` and save its result (sim_tests/jobs.py)."""
    job = jobs.load(os.environ["EIE_SIM_JOB"])
    result = await (_bench(dut, job) if "bench_cycles" in job else _run(dut, job))
    jobs.save(job["result"], result)

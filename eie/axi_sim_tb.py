"""cocotb side of ``eie.axi_sim``: :class:`eie.driver.Driver` on the simulated AXI4-Lite
port.

The driver is blocking code; cocotb 2.x runs such code in a thread with
``cocotb.task.bridge`` (a coroutine function that awaits the blocking function) and lets
it call coroutines with ``cocotb.task.resume`` (the call blocks the thread until the
coroutine returns, the simulator running meanwhile). :class:`SimMMIO` wraps
cocotbext-axi's ``AxiLiteMaster`` reads and writes that way, so the driver runs unchanged
against the RTL. (``cocotb.external`` and ``cocotb.function`` before cocotb 2.0.)
"""

from __future__ import annotations

import os
import random
import warnings

import cocotb
from cocotb.clock import Clock
from cocotb.task import bridge, resume
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge
from cocotbext.axi import AxiLiteBus, AxiLiteMaster

from sim_tests import jobs

from .driver import Driver

__all__ = ["SimMMIO", "driver_job", "CLOCK_NS"]

# cocotbext-axi still calls APIs deprecated in cocotb 2 (as in sim_tests/axi_tb.py).
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"cocotbext\.")

CLOCK_NS = 5
_MASK32 = (1 << 32) - 1


def _pause(rng: random.Random, probability: float):
    while True:
        yield rng.random() < probability


class SimMMIO:
    """The MMIO shape (``read(offset)``, ``write(offset, value)``) over an AxiLiteMaster,
    for blocking code running under ``cocotb.bridge``; ``stall`` is the probability that
    the master stalls each of the five channels in a cycle (random backpressure)."""

    def __init__(self, dut, *, stall: float = 0.0, seed: int = 0):
        bus = AxiLiteBus.from_prefix(dut, "s_axil", bus_separator="__")
        self.axil = AxiLiteMaster(bus, dut.clk, dut.rst)
        rng = random.Random(seed)
        w, r = self.axil.write_if, self.axil.read_if
        if stall:
            for channel in (w.aw_channel, w.w_channel, w.b_channel, r.ar_channel,
                            r.r_channel):
                channel.set_pause_generator(_pause(random.Random(rng.random()), stall))
        self.reads = self.writes = 0

    def read(self, offset: int) -> int:
        self.reads += 1
        return int(resume(self.axil.read_dword)(int(offset)))

    def write(self, offset: int, value: int) -> None:
        self.writes += 1
        resume(self.axil.write_dword)(int(offset), int(value) & _MASK32)


def _drive(mmio, job) -> dict:
    """The host program: what a board user runs, word for word."""
    driver = Driver(mmio, slot_words=job.get("slot_words"), poll_limit=job["poll_limit"])
    driver.load(job["image"])
    result = driver.run(job["q"])
    result["config_id"] = driver.config_id
    result["axi_reads"], result["axi_writes"] = mmio.reads, mmio.writes
    return result


def _drive_c(mmio, job) -> dict:
    """The C driver of ``sw/`` (built with ``-DEIE_MMIO_HOOKS`` as a shared library) on
    the same port: its two MMIO hooks call :class:`SimMMIO` through ctypes."""
    import ctypes

    import numpy as np

    from contract.lstm_image import LSTMImage

    from .driver import _as_image

    lib = ctypes.CDLL(job["c_lib"])
    read_t = ctypes.CFUNCTYPE(ctypes.c_uint32, ctypes.c_uint32)
    write_t = ctypes.CFUNCTYPE(None, ctypes.c_uint32, ctypes.c_uint32)
    hooks = (read_t(mmio.read), write_t(mmio.write))    # kept alive while C runs
    read_p = ctypes.c_void_p.in_dll(lib, "eie_mmio_read_hook")
    write_p = ctypes.c_void_p.in_dll(lib, "eie_mmio_write_hook")
    read_p.value = ctypes.cast(hooks[0], ctypes.c_void_p).value
    write_p.value = ctypes.cast(hooks[1], ctypes.c_void_p).value
    dev = ctypes.create_string_buffer(256)      # eie_dev (opaque here, < 256 bytes)

    def check(err, what):
        if err:
            raise RuntimeError(f"{what}: {lib.eie_strerror(err)} ({err})")

    lib.eie_strerror.restype = ctypes.c_char_p
    check(lib.eie_open(dev, None), "eie_open")
    ops = job.get("c_ops")
    check(lib.eie_load_image(dev, job["image"].encode(),
                             None if ops is None else ops.encode()), "eie_load_image")
    image = _as_image(job["image"])
    q = np.asarray(job["q"], np.int32)
    i32p = ctypes.POINTER(ctypes.c_int32)
    u32p = ctypes.POINTER(ctypes.c_uint32)
    if isinstance(image, LSTMImage):
        channels = image.config.channels
        batch, steps, _ = q.shape
        outputs = np.zeros((batch, steps, image.n_out), np.int32)
        cycles = np.zeros((batch, steps), np.uint32)
        for g0 in range(0, batch, channels):
            x = np.ascontiguousarray(q[g0:g0 + channels])
            y = np.zeros((len(x), steps, image.n_out), np.int32)
            c = np.zeros(steps, np.uint32)
            check(lib.ese_run(dev, x.ctypes.data_as(i32p), len(x), steps, image.n_in,
                              image.memory.x_words, y.ctypes.data_as(i32p), image.n_out,
                              c.ctypes.data_as(u32p)), "ese_run")
            outputs[g0:g0 + len(x)], cycles[g0:g0 + len(x)] = y, c[None, :]
        return {"q": outputs.astype(np.int64), "cycles": cycles.astype(np.int64)}
    outputs = np.zeros((len(q), image.n_out), np.int32)
    cycles = np.zeros(len(q), np.uint32)
    for b, x in enumerate(q):
        x = np.ascontiguousarray(x)
        check(lib.eie_run(dev, x.ctypes.data_as(i32p), image.n_in,
                          image.program[0].in_local, outputs[b].ctypes.data_as(i32p),
                          image.n_out, image.output_bank,
                          ctypes.cast(cycles[b:].ctypes.data, u32p)), "eie_run")
    return {"q": outputs.astype(np.int64), "cycles": cycles.astype(np.int64)}


@cocotb.test()
async def driver_job(dut):
    """Run the job named by ``EIE_SIM_JOB`` through the driver and save its result."""
    job = jobs.load(os.environ["EIE_SIM_JOB"])
    Clock(dut.clk, CLOCK_NS, unit="ns").start()
    mmio = SimMMIO(dut, stall=job["stall"], seed=job["seed"])
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    drive = _drive_c if job.get("c_lib") else _drive
    result = await bridge(drive)(mmio, job)
    jobs.save(job["result"], result)

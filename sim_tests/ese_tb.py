"""cocotb side of the ESE system simulation (``sim_tests/ese_runner.py`` saves the job).

A run loads the image through the host port (unless baked), then per group of C
sequences writes every frame into the input rings, starts one run of T frames and awaits
``done``: Python is not called per frame or per cycle while the engine runs. A sequence
longer than the rings streams instead: the host refills each slot as its frame completes
(double buffering), which is the board's way and costs a host access per frame.
"""

from __future__ import annotations

import os

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge, with_timeout

from contract.host_map import MemSel
from contract.lstm_image import read_lstm_image
from contract.lstm_program import (
    PEEPHOLE_SEL,
    ChanSel,
    ESEReg,
    ESERegion,
    encode_op,
    ese_address,
    frame_io,
    frame_program,
    op_bits,
)
from sim_tests import jobs
from sim_tests.tb import CLOCK_NS, TB

__all__ = ["ESETB", "run_ese_job"]

_MASK64 = (1 << 64) - 1


def _reg(reg) -> int:
    return ese_address(ESERegion.REGS, int(reg))


def _signed(value: int, bits: int = 64) -> int:
    return value - (1 << bits) if value >> (bits - 1) else value


class ESETB(TB):
    """Host-port driver of the ``ese_top`` Verilog top."""

    async def load_image(self, image):
        cfg = image.config
        mats = image.matrices
        for p in range(cfg.n_pes):
            for name, sel in (("spmat", MemSel.SPMAT), ("ptr_even", MemSel.PTR_EVEN),
                              ("ptr_odd", MemSel.PTR_ODD), ("bias", MemSel.BIAS)):
                words = getattr(mats, name)[p]
                for addr in np.flatnonzero(words):
                    await self.write(ese_address(ESERegion.PE, int(addr), pe=p, sel=sel),
                                     int(words[addr]))
            words = image.peephole[p]
            for addr in np.flatnonzero(words):
                await self.write(ese_address(ESERegion.PE, int(addr), pe=p,
                                              sel=PEEPHOLE_SEL), int(words[addr]))
        for addr in np.flatnonzero(mats.codebook):
            await self.write(ese_address(ESERegion.CODEBOOK, int(addr)),
                             int(mats.codebook[addr]))
        tables = np.concatenate([image.sigmoid, image.tanh])
        for addr, value in enumerate(tables):
            await self.write(ese_address(ESERegion.TABLES, addr), int(value))
        for t, op in enumerate(frame_program(image)):
            word = encode_op(op, cfg)
            if op_bits(cfg) > 64:
                await self.write(_reg(ESEReg.WDATA_HIGH), word >> 64)
            await self.write(ese_address(ESERegion.PROGRAM, t), word & _MASK64)
        io = frame_io(image)
        await self.write(_reg(ESEReg.X_WORDS), io.x_words)
        await self.write(_reg(ESEReg.OUT_BASE), io.out_base)
        await self.write(_reg(ESEReg.OUT_WORDS), io.out_words)

    async def write_frames(self, q, slot_words: int, slots: int, frames=None, value=None):
        """``q`` [channels_used, T, n_in]: frame t (of ``frames``, default all) into slot
        t mod slots of every channel; ``value=0`` zeroes those words instead."""
        n = self.config.n_pes
        frames = range(q.shape[1]) if frames is None else frames
        for c, seq in enumerate(q):
            await self.write(_reg(ESEReg.CHANNEL_SEL), c)
            for t in frames:
                frame, base = seq[t], (t % slots) * slot_words
                for j in np.flatnonzero(frame):
                    await self.write(ese_address(ESERegion.CHANNEL, base + int(j) // n,
                                                 pe=int(j) % n, sel=ChanSel.IN_RING),
                                     int(frame[j]) if value is None else value)

    async def read_outputs(self, channels: int, frames, n_out: int, slot_words: int,
                           slots: int) -> np.ndarray:
        """Outputs ``[channels, len(frames), n_out]`` from the output rings."""
        n = self.config.n_pes
        frames = list(frames)
        out = np.zeros((channels, len(frames), n_out), np.int64)
        for c in range(channels):
            await self.write(_reg(ESEReg.CHANNEL_SEL), c)
            addrs = [ese_address(ESERegion.CHANNEL, (t % slots) * slot_words + j // n,
                                 pe=j % n, sel=ChanSel.OUT_RING)
                     for t in frames for j in range(n_out)]
            words = await self.read_many(addrs)
            out[c] = np.array([_signed(w) for w in words]).reshape(len(frames), n_out)
        return out

    async def stream(self, group, steps: int, n_out: int, slot_words: int, slots: int,
                     timeout_cycles: int):
        """A run longer than the rings: the host writes frame t + slots into the slot of
        frame t once t is done (double buffering; the engine waits, uncounted, when the
        host is late) and reads each frame's outputs and cycles as it completes."""
        out = np.zeros((len(group), steps, n_out), np.int64)
        cycles = np.zeros(steps, np.int64)
        await self.write_frames(group, slot_words, slots, frames=range(slots))
        await self.write(_reg(ESEReg.ACTIVE_CHANNELS), len(group))
        await self.write(_reg(ESEReg.FRAMES), steps)
        await self.write(_reg(ESEReg.FRAMES_READY), slots)
        await self.write(_reg(ESEReg.CTRL_STATUS), 1)
        polls = 0
        for t in range(steps):
            while await self.read(_reg(ESEReg.FRAME_COUNT)) <= t:
                polls += 1
                assert polls < timeout_cycles, "the run does not advance"
            out[:, t:t + 1] = await self.read_outputs(len(group), [t], n_out, slot_words,
                                                      slots)
            cycles[t] = await self.read(_reg(ESEReg.FRAME_CYCLES + t % slots))
            if t + slots < steps:
                await self.write_frames(group, slot_words, slots, frames=[t], value=0)
                await self.write_frames(group, slot_words, slots, frames=[t + slots])
                await self.write(_reg(ESEReg.FRAMES_READY), t + slots + 1)
        while not self.dut.done.value:
            await FallingEdge(self.clk)
        return out, cycles

    async def run(self, frames: int, active: int, timeout_cycles: int, reset_after=None):
        await self.write(_reg(ESEReg.ACTIVE_CHANNELS), active)
        await self.write(_reg(ESEReg.FRAMES), frames)
        await self.write(_reg(ESEReg.FRAMES_READY), frames)
        await self.write(_reg(ESEReg.CTRL_STATUS), 1)
        if reset_after is not None:
            await ClockCycles(self.clk, int(reset_after))
            assert self.dut.busy.value == 1, "reset_after is past the end of the run"
            await self.reset()
            return False
        await with_timeout(RisingEdge(self.dut.done), timeout_cycles * CLOCK_NS, "ns")
        await FallingEdge(self.clk)
        return True


async def _run(dut, job):
    image = read_lstm_image(job["image"])
    cfg = image.config
    slots, slot_words = job["frame_slots"], job["slot_words"]
    tb = ESETB(dut, cfg, idle=job["host_idle"], seed=job["seed"])
    await tb.start()
    assert await tb.read(_reg(ESEReg.CONFIG_ID)) == cfg.config_id
    assert await tb.read(_reg(ESEReg.CHANNELS)) == cfg.channels
    if job["load"]:
        await tb.load_image(image)
    q = job["q"]
    batch, steps, _ = q.shape
    outputs = np.zeros((batch, steps, image.n_out), np.int64)
    cycles = np.zeros((batch, steps), np.int64)
    totals = []
    timeout = job["timeout_cycles"]
    first = True
    for g0 in range(0, batch, cfg.channels):
        group = q[g0:g0 + cfg.channels]
        if steps > slots:
            out, frame_cycles = await tb.stream(group, steps, image.n_out, slot_words, slots,
                                                timeout)
            await tb.write_frames(group, slot_words, slots,
                                  frames=range(steps - slots, steps), value=0)
        else:
            await tb.write_frames(group, slot_words, slots)
            if first and job["reset_after"] is not None:
                await tb.run(steps, len(group), timeout, reset_after=job["reset_after"])
                status = await tb.read(_reg(ESEReg.CTRL_STATUS))
                assert status == 0, f"status after reset {status}"
                if job["load"]:
                    await tb.load_image(image)
                await tb.write_frames(group, slot_words, slots)
            await tb.run(steps, len(group), timeout)
            out = await tb.read_outputs(len(group), range(steps), image.n_out, slot_words,
                                        slots)
            frame_cycles = await tb.read_many(_reg(ESEReg.FRAME_CYCLES + t)
                                              for t in range(steps))
            await tb.write_frames(group, slot_words, slots, value=0)
        first = False
        status = await tb.read(_reg(ESEReg.CTRL_STATUS))
        assert status == 2, f"status after done {status}"
        assert await tb.read(_reg(ESEReg.FRAME_COUNT)) == steps
        outputs[g0:g0 + len(group)] = out
        cycles[g0:g0 + len(group)] = np.array(frame_cycles, np.int64)[None, :]
        totals.append(await tb.read(_reg(ESEReg.TOTAL_CYCLES)))
    return {"q": outputs, "cycles": cycles, "totals": np.array(totals, np.int64),
            "config_id": cfg.config_id}


@cocotb.test()
async def run_ese_job(dut):
    """Execute the job named by ``EIE_SIM_JOB`` and save its result."""
    job = jobs.load(os.environ["EIE_SIM_JOB"])
    jobs.save(job["result"], await _run(dut, job))

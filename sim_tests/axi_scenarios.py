"""cocotb side of the AXI4-Lite system test (rtl/axi_host.py): the scenarios and the job.

``sim_tests/test_axi.py`` saves a job (scenario, config, images, inputs, their golden
outputs, seed, backpressure) and points ``EIE_AXI_JOB`` at it; :func:`axi_job` runs the
scenario with an :class:`~sim_tests.axi_tb.AxiTB` and saves the results (outputs, cycle
counters, failed checks) next to the job; the test compares outputs and counters with the
golden model. Every register read is checked against the register map's model
(sim_tests/axi_model.py). Scenarios (:data:`SCENARIOS`):

* ``load_run_reload``: load an image, run inputs over AXI-Lite and the AXI4-Stream ports,
  reload a different image over it and repeat;
* ``races``: reads and writes presented in the same cycle (the documented outcome of each
  tie), then rounds of concurrent random reads and writes;
* ``stream_lite``: AXI-Lite traffic while input beats go in and outputs come out;
* ``busy_writes``: memory writes of every kind while the array runs (ignored), with
  register reads in between (answered);
* ``reset_mid_run``: the ``rst`` pin in the middle of a run (started over AXI-Lite, then
  by the stream), then reruns.
"""

from __future__ import annotations

import os
import random

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, RisingEdge

from contract.host_map import AXI_ID, REGS_WINDOW, AxiReg, MemSel, Reg, Region, host_address
from sim_tests import jobs
from sim_tests.axi_model import UNMAPPED, UNMAPPED_HIGH, act_address
from sim_tests.axi_tb import AxiTB, image_writes

__all__ = ["SCENARIOS", "axi_job", "JOB_ENV"]

JOB_ENV = "EIE_AXI_JOB"
_MASK32 = (1 << 32) - 1


def _golden(job, k: int, b: int):
    """Golden outputs of input ``b`` of image ``k`` (or None if the job has none)."""
    expected = job.get("expected")
    return None if expected is None else [int(v) for v in expected[k][b]]


async def _check_ids(tb, cfg):
    assert await tb.read_reg(AxiReg.ID) == AXI_ID
    assert await tb.read_reg(AxiReg.CONFIG_ID) == cfg.config_id
    assert await tb.read_reg(AxiReg.N_PES) == cfg.n_pes
    assert await tb.read_reg(REGS_WINDOW + 4 * Reg.CONFIG_ID) == cfg.config_id
    assert await tb.read_reg(AxiReg.CTRL_STATUS) == 0


async def run_axi_job(tb, job) -> dict:
    """``load_run_reload``: every image loaded over the previous one, every input run over
    AXI-Lite, then (``streams``) over the AXI4-Stream ports."""
    cfg = job["config"]
    await _check_ids(tb, cfg)
    # WDATA_HI / HOST_ADDR read back what was written
    await tb.write_reg(AxiReg.HOST_ADDR, 0x1234_5678)
    assert await tb.read_reg(AxiReg.HOST_ADDR) == 0x1234_5678
    await tb.write_reg(AxiReg.WDATA_HI, 0xCAFE_F00D)
    assert await tb.read_reg(AxiReg.WDATA_HI) == 0xCAFE_F00D
    await tb.write_reg(AxiReg.WDATA_HI, 0)
    assert await tb.read_reg(UNMAPPED) == 0
    # above the window nothing is mapped: no alias of CTRL_STATUS (a write would start)
    await tb.write_reg(UNMAPPED_HIGH, 1)
    assert await tb.read_reg(UNMAPPED_HIGH) == 0
    assert await tb.read_reg(AxiReg.CTRL_STATUS) == 0
    tb.host_addr = None
    results = []
    previous = None
    for k, (image, batch) in enumerate(zip(job["images"], job["inputs"], strict=True)):
        await tb.load(image_writes(image, previous))
        previous = image
        in_local = image.program[0].in_local
        outputs, totals, layers = [], [], []
        for b, q in enumerate(batch):
            await tb.write_input(q, in_local)
            await tb.run(job["timeout_cycles"], _golden(job, k, b), image.output_bank)
            outputs.append(await tb.read_output(image.n_out, image.output_bank))
            total, per = await tb.read_counters(len(image.layers))
            totals.append(total)
            layers.append(per)
        result = {"q": np.array(outputs, np.int64), "cycles_total": totals,
                  "cycles_per_layer": layers}
        if job.get("streams"):
            result["stream_q"] = np.array(
                [await tb.stream_run(q, in_local, image.n_out, image.output_bank,
                                     job["timeout_cycles"], _golden(job, k, b))
                 for b, q in enumerate(batch)], np.int64)
        results.append(result)
    return {"results": results}


async def _race(tb, label: str, write: tuple[int, int], read: int) -> int:
    """Present ``write`` (offset, data) and a read of ``read`` in the same cycle (the
    master is unthrottled); return the read data. Records whether it was a tie."""
    ties = tb.monitor.ties
    w = cocotb.start_soon(tb.write_reg(*write))
    r = cocotb.start_soon(tb.read_reg(read))
    await w
    got = await r
    tb.expect(f"{label}: presented in the same cycle", True, tb.monitor.ties > ties)
    return got


async def _races(tb, job) -> dict:
    """Reads racing writes: directed ties with their documented outcome (the write is
    accepted first), then concurrent random rounds checked by the model."""
    cfg = job["config"]
    rng = random.Random(job["seed"])
    n, depth = cfg.n_pes, cfg.act_depth
    await _check_ids(tb, cfg)
    # Every activation word known: random signed values through the sequential path.
    await tb.write_reg(AxiReg.WDATA_HI, 0)
    words = {}
    for p in range(n):
        for sel in (MemSel.ACT0, MemSel.ACT1):
            await tb.write_reg(AxiReg.HOST_ADDR, host_address(Region.PE, 0, pe=p, sel=sel))
            for row in range(depth):
                value = rng.randrange(-(1 << cfg.act_bits - 1), 1 << cfg.act_bits - 1)
                words[host_address(Region.PE, row, pe=p, sel=sel)] = value
                await tb.write_reg(AxiReg.DATA_LO, value)

    def lo(value):
        return value & _MASK32

    # ---- directed ties (no stalls, so that both are presented in the same cycle) --------
    tb.throttle(False)
    base = host_address(Region.PE, 0, pe=n - 1, sel=MemSel.ACT0)
    await tb.write_reg(AxiReg.HOST_ADDR, 0x0AAA_0000)
    got = await _race(tb, "HOST_ADDR write vs HOST_ADDR read", (AxiReg.HOST_ADDR, base + 2),
                      AxiReg.HOST_ADDR)
    tb.expect("HOST_ADDR read tied with a HOST_ADDR write returns the new value (writes win)",
              base + 2, got)
    got = await _race(tb, "WDATA_HI write vs WDATA_HI read", (AxiReg.WDATA_HI, 0x5A5A_0F0F),
                      AxiReg.WDATA_HI)
    tb.expect("WDATA_HI read tied with a WDATA_HI write returns the new value", 0x5A5A_0F0F,
              got)
    # HOST_ADDR = base + 2: the write commits row 2, then the read reads row 3.
    new = -12345 & ((1 << cfg.act_bits) - 1)
    got = await _race(tb, "DATA_LO write vs DATA_LO read", (AxiReg.DATA_LO, new),
                      AxiReg.DATA_LO)
    tb.expect("DATA_LO read tied with a DATA_LO write reads HOST_ADDR + 1 (row 3)",
              lo(words[base + 3]), got)
    tb.expect("RDATA_HI after it", lo(words[base + 3] >> 32), await tb.read_reg(AxiReg.RDATA_HI))
    tb.expect("HOST_ADDR after both", base + 4, await tb.read_reg(AxiReg.HOST_ADDR))
    words[base + 2] = -12345
    for row in (2, 3):
        await tb.write_reg(AxiReg.HOST_ADDR, base + row)
        tb.expect(f"row {row} after the DATA_LO tie", lo(words[base + row]),
                  await tb.read_reg(AxiReg.DATA_LO))
    got = await _race(tb, "HOST_ADDR write vs DATA_LO read", (AxiReg.HOST_ADDR, base + 5),
                      AxiReg.DATA_LO)
    tb.expect("DATA_LO read tied with a HOST_ADDR write reads the new address (row 5)",
              lo(words[base + 5]), got)
    tb.expect("HOST_ADDR after it", base + 6, await tb.read_reg(AxiReg.HOST_ADDR))
    got = await _race(tb, "DATA_LO write vs HOST_ADDR read", (AxiReg.DATA_LO, 77),
                      AxiReg.HOST_ADDR)
    tb.expect("HOST_ADDR read tied with a DATA_LO write sees the increment", base + 7, got)
    words[base + 6] = 77
    got = await _race(tb, "WDATA_HI write vs array register read",
                      (AxiReg.WDATA_HI, 0), REGS_WINDOW + 4 * Reg.N_PES)
    tb.expect("window N_PES read tied with a write", cfg.n_pes, got)

    # ---- concurrent random rounds (throttled as the job says) ---------------------------
    tb.throttle(True)
    per_round = 6  # DATA_LO accesses per round: HOST_ADDR rows leave room for them
    reads = [AxiReg.ID, AxiReg.CONFIG_ID, AxiReg.CTRL_STATUS, AxiReg.N_PES,
             AxiReg.HOST_ADDR, AxiReg.WDATA_HI, AxiReg.RDATA_HI, UNMAPPED, UNMAPPED_HIGH,
             REGS_WINDOW + 4 * Reg.CTRL_STATUS, REGS_WINDOW + 4 * Reg.CONFIG_ID,
             REGS_WINDOW + 4 * Reg.N_PES]
    if tb.model.streams:
        reads += [AxiReg.STREAM_CTRL, AxiReg.OUT_COUNT, AxiReg.OUT_BANK]

    def act_word():
        return host_address(Region.PE, rng.randrange(depth - per_round), pe=rng.randrange(n),
                            sel=rng.choice((MemSel.ACT0, MemSel.ACT1)))

    for _ in range(job["rounds"]):
        await tb.write_reg(AxiReg.HOST_ADDR, act_word())
        budget = per_round
        w_ops, r_ops = [], []
        for _ in range(rng.randrange(2, 7)):
            kind = rng.choice(("addr", "hi", "lo", "lo", "unmapped", "high"))
            if kind == "lo" and budget:
                budget -= 1
                w_ops.append((AxiReg.DATA_LO, rng.getrandbits(32)))
            elif kind == "addr":
                w_ops.append((AxiReg.HOST_ADDR, act_word()))
            elif kind == "hi":
                w_ops.append((AxiReg.WDATA_HI, rng.getrandbits(32)))
            elif kind == "high":  # an array register write (through the host port)
                w_ops.append((REGS_WINDOW + 4 * Reg.WDATA_HIGH, rng.getrandbits(32)))
            else:
                w_ops.append((UNMAPPED, rng.getrandbits(32)))
        for _ in range(rng.randrange(2, 7)):
            if budget and rng.random() < 0.4:
                budget -= 1
                r_ops.append(AxiReg.DATA_LO)
            else:
                r_ops.append(rng.choice(reads))

        async def writer(ops=w_ops):
            for op in ops:
                await tb.write_reg(*op)

        async def reader(ops=r_ops):
            for op in ops:
                await tb.read_reg(op)

        tasks = [cocotb.start_soon(writer()), cocotb.start_soon(reader())]
        for task in tasks:
            await task
    tb.verify_reads()
    return {"ties": tb.monitor.ties}


async def _lite_traffic(tb, rng, stop, *, writes: bool):
    """AXI-Lite traffic that leaves the array's memories alone: register writes (WDATA_HI,
    the array's WDATA_HIGH through the window, an unmapped offset) or register reads (the
    window reads go through the array's host port), until ``stop[0]``."""
    reads = [AxiReg.ID, AxiReg.CONFIG_ID, AxiReg.N_PES, AxiReg.WDATA_HI, AxiReg.STREAM_CTRL,
             AxiReg.OUT_COUNT, AxiReg.OUT_BANK, UNMAPPED, REGS_WINDOW + 4 * Reg.CONFIG_ID,
             REGS_WINDOW + 4 * Reg.N_PES]
    while not stop[0]:
        if writes:
            offset = rng.choice((AxiReg.WDATA_HI, REGS_WINDOW + 4 * Reg.WDATA_HIGH, UNMAPPED))
            await tb.write_reg(offset, rng.getrandbits(32))
        else:
            await tb.read_reg(rng.choice(reads))


async def _stream_lite(tb, job) -> dict:
    """Each input over the streams while AXI-Lite writes and reads go on; once ``done``
    rises the outputs are also read over ``DATA_LO`` while m_axis sends them."""
    cfg = job["config"]
    rng = random.Random(job["seed"])
    await _check_ids(tb, cfg)
    image = job["images"][0]
    await tb.load(image_writes(image))
    in_local = image.program[0].in_local
    bank = image.output_bank
    stream_q, lite_q, totals, layers = [], [], [], []
    for b, q in enumerate(job["inputs"][0]):
        await tb.stream_setup(image.n_out, bank)
        stop = [False]
        traffic = [cocotb.start_soon(_lite_traffic(tb, rng, stop, writes=True)),
                   cocotb.start_soon(_lite_traffic(tb, rng, stop, writes=False))]
        await ClockCycles(tb.dut.clk, rng.randrange(4))
        await tb.send_input(q, in_local)
        receive = cocotb.start_soon(tb.receive_output(image.n_out, job["timeout_cycles"]))
        await tb.wait_for(RisingEdge(tb.dut.done), job["timeout_cycles"], "done to rise")
        tb.model.finish(_golden(job, 0, b), bank)

        async def lite_outputs():
            out = []
            for j in range(image.n_out):
                await tb.write_reg(AxiReg.HOST_ADDR, act_address(cfg, j, bank))
                word = await tb.read_reg(AxiReg.DATA_LO)
                out.append(word - (1 << 32) if word >> 31 else word)
            return out

        lite = cocotb.start_soon(lite_outputs())
        stream_q.append(await receive)
        lite_q.append(await lite)
        stop[0] = True
        for task in traffic:
            await task
        await tb.stream_teardown()
        total, per = await tb.read_counters(len(image.layers))
        totals.append(total)
        layers.append(per)
    tb.verify_reads()
    return {"results": [{"stream_q": np.array(stream_q, np.int64),
                         "q": np.array(lite_q, np.int64), "cycles_total": totals,
                         "cycles_per_layer": layers}],
            "during_beats": tb.monitor.during_beats,
            "during_outputs": tb.monitor.during_outputs}


def _flip(rng) -> int:
    """Random bits to XOR into a word, bit 0 always set (the low half always changes)."""
    return rng.getrandbits(31) << 1 | 1


def _busy_targets(image, rng, run: int) -> list[tuple[int, int]]:
    """Memory writes to issue during run ``run``: in every PE a used word of each memory,
    the codebook, a descriptor and activations of both banks, each corrupted."""
    cfg = image.config
    targets = []
    for p in range(cfg.n_pes):
        for name, sel in (("spmat", MemSel.SPMAT), ("ptr_even", MemSel.PTR_EVEN),
                          ("ptr_odd", MemSel.PTR_ODD), ("bias", MemSel.BIAS)):
            words = getattr(image, name)[p]
            used = [int(x) for x in np.flatnonzero(words)] or [0]
            a = rng.choice(used)
            targets.append((host_address(Region.PE, a, pe=p, sel=sel),
                            int(words[a]) ^ _flip(rng)))
    a = rng.choice([int(x) for x in np.flatnonzero(image.codebook)])
    targets.append((host_address(Region.CODEBOOK, a), int(image.codebook[a]) ^ _flip(rng)))
    t = run % len(image.program)
    targets.append((host_address(Region.PROGRAM, t), image.program[t].encode(cfg) ^ _flip(rng)))
    for bank in (0, 1):  # activations being scanned or written back
        targets.append((act_address(cfg, rng.randrange(cfg.n_pes * 2), bank), _flip(rng)))
    return targets


async def _busy_writes(tb, job) -> dict:
    """Memory writes while the array runs must be ignored (docs/rtl.md, "Host port"); the
    registers still answer. The runs (and a rerun of the first input with no writes) must
    still equal golden, which they would not if any write had landed."""
    cfg = job["config"]
    rng = random.Random(job["seed"])
    await _check_ids(tb, cfg)
    image = job["images"][0]
    await tb.load(image_writes(image))
    in_local = image.program[0].in_local
    bank = image.output_bank
    batch = list(job["inputs"][0])
    q_out, totals, layers, running_totals = [], [], [], []
    for b, q in enumerate(batch + batch[:1]):
        await tb.write_input(q, in_local)
        golden = _golden(job, 0, b % len(batch))
        if b == len(batch):  # the rerun: nothing written while busy
            await tb.run(job["timeout_cycles"], golden, bank)
        else:
            status = await tb.start_run()
            tb.expect(f"run {b}: CTRL_STATUS after the start", 1, status)
            tb.model.status = 1  # busy, not done (checked again after the writes)
            stop = [False]

            async def reader(stop=stop):
                seen = []
                while not stop[0]:
                    seen.append(await tb.read_reg(REGS_WINDOW + 4 * Reg.TOTAL_CYCLES))
                    await tb.read_reg(rng.choice((AxiReg.ID, AxiReg.CONFIG_ID, AxiReg.N_PES,
                                                  AxiReg.HOST_ADDR, AxiReg.WDATA_HI,
                                                  AxiReg.CTRL_STATUS,
                                                  REGS_WINDOW + 4 * Reg.CTRL_STATUS,
                                                  REGS_WINDOW + 4 * Reg.CONFIG_ID)))
                return seen

            task = cocotb.start_soon(reader())
            await tb.write_reg(AxiReg.WDATA_HI, rng.getrandbits(32))
            for addr, value in _busy_targets(image, rng, b):
                await tb.write_reg(AxiReg.HOST_ADDR, addr)
                await tb.write_reg(AxiReg.DATA_LO, value)
            stop[0] = True
            running_totals.append(await task)
            # Busy falls once per run: still busy now means busy for every write above.
            tb.expect(f"run {b}: still busy after the writes (the test needs a longer run)",
                      1, await tb.read_reg(AxiReg.CTRL_STATUS))
            tb.host_addr, tb.wdata_hi = None, -1
            await tb.wait_done(job["timeout_cycles"], golden, bank)
        q_out.append(await tb.read_output(image.n_out, bank))
        total, per = await tb.read_counters(len(image.layers))
        totals.append(total)
        layers.append(per)
    tb.verify_reads()
    return {"results": [{"q": np.array(q_out, np.int64), "cycles_total": totals,
                         "cycles_per_layer": layers}],
            "running_totals": running_totals}


async def _reset_mid_run(tb, job) -> dict:
    """``rst`` in the middle of a run started over AXI-Lite, then of one started by the
    stream; after each, the registers hold their reset values and a rerun of the same input
    (memories are kept, only the input is written again) equals golden."""
    cfg = job["config"]
    await _check_ids(tb, cfg)
    image = job["images"][0]
    await tb.load(image_writes(image))
    in_local = image.program[0].in_local
    bank = image.output_bank
    at = job["reset_at"]
    q_out, totals, layers = [], [], []
    for b, q in enumerate(job["inputs"][0]):
        golden = _golden(job, 0, b)
        await tb.write_input(q, in_local)
        if b % 2 == 0:  # started over AXI-Lite, rerun over AXI-Lite
            status = await tb.start_run()
            tb.expect(f"run {b}: CTRL_STATUS after the start", 1, status)
        else:  # started by the stream's tlast, rerun over the streams
            await tb.stream_setup(image.n_out, bank)
            await tb.send_input(q, in_local)
            await tb.wait_for(RisingEdge(tb.dut.busy), job["timeout_cycles"], "busy to rise")
        await tb.write_reg(AxiReg.WDATA_HI, 0xA5A5_A5A5)
        await tb.write_reg(AxiReg.OUT_COUNT, 3)
        await ClockCycles(tb.dut.clk, at)
        tb.expect(f"run {b}: busy when reset is asserted {at} cycles in", 1,
                  int(tb.dut.busy.value))
        await tb.reset()
        tb.expect(f"run {b}: busy, done after reset", (0, 0),
                  (int(tb.dut.busy.value), int(tb.dut.done.value)))
        for offset in (AxiReg.CTRL_STATUS, AxiReg.WDATA_HI, AxiReg.OUT_COUNT,
                       REGS_WINDOW + 4 * Reg.CTRL_STATUS):
            await tb.read_reg(offset)  # the model holds the reset values
        if b % 2 == 0:
            await tb.write_input(q, in_local)
            await tb.run(job["timeout_cycles"], golden, bank)
            q_out.append(await tb.read_output(image.n_out, bank))
        else:
            q_out.append(await tb.stream_run(q, in_local, image.n_out, bank,
                                             job["timeout_cycles"], golden))
        total, per = await tb.read_counters(len(image.layers))
        totals.append(total)
        layers.append(per)
    tb.verify_reads()
    return {"results": [{"q": np.array(q_out, np.int64), "cycles_total": totals,
                         "cycles_per_layer": layers}]}


#: Scenario name -> coroutine ``(tb, job) -> result``.
SCENARIOS = {"load_run_reload": run_axi_job, "races": _races, "stream_lite": _stream_lite,
             "busy_writes": _busy_writes, "reset_mid_run": _reset_mid_run}


@cocotb.test()
async def axi_job(dut):
    """Execute the job named by ``EIE_AXI_JOB`` (see sim_tests/test_axi.py, jobs.py)."""
    job = jobs.load(os.environ[JOB_ENV])
    tb = AxiTB(dut, job["config"], seed=job["seed"], stall=job["stall"])
    await tb.start()
    result = await SCENARIOS[job.get("scenario", "load_run_reload")](tb, job)
    tb.verify_reads()
    result.update(failures=tb.failures, checked=tb.checked)
    jobs.save(job["result"], result)

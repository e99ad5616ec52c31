"""The EIE array top: reset register, host port, program memory, and the composition of
the PE array (``rtl/pe_array.py``) with the tile sequencer (``rtl/tile_sequencer.py``).

See docs/architecture.md for the cycle schedule and docs/rtl.md ("Array top", "Host port")
for the port list, the host address map and the measured pipeline constants.
"""

from __future__ import annotations

from amaranth.hdl import (
    Cat,
    ClockDomain,
    ClockSignal,
    Const,
    DomainRenamer,
    Module,
    ResetSignal,
    Signal,
)
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from contract.config import EIEConfig
from contract.host_map import (
    HOST_DATA_BITS,
    OFFSET_BITS,
    Reg,
    Region,
)

from .common import check_config, check_image, validating
from .host_map import HostAddress, HostSignature
from .pe_array import PEArray, check_pe_class
from .tile_sequencer import TileSequencer, pipeline_constants

__all__ = ["EIE"]


class EIE(wiring.Component):
    """An EIE array of ``config.n_pes`` PEs with its sequencer and host port.

    A run starts with a write of 1 to ``CTRL_STATUS``. Tile ``t`` of the program then runs
    FETCH, DECODE (``PRE`` cycles), preload (``out_local``), compute (LNZD row scan and
    broadcast until every row is scanned and every PE is idle), ``DRAIN``, write-back
    (``out_local``) and ``POST``; after a ``swap`` tile the source and destination
    activation buffers trade places, after the ``last`` tile ``done`` rises and ``busy``
    falls. Cycle counters count exactly the busy cycles (total and per layer).

    Every host access passes one register stage (the command) before it is decoded; a
    read returns ``READ_LATENCY`` cycles after its strobe. Memory writes are ignored while
    busy.

    Parameters
    ----------
    config : EIEConfig
        Architecture parameters (``EIEConfig`` keeps them inside the host address map).
    image : PackedImage, optional
        Baked image: the program, codebook and every PE memory start with its contents.
    pe_class : type, optional
        PE implementation (default :class:`rtl.pe.PE`); tests may substitute a stand-in
        (see :class:`rtl.pe_array.PEArray`).

    Members
    -------
    host : In(HostSignature())
        Host port (docs/rtl.md, "Host port").
    busy : Out(1)
        A run is in progress.
    done : Out(1)
        The last run has completed (cleared by the next start).

    Raises
    ------
    TypeError
        ``config`` is not an :class:`EIEConfig`, or ``pe_class`` lacks a latency attribute.
    ConfigError
        ``image`` was packed for another config.
    """

    def __init__(self, config: EIEConfig, *, image=None, pe_class=None):
        with validating(self):
            self._config = check_config(config)
            self._image = check_image(image, config)
            self._pe_class = check_pe_class(pe_class)
            super().__init__({"host": In(HostSignature()), "busy": Out(1), "done": Out(1)})

    @property
    def config(self) -> EIEConfig:
        return self._config

    @property
    def image(self):
        return self._image

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        # ---- reset register (docs/rtl.md, "Reset") ----------------------------------------
        # Every flop of the array is in the local ``core`` domain, whose reset is ``rst``
        # delayed by one flop. The synchronous-reset muxes then depend on state only, not
        # on a top-level input: on an FPGA the reset net fans out from one flop, and in
        # Verilator no next-state logic lands in the input-combinational region that is
        # re-evaluated on every clock edge.
        m.domains.core = ClockDomain("core", local=True)
        rst_q = Signal(name="rst_q", reset_less=True)
        m.d.sync += rst_q.eq(ResetSignal("sync"))
        m.d.comb += [ClockSignal("core").eq(ClockSignal("sync")),
                     ResetSignal("core").eq(rst_q)]
        core = DomainRenamer("core")

        array = PEArray(config=cfg, pe_class=self._pe_class, image=self._image)
        sequencer = TileSequencer(config=cfg, idle_delay=array.idle_delay,
                                  writeback_latency=array.writeback_latency)
        m.submodules.pe_array = core(array)
        m.submodules.tile_sequencer = core(sequencer)
        # The last elaboration's blocks, for white-box checks in the tests.
        self._blocks = {"array": array, "sequencer": sequencer}

        program_init = []
        if self._image is not None:
            program_init = [d.encode(cfg) for d in self._image.program]
        m.submodules.program_memory = program = memory.Memory(
            shape=cfg.descriptor_bits, depth=cfg.max_tiles, init=program_init)
        prog_rd = program.read_port(domain="core")
        prog_wr = program.write_port(domain="core")

        # ---- host command stage (one register stage for fan-out) -------------------------
        cmd_write = Signal(name="cmd_write")
        cmd_read = Signal(name="cmd_read")
        cmd_addr = Signal(HostAddress, name="cmd_addr")
        cmd_wdata = Signal(HOST_DATA_BITS, name="cmd_wdata")
        m.d.core += [
            cmd_write.eq(self.host.write),
            cmd_read.eq(self.host.read),
            cmd_addr.eq(self.host.addr),
            cmd_wdata.eq(self.host.wdata),
        ]
        # Memory writes are ignored while a run is in progress (they would corrupt it).
        mem_write = cmd_write & ~self.busy

        # ---- composition -----------------------------------------------------------------
        m.d.comb += [
            self.busy.eq(sequencer.busy),
            self.done.eq(sequencer.done),
            sequencer.start.eq(cmd_write & cmd_addr.is_register(Reg.CTRL_STATUS)
                               & cmd_wdata[0]),
            prog_rd.addr.eq(sequencer.pc),
            sequencer.descriptor.eq(prog_rd.data),
            sequencer.scan_running.eq(array.scan_running),
            sequencer.all_idle.eq(array.all_idle),
            array.tile.eq(sequencer.tile),
            array.preload_en.eq(sequencer.preload_en),
            array.preload_row.eq(sequencer.row),
            array.wb_en.eq(sequencer.wb_en),
            array.wb_row.eq(sequencer.row),
            array.src_bank.eq(sequencer.src_bank),
            array.scan_start.eq(sequencer.scan_start),
            array.scan_rows.eq(sequencer.scan_rows),
            array.busy.eq(self.busy),
            array.host.en.eq(mem_write & (cmd_addr.in_region(Region.PE)
                                          | cmd_addr.in_region(Region.CODEBOOK))),
            array.host.addr.eq(cmd_addr.offset),
            array.host.data.eq(cmd_wdata),
            array.host_pe.eq(cmd_addr.pe),
            array.host_sel.eq(cmd_addr.sel),
            array.host_all.eq(cmd_addr.in_region(Region.CODEBOOK)),
        ]

        # Descriptors wider than the 64-bit host data take their upper bits from WDATA_HIGH.
        wdata_high = Signal(max(1, cfg.descriptor_bits - HOST_DATA_BITS), name="wdata_high")
        with m.If(cmd_write & cmd_addr.is_register(Reg.WDATA_HIGH)):
            m.d.core += wdata_high.eq(cmd_wdata)
        m.d.comb += [
            prog_wr.addr.eq(cmd_addr.offset),
            prog_wr.data.eq(Cat(cmd_wdata, wdata_high)),
            prog_wr.en.eq(mem_write & cmd_addr.in_region(Region.PROGRAM)),
        ]

        # ---- host reads: stage 1 (PE scan read / register select), stage 2 (rdata) -------
        read_q = Signal(name="read_q")
        read_region_q = Signal.like(cmd_addr.region, name="read_region_q")
        read_pe_q = Signal.like(cmd_addr.pe, name="read_pe_q")
        read_offset_q = Signal(OFFSET_BITS, name="read_offset_q")
        m.d.core += [read_q.eq(cmd_read), read_region_q.eq(cmd_addr.region),
                     read_pe_q.eq(cmd_addr.pe), read_offset_q.eq(cmd_addr.offset)]
        m.d.comb += array.read_pe.eq(read_pe_q)
        reg_data = Signal(HOST_DATA_BITS, name="reg_data")
        with m.Switch(read_offset_q):
            with m.Case(Reg.CTRL_STATUS):
                m.d.comb += reg_data.eq(Cat(self.busy, self.done))
            with m.Case(Reg.CONFIG_ID):
                m.d.comb += reg_data.eq(Const(cfg.config_id, 32))
            with m.Case(Reg.TOTAL_CYCLES):
                m.d.comb += reg_data.eq(sequencer.total_cycles)
            with m.Case(Reg.N_PES):
                m.d.comb += reg_data.eq(cfg.n_pes)
            for k in range(cfg.max_layers):
                with m.Case(Reg.LAYER_CYCLES + k):
                    m.d.comb += reg_data.eq(sequencer.layer_cycles[k])
        with m.If(read_region_q == Region.PE):
            # Sign-extended activation of the addressed PE.
            m.d.core += self.host.rdata.eq(array.read_data)
        with m.Else():
            m.d.core += self.host.rdata.eq(reg_data)
        m.d.core += self.host.rvalid.eq(read_q)
        return m

    # ---- pipeline constants (docs/rtl.md, "Sequencer and pipeline constants") -------------
    @property
    def pipeline(self) -> dict[str, int]:
        """The constants of docs/architecture.md for this design (golden PIPELINE), from the
        PE class's latencies (:func:`rtl.tile_sequencer.pipeline_constants`)."""
        return pipeline_constants(idle_delay=int(self._pe_class.IDLE_DELAY),
                                  writeback_latency=int(self._pe_class.WRITEBACK_LATENCY))

    @property
    def idle_latency(self) -> int:
        """Cycles from the span ``C`` to the PEs' ``idle`` (the PE class's ``IDLE_DELAY``)."""
        return self.pipeline["DRAIN"] - 1

    @property
    def post_cycles(self) -> int:
        """Cycles after the last write-back request (``POST``)."""
        return self.pipeline["POST"]

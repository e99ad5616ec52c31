"""The EIE array top: program memory, tile sequencer, LNZD row scan, N PEs and host port.

See docs/architecture.md for the cycle schedule and docs/rtl.md ("Array top", "Host port")
for the port list, the host address map and the measured pipeline constants.
"""

from __future__ import annotations

import importlib
from types import SimpleNamespace

from amaranth.hdl import (
    Array,
    Cat,
    ClockDomain,
    ClockSignal,
    Const,
    DomainRenamer,
    Module,
    Mux,
    ResetSignal,
    Signal,
)
from amaranth.lib import enum, memory, wiring
from amaranth.lib.wiring import In, Out

from contract.config import ConfigError, EIEConfig, clog2

from .common import MemSel, check_config, pe_init, tile_layout
from .lnzd import RowScanner

__all__ = ["EIE", "HostSignature", "Region", "Reg", "READ_LATENCY", "host_address"]

#: Cycles from a ``host.read`` strobe to ``host.rvalid`` (and ``host.rdata``).
READ_LATENCY = 3

# Host word-address fields (docs/rtl.md, "Host port").
_REGION_SHIFT, _PE_SHIFT, _SEL_SHIFT, _ADDR_BITS = 28, 20, 17, 17
MAX_HOST_PES = 1 << (_REGION_SHIFT - _PE_SHIFT)


class Region(enum.Enum, shape=4):
    """``host.addr[31:28]``: what a host access targets."""

    REGS = 0        # control/status registers
    PE = 1          # one memory of one PE: addr[27:20] = PE, addr[19:17] = MemSel
    CODEBOOK = 2    # the codebook of every PE at once (broadcast write)
    PROGRAM = 3     # the tile-descriptor program memory


class Reg(enum.IntEnum):
    """Register word addresses inside :attr:`Region.REGS`."""

    CTRL_STATUS = 0x0   # W: bit0 start. R: bit0 busy, bit1 done
    CONFIG_ID = 0x1     # R: EIEConfig.config_id
    TOTAL_CYCLES = 0x2  # R: cycles of the last (or current) run
    N_PES = 0x3         # R: number of PEs
    WDATA_HIGH = 0x4    # W: bits [64:] of the next program writes (descriptors > 64 bits)
    LAYER_CYCLES = 0x100  # R: + k, cycles of layer k of the last run


def host_address(region: Region, addr: int = 0, *, pe: int = 0, sel: MemSel | int = 0) -> int:
    """Host word address of ``addr`` in ``region`` (``pe``/``sel`` for :attr:`Region.PE`)."""
    if not 0 <= addr < (1 << _ADDR_BITS):
        raise ValueError(f"Host address offset must be in [0, 2**{_ADDR_BITS}), not {addr!r}")
    return ((int(Region(region).value) << _REGION_SHIFT) | (int(pe) << _PE_SHIFT)
            | (int(MemSel(sel).value) << _SEL_SHIFT) | int(addr))


class HostSignature(wiring.Signature):
    """Host port: a strobe bus with fixed read latency, from the host's side (the array has
    ``In(HostSignature())``).

    Members
    -------
    addr : Out(32)
        Word address (see :func:`host_address`).
    wdata : Out(64)
        Write data, LSB-aligned, truncated to the target's width.
    write : Out(1)
        Write strobe: one write per cycle, always accepted.
    read : Out(1)
        Read strobe: one read per cycle, always accepted.
    rdata : In(64)
        Read data, valid with ``rvalid``.
    rvalid : In(1)
        High exactly ``READ_LATENCY`` cycles after a ``read`` strobe.
    """

    def __init__(self):
        super().__init__({
            "addr": Out(32),
            "wdata": Out(64),
            "write": Out(1),
            "read": Out(1),
            "rdata": In(64),
            "rvalid": In(1),
        })


class _State(enum.Enum, shape=3):
    IDLE = 0
    FETCH = 1
    DECODE = 2
    PRELOAD = 3
    COMPUTE = 4
    WRITEBACK = 5
    POST = 6


def _pe_class():
    from .pe import PE
    return PE


class EIE(wiring.Component):
    """An EIE array of ``config.n_pes`` PEs with its sequencer and host port.

    A run starts with a write of 1 to ``CTRL_STATUS``. Tile ``t`` of the program then runs
    FETCH, DECODE (``PRE`` cycles), preload (``out_local``), compute (LNZD row scan and
    broadcast until every row is scanned and every PE is idle), ``DRAIN``, write-back
    (``out_local``) and ``POST``; after a ``swap`` tile the source and destination
    activation buffers trade places, after the ``last`` tile ``done`` rises and ``busy``
    falls. Cycle counters count exactly the busy cycles (total and per layer).

    Parameters
    ----------
    config : EIEConfig
        Architecture parameters (at most 256 PEs, memories of at most 2**17 words).
    image : PackedImage, optional
        Baked image: the program, codebook and every PE memory start with its contents.
    pe_class : type, optional
        PE implementation (default :class:`rtl.pe.PE`); tests may substitute a stand-in.

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
        ``config`` is not an :class:`EIEConfig`.
    ConfigError
        The config exceeds the host address map, or ``image`` was packed for another config.
    """

    def __init__(self, config: EIEConfig, *, image=None, pe_class=None):
        self._config = check_config(config)
        if config.n_pes > MAX_HOST_PES:
            raise ConfigError(f"n_pes must be at most {MAX_HOST_PES} for the host port, "
                              f"not {config.n_pes}")
        for name, (_, depth) in config.memory_shapes().items():
            if depth > (1 << _ADDR_BITS):
                raise ConfigError(f"{name} depth must be at most 2**{_ADDR_BITS}, not {depth}")
        if config.act_depth > (1 << _ADDR_BITS):
            raise ConfigError(f"act_depth must be at most 2**{_ADDR_BITS}")
        if image is not None and image.config != config:
            raise ConfigError("image was packed for a different config "
                              f"(config_id {image.config.config_id:#010x}, "
                              f"design {config.config_id:#010x})")
        self._image = image
        self._pe_class = pe_class
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
        n = cfg.n_pes
        pe_class = self._pe_class or _pe_class()
        layout = cfg.descriptor_layout()

        # ---- PEs, scanner, program memory ------------------------------------------------
        pes = []
        for p in range(n):
            init = pe_init(self._image, p) if self._image is not None else None
            pe = pe_class(config=cfg, init=init)
            m.submodules[f"pe{p}"] = core(pe)
            pes.append(pe)
        scanner = RowScanner(n_pes=n, act_bits=cfg.act_bits, depth=cfg.act_depth)
        m.submodules.scanner = core(scanner)

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
        cmd_addr = Signal(32, name="cmd_addr")
        cmd_wdata = Signal(64, name="cmd_wdata")
        m.d.core += [
            cmd_write.eq(self.host.write),
            cmd_read.eq(self.host.read),
            cmd_addr.eq(self.host.addr),
            cmd_wdata.eq(self.host.wdata),
        ]
        region = cmd_addr[_REGION_SHIFT:]
        cmd_pe = cmd_addr[_PE_SHIFT:_REGION_SHIFT]
        cmd_sel = cmd_addr[_SEL_SHIFT:_PE_SHIFT]
        cmd_offset = cmd_addr[:_ADDR_BITS]
        # Memory writes are ignored while a run is in progress (they would corrupt it).
        mem_write = cmd_write & ~self.busy

        # ---- sequencer state -------------------------------------------------------------
        state = Signal(_State, name="state")
        pc = Signal(clog2(cfg.max_tiles), name="pc")
        tile = Signal(tile_layout(cfg), name="tile")
        in_local = Signal(layout["in_local"], name="in_local")
        out_local = Signal(layout["out_local"], name="out_local")
        flag_swap = Signal(name="flag_swap")
        flag_last = Signal(name="flag_last")
        row = Signal(layout["out_local"], name="row")
        src_bank = Signal(name="src_bank")
        post_count = Signal(range(self.post_cycles + 1), name="post_count")

        total_cycles = Signal(32, name="total_cycles")
        layer_count = Signal(32, name="layer_count")
        layer = Signal(range(cfg.max_layers), name="layer")
        layer_cycles = Array(Signal(32, name=f"layer_cycles{k}") for k in range(cfg.max_layers))

        m.d.comb += self.busy.eq(state != _State.IDLE)
        # The last elaboration's blocks, for white-box checks in the tests.
        self._blocks = {"pes": pes, "scanner": scanner,
                        "sequencer": SimpleNamespace(state=state, pc=pc)}
        start = cmd_write & (region == Region.REGS) & (cmd_offset == Reg.CTRL_STATUS) & \
            cmd_wdata[0]

        with m.If(self.busy):
            m.d.core += [total_cycles.eq(total_cycles + 1), layer_count.eq(layer_count + 1)]

        # Scanner done, delayed so that it lines up with the PEs' idle (see docs/rtl.md).
        all_ready = Signal(name="all_ready")
        all_idle = Signal(name="all_idle")
        m.d.comb += [all_ready.eq(Cat(pe.act_in.ready for pe in pes).all()),
                     all_idle.eq(Cat(pe.idle for pe in pes).all())]
        # The PEs raise idle IDLE_DELAY cycles after their last entry; the scanner's
        # "all rows scanned" is delayed by the same amount so that the compute phase ends
        # exactly IDLE_DELAY + 1 cycles after the span C of docs/architecture.md.
        scan_done = ~scanner.running
        for k in range(self.idle_latency):
            delayed = Signal(name=f"scan_done_d{k + 1}")
            m.d.core += delayed.eq(Mux(scanner.start, 0, scan_done))
            scan_done = delayed
        compute_end = Signal(name="compute_end")
        m.d.comb += compute_end.eq(scan_done & all_idle)

        m.d.comb += [prog_rd.addr.eq(pc), scanner.rows.eq(in_local)]

        with m.Switch(state):
            with m.Case(_State.IDLE):
                with m.If(start):
                    m.d.core += [
                        state.eq(_State.FETCH), pc.eq(0), src_bank.eq(0), layer.eq(0),
                        total_cycles.eq(0), layer_count.eq(0), self.done.eq(0),
                    ]
            with m.Case(_State.FETCH):
                m.d.core += state.eq(_State.DECODE)
            with m.Case(_State.DECODE):
                fields, pos = {}, 0
                for name, width in layout.items():
                    fields[name] = prog_rd.data[pos:pos + width]
                    pos += width
                for name in tile.shape().members:
                    m.d.core += getattr(tile, name).eq(fields[name])
                m.d.core += [
                    in_local.eq(fields["in_local"]), out_local.eq(fields["out_local"]),
                    flag_swap.eq(fields["swap"]), flag_last.eq(fields["last"]),
                    row.eq(0), state.eq(_State.PRELOAD),
                ]
            with m.Case(_State.PRELOAD):
                m.d.core += row.eq(row + 1)
                # The scanner loads row 0 (addressed since FETCH) in the last preload cycle.
                with m.If(row + 1 >= out_local):
                    m.d.comb += scanner.start.eq(1)
                    m.d.core += [state.eq(_State.COMPUTE), row.eq(0)]
            with m.Case(_State.COMPUTE):
                # Write-back may start in the cycle after the PEs' idle is seen, so DRAIN is
                # IDLE_DELAY + 1 cycles and needs no state of its own.
                with m.If(compute_end):
                    m.d.core += state.eq(_State.WRITEBACK)
            with m.Case(_State.WRITEBACK):
                m.d.core += row.eq(row + 1)
                with m.If(row + 1 >= out_local):
                    m.d.core += [state.eq(_State.POST), post_count.eq(0)]
            with m.Case(_State.POST):
                m.d.core += post_count.eq(post_count + 1)
                with m.If(post_count + 1 >= self.post_cycles):
                    with m.If(flag_swap | flag_last):
                        m.d.core += [layer_cycles[layer].eq(layer_count + 1),
                                     layer_count.eq(0), layer.eq(layer + 1)]
                    with m.If(flag_swap):
                        m.d.core += src_bank.eq(~src_bank)
                    with m.If(flag_last):
                        m.d.core += [state.eq(_State.IDLE), self.done.eq(1)]
                    with m.Else():
                        m.d.core += [state.eq(_State.FETCH), pc.eq(pc + 1)]

        # ---- PE wiring -------------------------------------------------------------------
        preload_en = state == _State.PRELOAD
        wb_en = state == _State.WRITEBACK
        host_bank = cmd_sel == MemSel.ACT1
        for p, pe in enumerate(pes):
            pe_write = mem_write & (
                ((region == Region.PE) & (cmd_pe == p))
                | (region == Region.CODEBOOK))
            m.d.comb += [
                pe.act_in.valid.eq(scanner.o.valid & all_ready),
                pe.act_in.payload.value.eq(scanner.o.payload.value),
                pe.act_in.payload.index.eq(scanner.o.payload.index),
                pe.tile.eq(tile),
                pe.preload_en.eq(preload_en),
                pe.preload_row.eq(row),
                pe.wb_en.eq(wb_en),
                pe.wb_row.eq(row),
                pe.dst_bank.eq(~src_bank),
                pe.host_we.eq(pe_write),
                pe.host_addr.eq(cmd_offset),
                pe.host_wdata.eq(cmd_wdata),
                scanner.row_data[p].eq(pe.scan_data),
            ]
            with m.If(region == Region.CODEBOOK):
                m.d.comb += pe.host_sel.eq(MemSel.CODEBOOK)
            with m.Else():
                m.d.comb += pe.host_sel.eq(cmd_sel)
            with m.If(self.busy):
                m.d.comb += [pe.scan_bank.eq(src_bank), pe.scan_addr.eq(scanner.row_addr)]
            with m.Else():
                m.d.comb += [pe.scan_bank.eq(host_bank), pe.scan_addr.eq(cmd_offset)]
        m.d.comb += scanner.o.ready.eq(all_ready)

        # Descriptors wider than the 64-bit host data take their upper bits from WDATA_HIGH.
        wdata_high = Signal(max(1, cfg.descriptor_bits - 64), name="wdata_high")
        with m.If(cmd_write & (region == Region.REGS) & (cmd_offset == Reg.WDATA_HIGH)):
            m.d.core += wdata_high.eq(cmd_wdata)
        m.d.comb += [
            prog_wr.addr.eq(cmd_offset),
            prog_wr.data.eq(Cat(cmd_wdata, wdata_high)),
            prog_wr.en.eq(mem_write & (region == Region.PROGRAM)),
        ]

        # ---- host reads: stage 1 (PE scan read / register select), stage 2 (rdata) -------
        read_q = Signal(name="read_q")
        read_region_q = Signal(4, name="read_region_q")
        read_pe_q = Signal(8, name="read_pe_q")
        read_offset_q = Signal(_ADDR_BITS, name="read_offset_q")
        m.d.core += [read_q.eq(cmd_read), read_region_q.eq(region), read_pe_q.eq(cmd_pe),
                     read_offset_q.eq(cmd_offset)]
        scan_data = Array(pe.scan_data for pe in pes)
        reg_data = Signal(64, name="reg_data")
        with m.Switch(read_offset_q):
            with m.Case(Reg.CTRL_STATUS):
                m.d.comb += reg_data.eq(Cat(self.busy, self.done))
            with m.Case(Reg.CONFIG_ID):
                m.d.comb += reg_data.eq(Const(cfg.config_id, 32))
            with m.Case(Reg.TOTAL_CYCLES):
                m.d.comb += reg_data.eq(total_cycles)
            with m.Case(Reg.N_PES):
                m.d.comb += reg_data.eq(n)
            for k in range(cfg.max_layers):
                with m.Case(Reg.LAYER_CYCLES + k):
                    m.d.comb += reg_data.eq(layer_cycles[k])
        with m.If(read_region_q == Region.PE):
            # Sign-extended activation of the addressed PE.
            m.d.core += self.host.rdata.eq(scan_data[read_pe_q].as_signed())
        with m.Else():
            m.d.core += self.host.rdata.eq(reg_data)
        m.d.core += self.host.rvalid.eq(read_q)
        return m

    # ---- pipeline constants (docs/rtl.md, "Array top") ------------------------------------
    def _pe_constant(self, name: str) -> int:
        pe_class = self._pe_class or _pe_class()
        value = getattr(pe_class, name, None)
        if value is None:
            value = getattr(importlib.import_module(pe_class.__module__), name)
        return int(value)

    @property
    def idle_latency(self) -> int:
        """Cycles from the span ``C`` to the PEs' ``idle`` (``rtl.pe.IDLE_DELAY``)."""
        return self._pe_constant("IDLE_DELAY")

    @property
    def post_cycles(self) -> int:
        """Cycles after the last write-back request so that the next tile's first scan read
        (presented in DECODE) and a host read after ``done`` see the written row."""
        return max(1, self._pe_constant("WRITEBACK_LATENCY") - 2)

    @property
    def pipeline(self) -> dict[str, int]:
        """The constants of docs/architecture.md for this design (golden PIPELINE)."""
        return {"START": 0, "PRE": 2, "DRAIN": self.idle_latency + 1,
                "POST": self.post_cycles}

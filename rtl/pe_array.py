"""The PE array: ``n_pes`` PEs, the row scanner with its LNZD, the broadcast to every PE,
the host-write fan-out and the activation read mux (docs/rtl.md, "Array top")."""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from contract.host_map import HOST_DATA_BITS, OFFSET_BITS, PE_SHIFT, REGION_SHIFT, MemSel

from .common import HostWrite, check_config, check_image, pe_init, tile_layout, validating
from .lnzd import RowScanner
from .pe import PE
from .wide_scanner import WideRowScanner

__all__ = ["PEArray", "PE_LATENCIES", "check_pe_class"]

#: Class attributes a PE class must have (cycles, see :class:`rtl.pe.PE`).
PE_LATENCIES = ("IDLE_DELAY", "WRITEBACK_LATENCY")


def check_pe_class(pe_class) -> type:
    """``pe_class``, or :class:`rtl.pe.PE` for ``None``; ``TypeError`` unless it has the
    integer class attributes :data:`PE_LATENCIES`."""
    pe_class = PE if pe_class is None else pe_class
    for name in PE_LATENCIES:
        value = getattr(pe_class, name, None)
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"PE class must have an integer {name} attribute, "
                            f"not {pe_class!r}")
    return pe_class


class PEArray(wiring.Component):
    """``config.n_pes`` PEs fed by one row scan of the source activation buffer.

    The scanner (:class:`rtl.lnzd.RowScanner`) reads activation row ``l`` (local address
    ``l`` of every PE's source bank) and broadcasts its non-zeros ``(a_j, j = l*N + p)``;
    a broadcast is valid to the PEs only in a cycle where every PE is ready
    (``act_in.valid = o.valid & all_ready``, so all PEs take it in the same cycle). All
    PEs share ``tile``, the preload and write-back requests and the destination bank
    (``~src_bank``). While ``busy`` the scanner owns the PEs' activation read ports;
    otherwise they read ``host.addr`` of bank ``host_sel == ACT1`` for the host, and
    ``read_data`` shows PE ``read_pe``'s word of the previous cycle's address.
    Host writes take effect at the end of their cycle.

    Parameters
    ----------
    config : EIEConfig
    pe_class : type, optional
        PE implementation (default :class:`rtl.pe.PE`), constructed as
        ``pe_class(config=config, init=...)``, with :class:`rtl.pe.PE`'s ports and the
        class attributes ``IDLE_DELAY`` and ``WRITEBACK_LATENCY``.
    image : PackedImage, optional
        Baked image: every PE's memories start with its contents
        (:func:`rtl.common.pe_init`).

    Members
    -------
    tile : In(tile_layout(config))
    preload_en : In(1)
    preload_row : In(range(acc_depth))
    wb_en : In(1)
    wb_row : In(range(acc_depth))
    src_bank : In(1)
        Bank the scan reads; write-back goes to the other.
    scan_start : In(1)
        Start the row scan of ``scan_rows`` rows (row 0 must have been addressed in the
        previous cycle, which holds whenever the scan is not running).
    scan_rows : In(in_local width)
    scan_running : Out(1)
        The scan is in progress (``RowScanner.running``).
    all_idle : Out(1)
        Every PE is idle.
    busy : In(1)
        A run is in progress: the scanner owns the activation read ports.
    host : In(HostWrite.Signature(OFFSET_BITS, 64))
        Host write of a PE memory.
    host_pe : In(8)
        PE the write goes to (a number without a PE writes nothing).
    host_sel : In(MemSel)
        Memory the write goes to, and ``ACT1`` selects the bank of host reads.
    host_all : In(1)
        Write the codebook of every PE (``host_pe`` and ``host_sel`` are ignored).
    read_pe : In(8)
        PE whose ``scan_data`` ``read_data`` shows.
    read_data : Out(signed(act_bits))

    Raises
    ------
    TypeError
        ``config`` is not an ``EIEConfig``, or ``pe_class`` lacks a latency attribute.
    ConfigError
        ``image`` was packed for another config.
    """

    def __init__(self, *, config, pe_class=None, image=None):
        with validating(self):
            self._config = check_config(config)
            self._pe_class = check_pe_class(pe_class)
            self._image = check_image(image, config)
            super().__init__({
                "tile": In(tile_layout(config)),
                "preload_en": In(1),
                "preload_row": In(range(config.acc_depth)),
                "wb_en": In(1),
                "wb_row": In(range(config.acc_depth)),
                "src_bank": In(1),
                "scan_start": In(1),
                "scan_rows": In(config.descriptor_layout()["in_local"]),
                "scan_running": Out(1),
                "all_idle": Out(1),
                "busy": In(1),
                "host": In(HostWrite.Signature(OFFSET_BITS, HOST_DATA_BITS)),
                "host_pe": In(REGION_SHIFT - PE_SHIFT),
                "host_sel": In(MemSel),
                "host_all": In(1),
                "read_pe": In(REGION_SHIFT - PE_SHIFT),
                "read_data": Out(signed(config.act_bits)),
            })

    @property
    def config(self):
        return self._config

    @property
    def pe_class(self) -> type:
        return self._pe_class

    @property
    def idle_delay(self) -> int:
        """``pe_class.IDLE_DELAY``."""
        return int(self._pe_class.IDLE_DELAY)

    @property
    def writeback_latency(self) -> int:
        """``pe_class.WRITEBACK_LATENCY``."""
        return int(self._pe_class.WRITEBACK_LATENCY)

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        n = cfg.n_pes
        pes = []
        for p in range(n):
            init = pe_init(self._image, p) if self._image is not None else None
            pe = self._pe_class(config=cfg, init=init)
            m.submodules[f"pe{p}"] = pe
            pes.append(pe)
        lanes = cfg.broadcast_width
        if lanes == 1:
            scanner = RowScanner(n_pes=n, act_bits=cfg.act_bits, depth=cfg.act_depth)
        else:
            scanner = WideRowScanner(n_pes=n, act_bits=cfg.act_bits, depth=cfg.act_depth,
                                     width=lanes)
        m.submodules.scanner = scanner
        # The last elaboration's blocks, for white-box checks in the tests.
        self._blocks = {"pes": pes, "scanner": scanner}

        # With B lanes, all_ready[i]: every PE has room for i + 1 columns (a thermometer,
        # as each PE's ready is); lane i goes to the PEs only then, so all take the same.
        all_ready = Signal(lanes, name="all_ready")
        if lanes == 1:
            m.d.comb += all_ready.eq(Cat(pe.act_in.ready for pe in pes).all())
        else:
            for lane in range(lanes):
                m.d.comb += all_ready[lane].eq(Cat(pe.act_in.ready[lane] for pe in pes).all())
        m.d.comb += [
            self.all_idle.eq(Cat(pe.idle for pe in pes).all()),
            self.scan_running.eq(scanner.running),
            scanner.start.eq(self.scan_start),
            scanner.rows.eq(self.scan_rows),
            scanner.o.ready.eq(all_ready),
        ]
        host_bank = self.host_sel == MemSel.ACT1
        for p, pe in enumerate(pes):
            if lanes == 1:
                payload = [pe.act_in.payload.value.eq(scanner.o.payload.value),
                           pe.act_in.payload.index.eq(scanner.o.payload.index)]
            else:
                payload = [pe.act_in.payload.eq(scanner.o.payload)]
            m.d.comb += [
                pe.act_in.valid.eq(scanner.o.valid & all_ready),
                *payload,
                pe.tile.eq(self.tile),
                pe.preload_en.eq(self.preload_en),
                pe.preload_row.eq(self.preload_row),
                pe.wb_en.eq(self.wb_en),
                pe.wb_row.eq(self.wb_row),
                pe.dst_bank.eq(~self.src_bank),
                pe.host.en.eq(self.host.en & (self.host_all | (self.host_pe == p))),
                pe.host.addr.eq(self.host.addr),
                pe.host.data.eq(self.host.data),
                scanner.row_data[p].eq(pe.scan_data),
            ]
            with m.If(self.host_all):
                m.d.comb += pe.host_sel.eq(MemSel.CODEBOOK)
            with m.Else():
                m.d.comb += pe.host_sel.eq(self.host_sel)
            with m.If(self.busy):
                m.d.comb += [pe.scan_bank.eq(self.src_bank), pe.scan_addr.eq(scanner.row_addr)]
            with m.Else():
                m.d.comb += [pe.scan_bank.eq(host_bank), pe.scan_addr.eq(self.host.addr)]
        m.d.comb += self.read_data.eq(Array(pe.scan_data for pe in pes)[self.read_pe])
        return m

"""The PE array of an ESE engine: N PE positions (``rtl/ese_pe.py``), each serving C
channels, fed by EIE's row scanner and LNZD (``rtl/lnzd.py``) over the OR of the
channels' non-zeros (docs/ese.md, "RTL")."""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from contract.config import clog2
from contract.lstm_config import ESEConfig
from contract.lstm_program import ChanSel

from .common import HostWrite, tile_layout, validating
from .ese_common import Mode, cell_tile_layout
from .ese_pe import ESEPE
from .lnzd import RowScanner

__all__ = ["ESEArray"]


class ESEArray(wiring.Component):
    """``n_pes`` PE positions of ``channels`` channels, one row scan.

    The scanner reads row ``l`` at activation address ``scan_base + l`` of every channel
    and treats a PE's C values as one word: it is non-zero when any channel's value is,
    so a column is broadcast when it is non-zero in any of the ``active`` first channels
    (the others hold only zeros: the PE loads, writes back and updates only active
    channels after the clear that starts every run). All PEs take a broadcast in the same cycle.
    While ``scan_mode`` is low the activation memories are read at ``raddr`` instead
    (copies, host reads).

    Host: ``host`` writes PE ``host_pe`` (``host_all``: every PE) with the meaning of
    :class:`rtl.ese_pe.ESEPE`'s host members; ``read_data`` is PE ``read_pe``'s
    ``host_rdata``.
    """

    def __init__(self, *, config: ESEConfig, ring_depth: int, slot_words: int,
                 inits=None):
        with validating(self):
            if not isinstance(config, ESEConfig):
                raise TypeError(f"Config must be an ESEConfig, not {config!r}")
            self._config = config
            self._ring_depth, self._slot_words = ring_depth, slot_words
            self._inits = inits
            probe = ESEPE(config=config, ring_depth=ring_depth, slot_words=slot_words)
            probe._MustUse__silence = True
            ch = config.channel
            sig = probe.signature.members
            self._host_bits = sig["host"].signature.addr_width
            super().__init__({
                "tile": In(tile_layout(ch)),
                "preload_en": In(1), "preload_row": In(range(ch.acc_depth)),
                "wb_en": In(1), "wb_row": In(range(ch.acc_depth)),
                "wb_channel": In(range(config.channels)),
                "gate": In(1),
                "cell_tile": In(cell_tile_layout(config)),
                "scan_start": In(1),
                "scan_rows": In(ch.descriptor_layout()["in_local"]),
                "scan_running": Out(1),
                "scan_mode": In(1),
                "scan_base": In(clog2(ch.act_depth)),
                "raddr": In(clog2(ch.act_depth)),
                "all_idle": Out(1),
                "active": In(range(config.channels + 1)),
                "mode": In(Mode),
                "xfer_en": In(1),
                "xfer_src": In(sig["xfer_src"].shape),
                "xfer_dst": In(sig["xfer_dst"].shape),
                "out_base": In(sig["out_base"].shape),
                "out_words": In(sig["out_words"].shape),
                "slot": In(sig["slot"].shape),
                "host": In(HostWrite.Signature(self._host_bits, 64)),
                "host_pe": In(8), "host_all": In(1),
                "host_sel": In(3), "host_chan_mem": In(1), "host_chan_sel": In(ChanSel),
                "host_channel": In(range(config.channels)), "host_table": In(1),
                "host_raddr": In(sig["host_raddr"].shape), "host_rsel": In(ChanSel),
                "read_pe": In(8),
                "read_data": Out(64),
            })

    def elaborate(self, platform):
        cfg = self._config
        ch, n, nch = cfg.channel, cfg.n_pes, cfg.channels
        m = Module()
        pes = []
        for p in range(n):
            init = self._inits[p] if self._inits is not None else None
            pe = ESEPE(config=cfg, ring_depth=self._ring_depth, slot_words=self._slot_words,
                       init=init)
            m.submodules[f"pe{p}"] = pe
            pes.append(pe)
        m.submodules.scanner = scanner = RowScanner(n_pes=n, act_bits=ch.act_bits * nch,
                                                    depth=ch.act_depth)
        all_ready = Signal()
        m.d.comb += [
            all_ready.eq(Cat(pe.act_in.ready for pe in pes).all()),
            self.all_idle.eq(Cat(pe.idle for pe in pes).all()),
            self.scan_running.eq(scanner.running),
            scanner.start.eq(self.scan_start),
            scanner.rows.eq(self.scan_rows),
            scanner.o.ready.eq(all_ready),
        ]
        raddr = Signal(clog2(ch.act_depth))
        m.d.comb += raddr.eq(Mux(self.scan_mode, self.scan_base + scanner.row_addr,
                                 self.raddr))
        for p, pe in enumerate(pes):
            m.d.comb += [
                # no mask: a channel outside ``active`` holds only zeros (rtl/ese_pe.py)
                scanner.row_data[p].eq(pe.act_rdata.as_value()),
                pe.act_in.valid.eq(scanner.o.valid & all_ready),
                pe.act_in.payload.values.eq(scanner.o.payload.value),
                pe.act_in.payload.index.eq(scanner.o.payload.index),
                pe.act_raddr.eq(raddr),
                pe.host.en.eq(self.host.en & (self.host_all | (self.host_pe == p))),
            ]
            for name in ("tile", "preload_en", "preload_row", "wb_en", "wb_row", "wb_channel",
                         "gate",
                         "cell_tile", "mode", "xfer_en", "xfer_src", "xfer_dst", "out_base",
                         "out_words", "slot", "active", "host_sel", "host_chan_mem",
                         "host_chan_sel",
                         "host_channel", "host_table", "host_raddr", "host_rsel"):
                m.d.comb += getattr(pe, name).eq(getattr(self, name))
            m.d.comb += [pe.host.addr.eq(self.host.addr), pe.host.data.eq(self.host.data)]
        read_pe_q = Signal(8)
        m.d.sync += read_pe_q.eq(self.read_pe)
        m.d.comb += self.read_data.eq(Array(pe.host_rdata for pe in pes)[read_pe_q])
        return m

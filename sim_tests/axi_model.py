"""A model of the AXI4-Lite register map and a monitor that feeds it (sim_tests/axi_tb.py).

:class:`BusMonitor` watches the ``s_axil__*`` port of the AxiHost top, checks the bus
rules of docs/register-map.md ("Bus behaviour": awready with wready, one transaction at
a time, writes win a tie) and applies every accepted transaction, in acceptance order, to
:class:`LiteModel`, which knows what each register reads according to the document. The
order is the design's choice (only a tie is fixed by the document); the values are not.
"""

from __future__ import annotations

from cocotb.triggers import FallingEdge

from contract.host_map import (
    AXI_ID,
    REGS_WINDOW,
    AxiReg,
    MemSel,
    Reg,
    Region,
    host_address,
    split_address,
)

__all__ = ["LiteModel", "BusMonitor", "UNMAPPED", "UNMAPPED_HIGH", "act_address",
           "register_name"]

_MASK32 = (1 << 32) - 1
_MASK64 = (1 << 64) - 1
#: An offset inside the AXI register page that no register uses (reads 0, writes ignored).
UNMAPPED = 0x0FFC
#: An offset above the register window: nothing is mapped there (it must not alias the
#: register page: 0x2008 would be CTRL_STATUS if only the low 12 bits were decoded).
UNMAPPED_HIGH = 2 * REGS_WINDOW + AxiReg.CTRL_STATUS


def _in_window(offset: int) -> bool:
    return REGS_WINDOW <= offset < 2 * REGS_WINDOW


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def register_name(offset: int) -> str:
    """Register name of an AXI byte offset, for messages."""
    if _in_window(offset):
        word = (offset - REGS_WINDOW) >> 2
        names = {int(r): r.name for r in Reg}
        return f"window {names.get(word, hex(word))}"
    return AxiReg(offset).name if offset in set(AxiReg) else f"{offset:#x}"


def act_address(config, j: int, bank: int) -> int:
    """Array word address of activation ``j`` of buffer ``bank`` (PE ``j mod N``)."""
    n = config.n_pes
    return host_address(Region.PE, j // n, pe=j % n, sel=MemSel.ACT1 if bank else MemSel.ACT0)


class LiteModel:
    """The AXI4-Lite registers as docs/register-map.md defines them.

    :class:`BusMonitor` applies each accepted transaction in bus order; :meth:`read`
    returns what the document says a read returns, or ``None`` where it leaves the value
    open or the model does not know it (such reads are not checked). The model knows the
    activation words written through ``DATA_LO`` while no run is in progress (a write
    during a run is ignored: docs/rtl.md, "Host port") and the outputs the test seeds with
    :meth:`finish`; a run makes every activation word unknown.
    """

    def __init__(self, config, *, streams: bool):
        self.config = config
        self.streams = streams
        self.mem: dict[int, int] = {}  # array word address -> 64-bit value a read returns
        self.running = False
        self.reset()

    def reset(self):
        """The ``rst`` pin: registers to their documented reset values, memories kept."""
        self.host_addr = None  # reset value not documented
        self.wdata_hi = 0      # "sticky, 0 after reset"
        self.rdata_hi = None
        self.status = 0        # neither busy nor done
        self.stream_ctrl = self.out_bank = None
        self.out_count = 0     # "reset 0"
        self.running = False

    def start(self):
        """A run starts: status unknown until done, the activation buffers change."""
        self.running = True
        self.status = None
        self.mem.clear()

    def finish(self, outputs=None, bank: int = 0):
        """The run ended (``done`` seen, busy low); ``outputs`` (golden) are in ``bank``."""
        self.running = False
        self.status = 2
        for j, value in enumerate([] if outputs is None else outputs):
            self.mem[act_address(self.config, j, bank)] = int(value) & _MASK64

    def _is_act(self, addr: int) -> bool:
        region, pe, sel, offset = split_address(addr)
        return (region == Region.PE and pe < self.config.n_pes
                and sel in (MemSel.ACT0, MemSel.ACT1) and offset < self.config.act_depth)

    def write(self, offset: int, data: int):
        if offset >= 2 * REGS_WINDOW:
            return
        if _in_window(offset):
            if (offset - REGS_WINDOW) >> 2 == Reg.CTRL_STATUS and data & 1 and not self.running:
                self.start()
            return
        if offset == AxiReg.CTRL_STATUS:
            if data & 1 and not self.running:
                self.start()
        elif offset == AxiReg.HOST_ADDR:
            self.host_addr = data
        elif offset == AxiReg.DATA_LO:
            if self.host_addr is None:
                return
            if not self.running and self._is_act(self.host_addr):
                # LSB-aligned, truncated to the activation width, read back sign-extended
                word = self.wdata_hi << 32 | data
                self.mem[self.host_addr] = _signed(word, self.config.act_bits) & _MASK64
            self.host_addr = (self.host_addr + 1) & _MASK32
        elif offset == AxiReg.WDATA_HI:
            self.wdata_hi = data
        elif self.streams and offset == AxiReg.STREAM_CTRL:
            self.stream_ctrl = data & 3
        elif self.streams and offset == AxiReg.OUT_COUNT:
            self.out_count = data
        elif self.streams and offset == AxiReg.OUT_BANK:
            self.out_bank = data & 1

    def read(self, offset: int) -> int | None:
        cfg = self.config
        if offset >= 2 * REGS_WINDOW:
            return 0
        if _in_window(offset):
            # A window read is an array read: RDATA_HI latches the upper half of the
            # register word, 0 for these 32-bit registers (unknown for the others).
            word = (offset - REGS_WINDOW) >> 2
            known = word in (Reg.CTRL_STATUS, Reg.CONFIG_ID, Reg.TOTAL_CYCLES, Reg.N_PES)
            known |= Reg.LAYER_CYCLES <= word < Reg.LAYER_CYCLES + cfg.max_layers
            self.rdata_hi = 0 if known else None
            return {Reg.CTRL_STATUS: self.status, Reg.CONFIG_ID: cfg.config_id,
                    Reg.N_PES: cfg.n_pes}.get(word)
        if offset == AxiReg.DATA_LO:
            if self.host_addr is None:
                self.rdata_hi = None
                return None
            value = None if self.running else self.mem.get(self.host_addr)
            self.host_addr = (self.host_addr + 1) & _MASK32
            self.rdata_hi = None if value is None else value >> 32
            return None if value is None else value & _MASK32
        fixed = {AxiReg.ID: AXI_ID, AxiReg.CONFIG_ID: cfg.config_id,
                 AxiReg.CTRL_STATUS: self.status, AxiReg.N_PES: cfg.n_pes,
                 AxiReg.HOST_ADDR: self.host_addr, AxiReg.WDATA_HI: self.wdata_hi,
                 AxiReg.RDATA_HI: self.rdata_hi}
        if self.streams:
            fixed.update({AxiReg.STREAM_CTRL: self.stream_ctrl,
                          AxiReg.OUT_COUNT: self.out_count, AxiReg.OUT_BANK: self.out_bank})
        return fixed.get(offset, 0)  # unmapped reads return 0


class BusMonitor:
    """Watches the AXI4-Lite port; feeds :class:`LiteModel` in acceptance order.

    Sampled on the falling edge, i.e. what the subordinate sees at the next rising edge.
    Records, per accepted read, its cycle, address and the model's value, counts *ties* (a write
    (``awvalid`` and ``wvalid``) and a read (``arvalid``) both presented when one of them
    is accepted) and notes every breach of docs/register-map.md's bus rules: ``awready``
    and ``wready`` rise together, one transaction at a time, writes win a tie.
    """

    def __init__(self, dut, model: LiteModel):
        self.clk = dut.clk
        self.model = model
        self.s = {name: getattr(dut, f"s_axil__{name}") for name in (
            "awvalid", "awready", "awaddr", "wvalid", "wready", "wdata", "arvalid",
            "arready", "araddr")}
        self.reads: list[tuple[int, int, int | None]] = []  # (cycle, address, model value)
        self.ties = 0
        # AXI-Lite transactions accepted while an s_axis beat / m_axis word was offered
        self.during_beats = 0
        self.during_outputs = 0
        self._stream = {name: getattr(dut, f"{name}__tvalid") for name in ("s_axis", "m_axis")
                        if hasattr(dut, f"{name}__tvalid")}
        self.errors: list[str] = []
        self.cycle = 0

    async def run(self):
        s = self.s
        while True:
            await FallingEdge(self.clk)
            self.cycle += 1
            v = {name: int(sig.value) for name, sig in s.items()
                 if name not in ("awaddr", "wdata", "araddr")}
            aw = v["awvalid"] and v["awready"]
            w = v["wvalid"] and v["wready"]
            ar = v["arvalid"] and v["arready"]
            if aw != w:
                self.errors.append(f"cycle {self.cycle}: AW and W accepted in different "
                                   f"cycles (awready and wready rise together)")
            if aw and ar:
                self.errors.append(f"cycle {self.cycle}: a read and a write accepted in one "
                                   f"cycle (one transaction at a time)")
            write_presented = v["awvalid"] and v["wvalid"]
            if write_presented and v["arvalid"] and (aw or ar):
                self.ties += 1
                if ar:
                    self.errors.append(f"cycle {self.cycle}: read of {int(s['araddr'].value):#x}"
                                       f" accepted while a write was presented (writes win "
                                       f"a tie)")
            if (aw or ar) and self._stream:
                self.during_beats += int(self._stream["s_axis"].value)
                self.during_outputs += int(self._stream["m_axis"].value)
            if aw and w:
                self.model.write(int(s["awaddr"].value), int(s["wdata"].value))
            if ar:
                addr = int(s["araddr"].value)
                self.reads.append((self.cycle, addr, self.model.read(addr)))

"""The hardware-manager run of a built project: ``hw_run.tcl`` and its transaction file
``hw_run.txn`` (docs/board-run.md, "Over JTAG").

``hw_run.tcl`` programs the bitstream and plays ``hw_run.txn`` over the JTAG-to-AXI
master of the board top (``jtag_axi_0``, hardware object ``hw_axi_1``) with
``create_hw_axi_txn`` / ``run_hw_axi``. Every offset and value in the file is computed
here from the contract (``contract.host_map``), following the register protocol of
``eie.driver.Driver`` (docs/register-map.md): the Tcl script holds no offsets of its own,
so the two cannot drift. One line per AXI access::

    S <section>                       start of a section (load, input, run, outputs)
    W <offset> <value>                write (hex, no 0x)
    X <offset> <value> <name>         read, must equal value (else the run fails)
    P <offset> <mask> <value> <polls> poll until (read & mask) == value
    O <offset> <index> <expected>     read output <index>: signed, compare to expected
    R <offset> <name>                 read and print (cycle counters)

The expected outputs come from the bit-exact golden model on the file's input.
Only EIE (MLP) images are covered; an ESE project gets no transaction file (its frame
protocol polls per frame; ``eie.driver`` on a host CPU runs it, docs/board-run.md).
"""

from __future__ import annotations

import numpy as np

from contract.host_map import (
    AXI_ID,
    REGS_WINDOW,
    AxiReg,
    MemSel,
    Reg,
    Region,
    host_address,
)
from contract.image import PackedImage
from golden.cycle_model import cycles as model_cycles
from golden.model import run as golden_run

from .top import JTAG_AXI_MODULE

__all__ = ["host_writes", "transactions", "default_input", "hw_run_tcl", "HW_AXI",
           "POLL_LIMIT"]

#: The hardware manager's name of the first JTAG-to-AXI master.
HW_AXI = "hw_axi_1"
#: Status polls before the run is declared hung (one JTAG read takes about a millisecond).
POLL_LIMIT = 100000
_MASK32 = (1 << 32) - 1
_MASK64 = (1 << 64) - 1
_BUSY, _DONE = 1, 2


def host_writes(image: PackedImage) -> list[tuple[str, int, int, bool]]:
    """The array writes that load ``image`` into all-zero memories, in the driver's order:
    ``("host", word address, value, wide)`` for a memory word (``DATA_LO``; ``wide``: the
    memory is wider than 32 bits, so ``WDATA_HI`` matters) and ``("reg", Reg, value,
    False)`` for an array register (``WDATA_HIGH`` of a descriptor wider than 64 bits).
    Zero words are skipped (the memories are zero after configuration when no image is
    baked, and hold the image when one is)."""
    cfg = image.config
    out = []
    for p in range(cfg.n_pes):
        for name, sel in (("spmat", MemSel.SPMAT), ("ptr_even", MemSel.PTR_EVEN),
                          ("ptr_odd", MemSel.PTR_ODD), ("bias", MemSel.BIAS)):
            words = np.asarray(getattr(image, name)[p])
            for a in np.flatnonzero(words):
                out.append(("host", host_address(Region.PE, int(a), pe=p, sel=sel),
                            int(words[a]) & _MASK64, name == "spmat"))
    for a in np.flatnonzero(np.asarray(image.codebook)):
        out.append(("host", host_address(Region.CODEBOOK, int(a)),
                    int(image.codebook[a]) & _MASK64, False))
    for t, d in enumerate(image.program):
        word = d.encode(cfg)
        if cfg.descriptor_bits > 64:
            out.append(("reg", Reg.WDATA_HIGH, word >> 64, False))
        out.append(("host", host_address(Region.PROGRAM, t), word & _MASK64, True))
    return out


def default_input(image: PackedImage, seed: int = 0) -> np.ndarray:
    """A reproducible input vector: uniform raw activations over the lower half of the
    positive range (``seed`` of ``numpy.random.default_rng``)."""
    hi = 1 << (image.config.act_bits - 2)
    return np.random.default_rng(seed).integers(0, hi + 1, image.n_in).astype(np.int64)


class _Axi:
    """Turns host accesses into AXI4-Lite accesses, mirroring ``HOST_ADDR`` (it increments
    after every ``DATA_LO`` access) and ``WDATA_HI`` (sticky, 0 after reset) as
    ``eie.driver.Driver`` does."""

    def __init__(self):
        self.lines: list[str] = []
        self._addr, self._hi = None, 0

    def w(self, offset: int, value: int) -> None:
        self.lines.append(f"W {offset:08x} {value & _MASK32:08x}")

    def section(self, name: str) -> None:
        self.lines.append(f"S {name}")

    def _set_addr(self, addr: int) -> None:
        if self._addr != addr:
            self.w(AxiReg.HOST_ADDR, addr)
        self._addr = (addr + 1) & _MASK32

    def host_write(self, addr: int, value: int, *, wide: bool = True) -> None:
        value &= _MASK64
        if wide and self._hi != value >> 32:
            self.w(AxiReg.WDATA_HI, value >> 32)
            self._hi = value >> 32
        self._set_addr(addr)
        self.w(AxiReg.DATA_LO, value)

    def reg_write(self, number: int, value: int) -> None:
        self.w(REGS_WINDOW + 4 * int(number), value)

    def host_read(self, addr: int, index: int, expected: int) -> None:
        self._set_addr(addr)
        self.lines.append(f"O {AxiReg.DATA_LO:08x} {index} {int(expected)}")


def transactions(image: PackedImage, x_q=None, *, load: bool = True) -> list[str]:
    """The lines of ``hw_run.txn`` for one run of ``image`` on input ``x_q`` (raw
    activations, default :func:`default_input`): check the design, load the image
    (``load``), write the input, start, poll done, read and check the outputs, read the
    cycle counters.

    Raises
    ------
    ValueError
        ``x_q`` is not ``n_in`` activations.
    """
    cfg = image.config
    x = default_input(image) if x_q is None else np.asarray(x_q, np.int64)
    if x.shape != (image.n_in,):
        raise ValueError(f"the input must have shape [{image.n_in}], not {list(x.shape)}")
    golden = golden_run(image, x)
    want = np.asarray(golden.layer_q[-1]).reshape(-1)      # hardware order
    cyc = model_cycles(image, x)
    axi = _Axi()
    axi.lines += [f"# {JTAG_AXI_MODULE} transactions for config_id {cfg.config_id:#010x} "
                  f"({cfg.n_pes} PEs, {len(image.layers)} layers, {image.n_in} -> "
                  f"{image.n_out}); generated by boards/hw_run.py",
                  f"# input (raw activations): {' '.join(str(int(v)) for v in x)}",
                  f"# cycle model: total {cyc.total}",
                  "S check",
                  f"X {AxiReg.ID:08x} {AXI_ID:08x} ID",
                  f"X {AxiReg.CONFIG_ID:08x} {cfg.config_id:08x} CONFIG_ID",
                  f"X {AxiReg.N_PES:08x} {cfg.n_pes:08x} N_PES",
                  # not busy (a run left going by an earlier session would clash)
                  f"P {REGS_WINDOW + 4 * Reg.CTRL_STATUS:08x} {_BUSY:08x} 00000000 100"]
    if load:
        axi.section("load")
        for kind, where, value, wide in host_writes(image):
            if kind == "reg":
                axi.reg_write(where, value)
            else:
                axi.host_write(where, value, wide=wide)
    axi.section("input")
    n, in_local = cfg.n_pes, image.program[0].in_local
    padded = np.zeros(in_local * n, np.int64)
    padded[:image.n_in] = x
    for p in range(n):      # PE-major: HOST_ADDR auto-increments within a PE
        for row in range(in_local):
            axi.host_write(host_address(Region.PE, row, pe=p, sel=MemSel.ACT0),
                           int(padded[row * n + p]), wide=False)
    axi.section("run")
    axi.reg_write(Reg.CTRL_STATUS, 1)
    axi.lines.append(f"P {REGS_WINDOW + 4 * Reg.CTRL_STATUS:08x} {_BUSY | _DONE:08x} "
                     f"{_DONE:08x} {POLL_LIMIT}")
    axi.section("outputs")
    sel = MemSel.ACT1 if image.output_bank else MemSel.ACT0
    for p in range(n):
        for row in range((image.n_out - p + n - 1) // n):
            index = row * n + p
            axi.host_read(host_address(Region.PE, row, pe=p, sel=sel), index,
                          int(want[index]))
    axi.lines.append(f"R {REGS_WINDOW + 4 * Reg.TOTAL_CYCLES:08x} TOTAL_CYCLES")
    for k in range(len(image.layers)):
        axi.lines.append(f"R {REGS_WINDOW + 4 * (Reg.LAYER_CYCLES + k):08x} "
                         f"LAYER_CYCLES+{k}")
    return axi.lines


def hw_run_tcl(board_top: str, *, txn: str | None = "hw_run.txn",
               generator: str = "boards/hw_run.py") -> str:
    """The text of ``hw_run.tcl``: program ``<board_top>.bit`` and play ``txn`` (None: no
    transaction file; the script programs the device and checks the ``ID`` register)."""
    txn_line = "set txn_file {}" if txn is None else f"set txn_file [file join $root {txn}]"
    return f"""# Program {board_top}.bit and run one input over JTAG-to-AXI
# (generated by {generator})
# Run: vivado -mode batch -source hw_run.tcl [-tclargs HW_SERVER_URL [TARGET_PATTERN]]
# Env: EIE_HW_SKIP=load skips the image load (the bitstream has it baked in), e.g.
#      EIE_HW_SKIP="load"; sections: check load input run outputs.
set root [file dirname [file normalize [info script]]]
set bitfile [file join $root {board_top}.bit]
{txn_line}
set args [expr {{[info exists argv] ? $argv : {{}}}}]
set url [expr {{[llength $args] > 0 ? [lindex $args 0] : "localhost:3121"}}]
set target_pattern [expr {{[llength $args] > 1 ? [lindex $args 1] : "*"}}]
set skip [expr {{[info exists ::env(EIE_HW_SKIP)] ? $::env(EIE_HW_SKIP) : ""}}]

open_hw_manager
connect_hw_server -url $url
set targets [get_hw_targets $target_pattern]
if {{[llength $targets] == 0}} {{ puts "hw_run: no JTAG target matches $target_pattern"; exit 1 }}
current_hw_target [lindex $targets 0]
open_hw_target
set device [lindex [get_hw_devices xcku*] 0]
if {{$device eq ""}} {{ puts "hw_run: no KU060 on the JTAG chain"; exit 1 }}
current_hw_device $device
set_property PROGRAM.FILE $bitfile $device
program_hw_devices $device
refresh_hw_device $device
set axi [get_hw_axis {HW_AXI}]
if {{$axi eq ""}} {{ puts "hw_run: no JTAG-to-AXI master ({HW_AXI}) in the design"; exit 1 }}
# Reset the JTAG-to-AXI master's transaction state; the core came out of reset when the
# MMCM locked after programming, with its memories holding the baked image.
reset_hw_axi $axi

proc axi_write {{axi offset value}} {{
    create_hw_axi_txn -quiet -force eie_wr $axi -type write -address $offset -data $value -len 1
    run_hw_axi -quiet [get_hw_axi_txns eie_wr]
}}
proc axi_read {{axi offset}} {{
    create_hw_axi_txn -quiet -force eie_rd $axi -type read -address $offset -len 1
    run_hw_axi -quiet [get_hw_axi_txns eie_rd]
    return [expr {{"0x[get_property DATA [get_hw_axi_txns eie_rd]]" & 0xFFFFFFFF}}]
}}
proc signed32 {{value}} {{
    return [expr {{$value >= 0x80000000 ? $value - 0x100000000 : $value}}]
}}

set failures 0
set outputs {{}}
if {{$txn_file eq ""}} {{
    set id [axi_read $axi 00000000]
    puts [format "hw_run: ID %08x (no image: nothing else to run)" $id]
    exit [expr {{$id == {AXI_ID:#x} ? 0 : 1}}]
}}
set fh [open $txn_file r]
set section ""
set writes 0
while {{[gets $fh line] >= 0}} {{
    set op [lindex $line 0]
    if {{$op eq "" || [string index $op 0] eq "#"}} {{ continue }}
    if {{$op eq "S"}} {{
        set section [lindex $line 1]
        if {{[lsearch -exact $skip $section] < 0}} {{ puts "hw_run: $section" }}
        continue
    }}
    if {{[lsearch -exact $skip $section] >= 0}} {{ continue }}
    set offset [lindex $line 1]
    switch -- $op {{
        W {{ axi_write $axi $offset [lindex $line 2]; incr writes }}
        X {{
            set got [axi_read $axi $offset]
            set want [expr {{"0x[lindex $line 2]"}}]
            if {{$got != $want}} {{
                puts [format "hw_run: %s reads %08x, expected %08x" [lindex $line 3] $got $want]
                exit 1
            }}
        }}
        P {{
            set mask [expr {{"0x[lindex $line 2]"}}]
            set want [expr {{"0x[lindex $line 3]"}}]
            set limit [lindex $line 4]
            set polls 0
            while {{([axi_read $axi $offset] & $mask) != $want}} {{
                incr polls
                if {{$polls > $limit}} {{
                    puts "hw_run: the run did not finish in $limit polls"
                    exit 1
                }}
            }}
            puts "hw_run: done after $polls status polls"
        }}
        O {{
            set got [signed32 [axi_read $axi $offset]]
            set want [lindex $line 3]
            lappend outputs [list [lindex $line 2] $got]
            if {{$got != $want}} {{
                incr failures
                puts "hw_run: output [lindex $line 2] = $got, golden $want"
            }}
        }}
        R {{ puts "hw_run: [lindex $line 2] = [axi_read $axi $offset]" }}
        default {{ puts "hw_run: unknown line: $line"; exit 1 }}
    }}
}}
close $fh
set values {{}}
foreach pair [lsort -integer -index 0 $outputs] {{ lappend values [lindex $pair 1] }}
puts "hw_run: $writes AXI writes; outputs (raw activations): $values"
if {{$failures > 0}} {{
    puts "hw_run: FAIL: $failures output(s) differ from the golden model"
    exit 1
}}
puts "hw_run: PASS: [llength $outputs] outputs equal the golden model"
"""

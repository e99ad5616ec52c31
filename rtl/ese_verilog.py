"""Verilog of the ESE engine (``rtl/ese.py``), as ``rtl/verilog.py`` emits EIE's: memory
initial values of a baked image as ``$readmemh`` side files, and the waiver file."""

from __future__ import annotations

import re
from pathlib import Path

from amaranth.back import verilog

from .ese import ESE
from .verilog import _skip_zero_meminit, rewrite_inits, waiver_file

__all__ = ["convert_ese", "generate_ese"]


def convert_ese(config, *, image=None, name: str = "ese_top", frame_slots: int = 2,
                slot_words: int = 16):
    """Verilog text and side files ``{file name: contents}`` of the engine."""
    top = ESE(config, image=image, frame_slots=frame_slots, slot_words=slot_words)
    if image is None:
        with _skip_zero_meminit():
            text = verilog.convert(top, name=name, emit_src=False)
    else:
        text = verilog.convert(top, name=name, emit_src=False)
    return rewrite_inits(text, top=name, keep_zero=image is not None)


def generate_ese(config, out_dir, image=None, name: str = "ese_top", *,
                 frame_slots: int = 2, slot_words: int = 16, waivers: bool = True):
    """Write ``<name>.v``, the side files of a baked image and ``<name>.vlt`` into
    ``out_dir``; return the paths (Verilog first)."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"Module name must be a Verilog identifier, not {name!r}")
    text, files = convert_ese(config, image=image, name=name, frame_slots=frame_slots,
                              slot_words=slot_words)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.v"]
    paths[0].write_text(text)
    for file, contents in sorted(files.items()):
        (out / file).write_text(contents)
        paths.append(out / file)
    if waivers:
        paths.append(out / f"{name}.vlt")
        paths[-1].write_text(waiver_file(name))
    return paths

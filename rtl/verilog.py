"""Verilog emission of the EIE array (``eie verilog``, ``eie sim``, board flows).

:func:`generate` converts :class:`rtl.eie.EIE` with ``amaranth.back.verilog.convert`` and
post-processes the memory initialisation: Amaranth writes one ``mem[i] = value;`` statement
per word, which is slow to compile and unusable for swapping images without regenerating.
Every such ``initial`` block is replaced by ``initial $readmemh("<file>", <mem>);`` and the
words go to ``<file>`` (one word per line, lowercase hex zero-padded to ``ceil(width/4)``
digits, full depth: the ``.mem`` format of docs/image-format.md). Without an image, all-zero
blocks are dropped instead (block RAM and Verilator both power up at zero), so an unbaked
design has no side files. See docs/rtl.md ("Verilog emission").
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

from amaranth.back import rtlil, verilog

from contract.config import EIEConfig

from .eie import EIE

__all__ = ["generate", "convert", "rewrite_inits", "LINT_WAIVERS"]

#: Verilator warnings waived for ``--lint-only -Wall`` (reason in docs/rtl.md).
LINT_WAIVERS = (
    "-Wno-DECLFILENAME",    # one file holds every module; names are hierarchy paths
    "-Wno-UNUSEDSIGNAL",    # Amaranth keeps named intermediates and unused port/field bits
    "-Wno-WIDTHEXPAND",     # Yosys writes minimal-width constants/operands and relies on
    "-Wno-WIDTHTRUNC",      #   Verilog context-determined extension/truncation (exact)
    "-Wno-PROCASSINIT",     # reset values are emitted as declaration initialisers
    "-Wno-CASEINCOMPLETE",  # Amaranth Switch: unlisted values keep the default assignment
)

_MODULE = re.compile(r"^\s*module\s+(\\\S+\s|[\w$]+)")
_DECL = re.compile(r"^(\s*)reg\s+(?:signed\s+)?(?:\[(\d+):0\]\s+)?"
                   r"(\\\S+\s|[\w$]+)\s*\[(\d+):(\d+)\];\s*$")
_WORD = re.compile(r"^\s*(\\\S+\s|[\w$]+)\s*\[(\d+)\]\s*=\s*(\d+)'([hbd])([0-9a-fA-FxXzZ_]+);\s*$")


#: Instance levels left out of side-file names: the PE array is a container, and leaving it
#: out keeps the names users and Vivado projects know (``pe0_spmat_read_even.mem``).
_UNNAMED_LEVELS = ("pe_array",)


def _file_stem(module: str, memory: str, top: str) -> str:
    module = module.strip().lstrip("\\")
    path = [memory] if module == top else module.split(".")[1:] + [memory]
    path = [part for part in path if part not in _UNNAMED_LEVELS]
    return re.sub(r"[^0-9A-Za-z]+", "_", "_".join(path)).strip("_") or "mem"


def _parse_word(base: str, digits: str) -> int:
    # Undefined bits (x/z) have no defined value; block RAM and Verilator power up at 0.
    digits = re.sub(r"[xXzZ]", "0", digits.replace("_", ""))
    return int(digits, {"h": 16, "b": 2, "d": 10}[base])


def _memory_init(lines, i, name, width, first, depth):
    """Words of the ``initial begin ... end`` block starting at ``lines[i]``, and the index
    of its ``end``; ``None`` when the block is not one plain assignment per address."""
    words = [0] * depth
    j = i
    while j < len(lines) and lines[j].strip() != "end":
        word = _WORD.match(lines[j])
        if (word is None or word.group(1).strip() != name.strip()
                or int(word.group(3)) != width
                or not 0 <= int(word.group(2)) - first < depth):
            return None, j
        words[int(word.group(2)) - first] = _parse_word(word.group(4), word.group(5))
        j += 1
    return (words if j < len(lines) else None), j


def rewrite_inits(text: str, *, top: str, keep_zero: bool, prefix: str = ""):
    """Replace per-word memory ``initial`` blocks by ``$readmemh``.

    Returns ``(text, {file name: contents})``. Files are named after the instance path and
    memory (``pe0_spmat_read_even.mem``), with ``prefix_`` in front when given;
    contents are the ``.mem`` format of docs/image-format.md. All-zero memories are dropped
    unless ``keep_zero``. A block of any other shape is left as it is. The board flow
    (``boards.vivado``) uses this on its own top too.
    """
    lines = text.splitlines()
    out, files = [], {}
    module = top
    i = 0
    while i < len(lines):
        line = lines[i]
        match = _MODULE.match(line)
        if match:
            module = match.group(1)
        decl = _DECL.match(line)
        if decl and i + 1 < len(lines) and lines[i + 1].strip() == "initial begin":
            indent, msb, name, hi, lo = decl.groups()
            width = int(msb) + 1 if msb is not None else 1
            first, last = sorted((int(hi), int(lo)))
            words, end = _memory_init(lines, i + 2, name, width, first, last - first + 1)
            if words is not None:
                out.append(line)
                if keep_zero or any(words):
                    stem = _file_stem(module, name.strip().lstrip("\\"), top)
                    file = f"{prefix}_{stem}.mem" if prefix else f"{stem}.mem"
                    if file in files:
                        raise RuntimeError(f"two memories map to the side file {file}")
                    digits = (width + 3) // 4
                    files[file] = "".join(f"{w:0{digits}x}\n" for w in words)
                    # (an escaped identifier such as ``\\program`` must end with a space)
                    out.append(f'{indent}initial $readmemh("{file}", {name.strip()} );')
                i = end + 1
                continue
        out.append(line)
        i += 1
    return "\n".join(out) + "\n", files


@contextlib.contextmanager
def _skip_zero_meminit():
    """Do not emit ``$meminit`` cells for all-zero memories while converting.

    Amaranth builds one RTLIL net per initial bit (tens of millions for a paper-sized
    array) and Yosys then writes one statement per word, only for us to drop them again;
    without an image every memory is zero, so skipping them is exact and makes emission of
    a 64-PE array take seconds instead of minutes. Falls back to the plain path if the
    (internal) emitter hook is not there.
    """
    emitter = getattr(rtlil, "ModuleEmitter", None)
    original = getattr(emitter, "emit_memory", None)
    if original is None:
        yield
        return

    def emit_memory(self, cell_idx, cell):
        if any(cell.init):
            original(self, cell_idx, cell)

    emitter.emit_memory = emit_memory
    try:
        yield
    finally:
        emitter.emit_memory = original


def convert(config: EIEConfig, *, image=None, name: str = "eie_top"):
    """Verilog text and side files ``{file name: contents}`` of the array."""
    top = EIE(config, image=image)
    if image is None:
        with _skip_zero_meminit():
            text = verilog.convert(top, name=name, emit_src=False)
    else:
        text = verilog.convert(top, name=name, emit_src=False)
    return rewrite_inits(text, top=name, keep_zero=image is not None)


def generate(config: EIEConfig, out_dir, image=None, name: str = "eie_top") -> list[Path]:
    """Write ``<name>.v`` (and ``.mem`` side files for a baked image) into ``out_dir``.

    Parameters
    ----------
    config : EIEConfig
        Architecture of the array.
    out_dir : path
        Directory to write into (created if needed).
    image : PackedImage, optional
        Bake this image: every memory starts with its contents via ``$readmemh`` of a side
        file named ``<instance path>_<memory>.mem`` (relative path: keep the files in the
        simulator's working directory or add them to the FPGA project).
    name : str
        Verilog module name of the top.

    Returns
    -------
    list of Path
        The Verilog file first, then the side files.
    """
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"Module name must be a Verilog identifier, not {name!r}")
    text, files = convert(config, image=image, name=name)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.v"]
    paths[0].write_text(text)
    for file, contents in sorted(files.items()):
        path = out / file
        path.write_text(contents)
        paths.append(path)
    return paths

"""Verilog emission of the EIE array (``eie verilog``, ``eie sim``, board flows).

:func:`generate` converts :class:`rtl.eie.EIE` with ``amaranth.back.verilog.convert`` and
post-processes the memory initialisation: Amaranth writes one ``mem[i] = value;`` statement
per word, which is slow to compile and unusable for swapping images without regenerating.
Every such ``initial`` block is replaced by ``initial $readmemh("<file>", <mem>);`` and the
words go to ``<file>`` (one word per line, lowercase hex zero-padded to ``ceil(width/4)``
digits, full depth: the ``.mem`` format of docs/image-format.md). Without an image, all-zero
blocks are dropped instead (block RAM and Verilator both power up at zero), so an unbaked
design has no ``.mem`` files. Beside the Verilog goes ``<name>.vlt``, the Verilator waivers
(:data:`LINT_WAIVERS`) under which ``verilator --lint-only -Wall <name>.v <name>.vlt`` is
clean. See docs/rtl.md ("Verilog emission").
"""

from __future__ import annotations

import contextlib
import re
import textwrap
from pathlib import Path
from typing import NamedTuple

from amaranth.back import rtlil, verilog

from contract.config import EIEConfig

from .eie import EIE

__all__ = ["generate", "convert", "rewrite_inits", "waiver_file", "Waiver", "LINT_WAIVERS"]

class Waiver(NamedTuple):
    """One Verilator ``lint_off`` of the emitted Verilog: a warning code, the message text it
    is limited to (Verilator ``-match`` wildcard, ``{name}`` is the top module's name; None:
    every message of the code in that file) and why it is not a defect of the design."""

    rule: str
    match: str | None
    reason: str


#: What ``verilator --lint-only -Wall`` reports on Amaranth's output that is not a defect of
#: the design, all due to how Amaranth/Yosys write Verilog. :func:`waiver_file` renders it as
#: the ``<name>.vlt`` that :func:`generate` writes beside the Verilog, and the tests lint
#: with that file; each waiver is limited to the emitted file, and to a message form where
#: one form covers all of Amaranth's output (table in docs/rtl.md, "Verilog emission").
LINT_WAIVERS = (
    Waiver("DECLFILENAME", "Filename '{name}' does not match MODULE name: '{name}.*'",
           "one file holds every module; submodules are named by hierarchy path "
           "({name}.pe_array.pe0)"),
    Waiver("UNUSEDSIGNAL", None,
           "Amaranth keeps named intermediates and the unused bits of ports and struct "
           "fields"),
    Waiver("WIDTHEXPAND", None,
           "Yosys writes minimal-width constants and operands and relies on Verilog's "
           "context-determined extension, which is exactly Amaranth's semantics"),
    Waiver("WIDTHTRUNC", "Logical operator LOGNOT expects 1 bit on the LHS, *",
           "Yosys writes a reduce-NOR as the logical not of a vector (! x[15:1]), "
           "exact in Verilog"),
    Waiver("WIDTHTRUNC", "Operator ASSIGNW expects * bits on the Assign RHS, but Assign "
           "RHS's SHIFTR generates * bits.",
           "Yosys writes a variable part-select as a shift assigned to the narrower result"),
    Waiver("PROCASSINIT", None,
           "reset values are emitted as declaration initialisers of always-block registers"),
    Waiver("CASEINCOMPLETE", None,
           "an Amaranth Switch without a default: unlisted values keep the assignment made "
           "before the case"),
)


def waiver_file(name: str = "eie_top") -> str:
    """Verilator control file (``.vlt``) waiving :data:`LINT_WAIVERS` in ``<name>.v``, so
    that ``verilator --lint-only -Wall <name>.v <name>.vlt`` is clean."""
    lines = ["`verilator_config",
             f"// Lint waivers for {name}.v as written by eie-ese (rtl/verilog.py): each is",
             "// due to how Amaranth/Yosys write Verilog, not to the design; docs/rtl.md.",
             f"// Use: verilator --lint-only -Wall {name}.v {name}.vlt"]
    for waiver in LINT_WAIVERS:
        reason = f"{waiver.rule}: {waiver.reason.format(name=name)}"
        # (no reason line may start with the word "verilator": that is a metacomment)
        lines += [f"// {part}" for part in textwrap.wrap(reason, 96, break_on_hyphens=False)]
        line = f'lint_off -rule {waiver.rule} -file "*{name}.v"'
        if waiver.match is not None:
            line += f' -match "*{waiver.match.format(name=name)}"'
        lines.append(line)
    return "\n".join(lines) + "\n"


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


def generate(config: EIEConfig, out_dir, image=None, name: str = "eie_top", *,
             waivers: bool = True) -> list[Path]:
    """Write ``<name>.v``, ``.mem`` side files for a baked image and ``<name>.vlt`` into
    ``out_dir``.

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
    waivers : bool
        Also write ``<name>.vlt`` (:func:`waiver_file`): ``verilator --lint-only -Wall
        <name>.v <name>.vlt`` is then clean.

    Returns
    -------
    list of Path
        The Verilog file first, then the ``.mem`` side files, then the waiver file.

    Raises
    ------
    ValueError
        If ``name`` is not a Verilog identifier.
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
    if waivers:
        paths.append(out / f"{name}.vlt")
        paths[-1].write_text(waiver_file(name))
    return paths

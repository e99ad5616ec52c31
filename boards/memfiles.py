"""Move memory initial values out of generated Verilog into ``$readmemh`` side files.

Amaranth (through Yosys ``write_verilog``) writes a memory's initial contents as an
``initial begin mem[0] = 64'h...; ... end`` block. Vivado infers block RAM with those
contents either way, but a ``$readmemh`` file can be swapped after synthesis (``updatemem``)
and is the format the image directory already ships. :func:`extract_inits` rewrites every
such block into ``initial $readmemh("<file>.mem", <mem>);`` and returns the file contents,
one word per line, lowercase hex zero-padded to ``ceil(width/4)`` digits (the image format's
``.mem`` flavour, docs/image-format.md).
"""

from __future__ import annotations

import re

__all__ = ["extract_inits", "MemoryInit"]

_MODULE = re.compile(r"^\s*module\s+(\\\S+\s|[\w$]+)")
_REG = re.compile(r"^(\s*)reg\s+(?:signed\s+)?(?:\[(\d+):0\]\s+)?"
                  r"(\\\S+\s|[\w$]+)\s*\[(\d+):(\d+)\];\s*$")
_WORD = re.compile(r"^\s*(\\\S+\s|[\w$]+)\s*\[(\d+)\]\s*=\s*(\d+)'([hbd])([0-9a-fA-FxXzZ_]+);\s*$")


class MemoryInit:
    """One extracted memory: module, memory name, width, depth, words and file name."""

    def __init__(self, module, name, width, depth, words, filename):
        self.module = module
        self.name = name
        self.width = width
        self.depth = depth
        self.words = words
        self.filename = filename

    def text(self) -> str:
        digits = max(1, -(-self.width // 4))
        return "".join(f"{w:0{digits}x}\n" for w in self.words)

    def __repr__(self):
        return (f"MemoryInit({self.module!r}, {self.name!r}, width={self.width}, "
                f"depth={self.depth}, file={self.filename!r})")


def _clean(identifier: str) -> str:
    identifier = identifier.strip().lstrip("\\")
    return re.sub(r"[^0-9A-Za-z]+", "_", identifier).strip("_") or "mem"


def _parse_word(base: str, digits: str) -> int:
    digits = digits.replace("_", "")
    # Undefined bits (x/z) have no defined value; block RAM powers up as 0.
    digits = re.sub(r"[xXzZ]", "0", digits)
    return int(digits, {"h": 16, "b": 2, "d": 10}[base])


def extract_inits(verilog: str, *, prefix: str = "init",
                  keep_zero: bool = True) -> tuple[str, list[MemoryInit]]:
    """Rewrite memory ``initial`` blocks of ``verilog`` as ``$readmemh`` calls.

    Parameters
    ----------
    verilog : Verilog text written by Amaranth/Yosys.
    prefix : file-name prefix; files are ``<prefix>_<module>_<memory>.mem``.
    keep_zero : also give all-zero memories a file (so their contents can be swapped);
        when False their ``initial`` block is dropped (block RAM powers up at zero).

    Returns
    -------
    (text, inits) : the rewritten Verilog and one :class:`MemoryInit` per rewritten memory.
        A block that does not have the expected shape (one full-range assignment per
        address) is left untouched.
    """
    lines = verilog.splitlines(keepends=True)
    out, inits, used = [], [], set()
    module = "top"
    i = 0
    while i < len(lines):
        line = lines[i]
        match = _MODULE.match(line)
        if match:
            module = match.group(1)
        match = _REG.match(line)
        if match and i + 1 < len(lines) and lines[i + 1].strip() == "initial begin":
            indent, msb, name, hi, lo = match.groups()
            width = int(msb) + 1 if msb is not None else 1
            first, last = sorted((int(hi), int(lo)))
            depth = last - first + 1
            words = [0] * depth
            seen = set()
            j = i + 2
            ok = True
            while j < len(lines) and lines[j].strip() != "end":
                word = _WORD.match(lines[j])
                if (not word or word.group(1).strip() != name.strip()
                        or int(word.group(3)) != width):
                    ok = False
                    break
                address = int(word.group(2)) - first
                if not 0 <= address < depth:
                    ok = False
                    break
                words[address] = _parse_word(word.group(4), word.group(5))
                seen.add(address)
                j += 1
            if ok and j < len(lines) and seen and not keep_zero and not any(words):
                out.append(line)
                i = j + 1
                continue
            if ok and j < len(lines) and seen:
                base = f"{prefix}_{_clean(module)}_{_clean(name)}"
                filename, n = f"{base}.mem", 1
                while filename in used:
                    n += 1
                    filename = f"{base}_{n}.mem"
                used.add(filename)
                inits.append(MemoryInit(module.strip(), name.strip(), width, depth, words,
                                        filename))
                out.append(line)
                out.append(f'{indent}initial $readmemh("{filename}", {name});\n'
                           if not name.startswith("\\") else
                           f'{indent}initial $readmemh("{filename}", {name.rstrip()} );\n')
                i = j + 1
                continue
        out.append(line)
        i += 1
    return "".join(out), inits

"""Write a packed image to disk: memory files plus ``manifest.json`` (docs/image-format.md).

The image is written into a temporary directory beside the target and renamed into place
only when every file is complete, so a failure never leaves a partial image and never
destroys an existing one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np

from .image import IMAGE_FORMAT_VERSION, ImageExtension, PackedImage

__all__ = ["write_image", "encode_mem", "encode_coe", "encode_bin", "memory_contents",
           "build_manifest", "FORMATS"]

FORMATS = ("mem", "coe", "bin")


# ---- encoding of one memory ------------------------------------------------------------------
def _digits(width: int) -> int:
    return -(-width // 4)


def _unsigned(words, width: int, signed: bool):
    """Words as unsigned raw values of ``width`` bits.

    Returns a uint64 array when ``width <= 64`` and a list of Python ints otherwise.

    Raises
    ------
    ValueError
        when a value does not fit ``width`` bits (signed or unsigned as requested).
    """
    if width < 1:
        raise ValueError(f"memory width must be positive, not {width}")
    lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, (1 << width) - 1)
    arr = words if isinstance(words, np.ndarray) else None
    if width <= 64 and arr is not None and arr.dtype.kind in "iu":
        a = arr.reshape(-1)
        if a.size:
            amin, amax = int(a.min()), int(a.max())
            if amin < lo or amax > hi:
                bad = amin if amin < lo else amax
                raise ValueError(f"value {bad} does not fit {width}-bit "
                                 f"{'signed' if signed else 'unsigned'} words")
        if a.dtype.kind == "i":
            u = a.astype(np.int64).view(np.uint64)
        else:
            u = a.astype(np.uint64)
        if width < 64:
            u = u & np.uint64((1 << width) - 1)
        return u
    out = []
    mask = (1 << width) - 1
    for w in (words.tolist() if arr is not None else words):
        w = int(w)
        if not lo <= w <= hi:
            raise ValueError(f"value {w} does not fit {width}-bit "
                             f"{'signed' if signed else 'unsigned'} words")
        out.append(w & mask)
    if width <= 64:
        return np.array(out, np.uint64)
    return out


def _hex_lines(words, width: int, signed: bool, sep: bytes) -> tuple[bytes, int]:
    """Zero-padded lowercase hex of every word, each followed by ``sep``; returns (text, n)."""
    d = _digits(width)
    u = _unsigned(words, width, signed)
    if isinstance(u, np.ndarray):
        n = u.size
        text = np.frombuffer(u.astype(">u8").tobytes().hex().encode(), np.uint8)
        grid = np.empty((n, d + len(sep)), np.uint8)
        grid[:, :d] = text.reshape(n, 16)[:, 16 - d:]
        grid[:, d:] = np.frombuffer(sep, np.uint8)
        return grid.tobytes(), n
    return b"".join(f"{w:0{d}x}".encode() + sep for w in u), len(u)


def encode_mem(words, width: int, *, signed: bool = False) -> bytes:
    """``$readmemh`` text: one word per line, lowercase hex zero-padded to ceil(width/4)."""
    text, _ = _hex_lines(words, width, signed, b"\n")
    return text


def encode_coe(words, width: int, *, signed: bool = False) -> bytes:
    """Xilinx ``.coe``: radix 16, one word per line, comma-separated, the last ends in ``;``."""
    text, n = _hex_lines(words, width, signed, b",\n")
    if n:
        text = text[:-2] + b";\n"
    else:
        text = b";\n"
    return b"memory_initialization_radix=16;\nmemory_initialization_vector=\n" + text


def encode_bin(words, width: int, *, signed: bool = False) -> bytes:
    """Raw binary: each word little-endian in ceil(width/8) bytes, words in address order."""
    nb = -(-width // 8)
    u = _unsigned(words, width, signed)
    if isinstance(u, np.ndarray):
        return u.astype("<u8").view(np.uint8).reshape(-1, 8)[:, :nb].tobytes()
    return b"".join(w.to_bytes(nb, "little") for w in u)


_ENCODERS = {"mem": encode_mem, "coe": encode_coe, "bin": encode_bin}


# ---- whole image -------------------------------------------------------------------------------
def memory_contents(image: PackedImage) -> dict[str, tuple[int, int, object, bool]]:
    """Every memory of the image as ``name -> (width, depth, words, signed)``, full depth."""
    cfg = image.config
    shapes = cfg.memory_shapes()
    out = {}
    for p in range(cfg.n_pes):
        for kind, array, signed in (("spmat", image.spmat, False),
                                    ("ptr_even", image.ptr_even, False),
                                    ("ptr_odd", image.ptr_odd, False),
                                    ("bias", image.bias, True)):
            width, depth = shapes[f"pe_{kind}"]
            out[f"pe{p:03d}_{kind}"] = (width, depth, array[p], signed)
    width, depth = shapes["codebook"]
    out["codebook"] = (width, depth, image.codebook, True)
    width, depth = shapes["program"]
    if len(image.program) > depth:
        raise ValueError(f"program has {len(image.program)} tiles, memory holds {depth}")
    words = [d.encode(cfg) for d in image.program] + [0] * (depth - len(image.program))
    out["program"] = (width, depth, words, False)
    for name, (_width, depth, words, _signed) in out.items():
        if len(words) != depth:
            raise ValueError(f"{name}: {len(words)} words, memory depth is {depth}")
    return out


def build_manifest(image: PackedImage, memories: dict, formats,
                   extension: ImageExtension | None = None) -> dict:
    """The ``manifest.json`` object; ``memories`` maps name -> manifest memory record."""
    cfg = image.config
    d = _digits(cfg.descriptor_bits)
    program = []
    for desc in image.program:
        entry = {name: (bool(v) if isinstance(v, bool | np.bool_) else int(v))
                 for name, v in dataclasses.asdict(desc).items()}
        entry["word"] = f"0x{desc.encode(cfg):0{d}x}"
        program.append(entry)
    layers = []
    for info in image.layers:
        rec = dataclasses.asdict(info)
        rec["codebook"] = [float(c) for c in info.codebook]
        rec["bias"] = None if info.bias is None else [float(b) for b in info.bias]
        if info.row_order is None:
            del rec["row_order"]          # optional: images without it stay as they were
        else:
            rec["row_order"] = [int(i) for i in info.row_order]
        layers.append(rec)
    manifest = {
        "format": "eie-image",
        "version": IMAGE_FORMAT_VERSION,
        "config": cfg.to_dict(),
        "config_id": cfg.config_id,
        "layers": layers,
        "program": program,
        "memories": memories,
        "pes": [dict(pe) for pe in image.stats.get("pes", [])],
        "formats": list(formats),
    }
    if extension is not None:
        manifest["extension"] = {"kind": extension.kind, "chained": bool(extension.chained),
                                 "data": extension.data}
    return manifest


def _safe_to_replace(path: Path) -> bool:
    """An existing target may be replaced only if it is an empty directory or an image."""
    if path.is_symlink() or not path.is_dir():
        return False
    return not any(path.iterdir()) or (path / "manifest.json").is_file()


def write_image(image: PackedImage, out_dir, formats=FORMATS, *,
                extension: ImageExtension | None = None) -> Path:
    """Write ``image`` to the directory ``out_dir`` (files and manifest.json).

    Parameters
    ----------
    image : the packed image.
    out_dir : target directory. If it exists it must be an earlier image (holds a
        ``manifest.json``) or empty; it is replaced only once the new image is complete.
    formats : any of ``"mem"``, ``"coe"``, ``"bin"``.
    extension : an engine's extra memories and manifest section (ESE's LSTM images).

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    ValueError
        unknown format, or a value that does not fit its memory width.
    FileExistsError
        ``out_dir`` exists and is neither an image nor an empty directory.
    """
    formats = tuple(dict.fromkeys(formats))
    unknown = [f for f in formats if f not in _ENCODERS]
    if unknown or not formats:
        raise ValueError(f"unknown image format(s) {unknown}; choose from {list(FORMATS)}")
    out_dir = Path(out_dir)
    if out_dir.exists() or out_dir.is_symlink():
        if not _safe_to_replace(out_dir):
            raise FileExistsError(f"{out_dir} exists and is not an EIE image directory; "
                                  f"refusing to replace it")
    parent = out_dir.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp = parent / f".{out_dir.name}.tmp-{tag}"
    os.mkdir(tmp)
    try:
        records = {}
        contents = memory_contents(image)
        if extension is not None:
            clash = sorted(set(contents) & set(extension.memories))
            if clash:
                raise ValueError(f"extension memories {clash} clash with the image's")
            for name, (_width, depth, words, _signed) in extension.memories.items():
                if len(words) != depth:
                    raise ValueError(f"{name}: {len(words)} words, memory depth is {depth}")
            contents.update(extension.memories)
        for name, (width, depth, words, signed) in contents.items():
            rec = {"width": width, "depth": depth, "files": {}, "sha256": {}}
            for fmt in formats:
                try:
                    data = _ENCODERS[fmt](words, width, signed=signed)
                except ValueError as exc:
                    raise ValueError(f"{name}: {exc}") from None
                fname = f"{name}.{fmt}"
                (tmp / fname).write_bytes(data)
                rec["files"][fmt] = fname
                rec["sha256"][fmt] = hashlib.sha256(data).hexdigest()
            records[name] = rec
        manifest = build_manifest(image, records, formats, extension)
        text = json.dumps(manifest, indent=1, allow_nan=False)
        (tmp / "manifest.json").write_text(text + "\n")
        old = None
        if out_dir.exists() or out_dir.is_symlink():
            old = parent / f".{out_dir.name}.old-{tag}"
            os.rename(out_dir, old)
        try:
            os.rename(tmp, out_dir)
        except BaseException:
            if old is not None:
                os.rename(old, out_dir)
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out_dir

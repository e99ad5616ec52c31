"""Read and validate an on-disk EIE image (docs/image-format.md).

``read_image`` trusts nothing in the directory: it checks the manifest's format and
version, the config and its id, that every file name is a plain name inside the image
directory, each file's SHA-256, memory widths and depths, every word's range and that
each descriptor decodes to the recorded word, that the config's memories are of a sane size
(before allocating), and it decodes every tile with ``contract.decode`` so it accepts
exactly the images the golden model runs. Any failure raises ``ImageError`` naming the
file and the problem. Imports neither torch nor Amaranth.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np

from .config import EIEConfig
from .decode import column_pointers, decode_pe
from .errors import ConfigError, ImageError
from .image import IMAGE_FORMAT_VERSION, Descriptor, ImageExtension, LayerInfo, PackedImage

__all__ = ["ImageError", "read_image", "read_image_extension", "image_kind", "check_config",
           "decode_mem", "decode_coe", "decode_bin"]

_READ_ORDER = ("mem", "bin", "coe")


# ---- decoding of one memory file ---------------------------------------------------------------
_HEX = np.full(256, 255, np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _HEX[_c] = 10 + _i


def _from_hex_lines(lines: list[bytes], width: int, depth: int, what: str):
    d = -(-width // 4)
    if len(lines) != depth:
        raise ImageError(f"{what}: {len(lines)} words, expected depth {depth}")
    values = []
    for n, line in enumerate(lines):
        text = line.strip()
        if len(text) != d or _HEX[np.frombuffer(text, np.uint8)].max(initial=0) == 255:
            raise ImageError(f"{what}: word {n} is {text[:40]!r}, expected {d} hex digits")
        value = int(text, 16)
        if value >> width:
            raise ImageError(f"{what}: word {n} (0x{value:x}) does not fit {width} bits")
        values.append(value)
    return _as_words(values, width)


def _as_words(values: list[int], width: int):
    return np.array(values, np.uint64) if width <= 64 else values


def decode_mem(data: bytes, width: int, depth: int, what: str = "memory"):
    """Words of a ``.mem`` file: uint64 array (width <= 64) or list of ints.

    Raises
    ------
    ImageError
        wrong number of words, malformed digits, or a value wider than ``width``.
    """
    d = -(-width // 4)
    if width <= 64 and len(data) == depth * (d + 1):
        grid = np.frombuffer(data, np.uint8).reshape(depth, d + 1)
        nibbles = _HEX[grid[:, :d]]
        if np.all(grid[:, d] == ord("\n")) and not np.any(nibbles == 255):
            shifts = (4 * np.arange(d - 1, -1, -1)).astype(np.uint64)
            words = (nibbles.astype(np.uint64) << shifts).sum(axis=1, dtype=np.uint64)
            if width < 64 and np.any(words >> np.uint64(width)):
                n = int(np.argmax(words >> np.uint64(width)))
                raise ImageError(f"{what}: word {n} (0x{int(words[n]):x}) does not fit "
                                 f"{width} bits")
            return words
    lines = data.split(b"\n")
    if lines and lines[-1].strip() == b"":
        lines = lines[:-1]
    return _from_hex_lines(lines, width, depth, what)


def decode_coe(data: bytes, width: int, depth: int, what: str = "memory"):
    """Words of a Xilinx ``.coe`` file (radix 16) as written by ``contract.image_write``."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise ImageError(f"{what}: not ASCII text") from None
    body = "".join(text.split())
    head_radix, head_vec = "memory_initialization_radix=16;", "memory_initialization_vector="
    if not body.startswith(head_radix + head_vec) or not body.endswith(";"):
        raise ImageError(f"{what}: not a radix-16 .coe file")
    items = body[len(head_radix) + len(head_vec):-1].split(",")
    return _from_hex_lines([s.encode() for s in items], width, depth, what)


def decode_bin(data: bytes, width: int, depth: int, what: str = "memory"):
    """Words of a ``.bin`` file (little-endian, ceil(width/8) bytes per word)."""
    nb = -(-width // 8)
    if len(data) != depth * nb:
        raise ImageError(f"{what}: {len(data)} bytes, expected {depth} words of {nb} bytes")
    if width <= 64:
        grid = np.zeros((depth, 8), np.uint8)
        grid[:, :nb] = np.frombuffer(data, np.uint8).reshape(depth, nb)
        words = grid.view("<u8").reshape(depth).astype(np.uint64)
        if width < 64 and np.any(words >> np.uint64(width)):
            n = int(np.argmax(words >> np.uint64(width)))
            raise ImageError(f"{what}: word {n} (0x{int(words[n]):x}) does not fit {width} bits")
        return words
    values = [int.from_bytes(data[i * nb:(i + 1) * nb], "little") for i in range(depth)]
    for n, value in enumerate(values):
        if value >> width:
            raise ImageError(f"{what}: word {n} (0x{value:x}) does not fit {width} bits")
    return values


_DECODERS = {"mem": decode_mem, "bin": decode_bin, "coe": decode_coe}


def _signed(words: np.ndarray, width: int) -> np.ndarray:
    v = words.astype(np.uint64).view(np.int64).copy()
    if width < 64:
        v[v >= (1 << (width - 1))] -= 1 << width
    return v


# ---- manifest checks ---------------------------------------------------------------------------
def _need(cond: bool, msg: str) -> None:
    if not cond:
        raise ImageError(msg)


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _safe_name(root: Path, name, what: str) -> Path:
    """Path of ``name`` inside ``root``; rejects anything but a plain file name."""
    _need(isinstance(name, str) and name not in ("", ".", ".."),
          f"manifest.json: {what} has invalid file name {name!r}")
    _need(not os.path.isabs(name) and "/" not in name and "\\" not in name
          and "\0" not in name and ".." not in name and ":" not in name,
          f"manifest.json: {what} file name {name!r} is not a plain name inside the image "
          f"directory")
    path = root / name
    real_root = os.path.realpath(root)
    _need(os.path.dirname(os.path.realpath(path)) == real_root,
          f"manifest.json: {what} file {name!r} resolves outside the image directory")
    return path


def _read_checked(root: Path, rec: dict, fmt: str, mem: str) -> bytes:
    path = _safe_name(root, rec["files"][fmt], f"memory {mem} ({fmt})")
    # The largest text any writer makes for this memory (a .coe: digits, comma and CRLF per
    # word, plus its header), so a huge file is refused before it is read.
    limit = rec["depth"] * (-(-rec["width"] // 4) + 3) + 4096
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ImageError(f"{path.name}: file missing (memory {mem})") from None
    except OSError as exc:
        raise ImageError(f"{path.name}: cannot read ({exc.strerror})") from None
    _need(size <= limit, f"{path.name}: {size} bytes, more than a memory of "
                         f"{rec['depth']} words of {rec['width']} bits needs")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"{path.name}: file missing (memory {mem})") from None
    except OSError as exc:
        raise ImageError(f"{path.name}: cannot read ({exc.strerror})") from None
    digest = rec["sha256"].get(fmt) if isinstance(rec.get("sha256"), dict) else None
    _need(isinstance(digest, str), f"manifest.json: memory {mem} has no sha256 for {fmt}")
    _need(hashlib.sha256(data).hexdigest() == digest.lower(),
          f"{path.name}: SHA-256 does not match the manifest (file modified or corrupt)")
    return data


def _layer(rec, k: int, cfg: EIEConfig) -> LayerInfo:
    what = f"manifest.json: layer {k}"
    _need(isinstance(rec, dict), f"{what} is not an object")
    fields = {"name": str, "n_in": int, "n_out": int, "slot": int, "w_frac": int,
              "relu": bool, "has_bias": bool, "codebook": list, "first_tile": int,
              "n_tiles": int, "nnz": int, "padding": int}
    for name, typ in fields.items():
        value = rec.get(name)
        ok = _is_int(value) if typ is int else isinstance(value, typ)
        _need(ok, f"{what}: field {name!r} missing or not {typ.__name__}")
    _need(rec["n_in"] >= 1 and rec["n_out"] >= 1, f"{what}: empty shape")
    _need(0 <= rec["slot"] < cfg.max_layers, f"{what}: slot {rec['slot']} out of range")
    _need(0 <= rec["w_frac"] <= cfg.max_shift, f"{what}: w_frac {rec['w_frac']} out of range")
    cb = rec["codebook"]
    _need(len(cb) == cfg.codebook_size and all(isinstance(c, int | float) and
                                                not isinstance(c, bool) and math.isfinite(c)
                                                for c in cb),
          f"{what}: codebook must hold {cfg.codebook_size} finite numbers")
    bias = rec.get("bias")
    if bias is not None:
        _need(isinstance(bias, list) and len(bias) == rec["n_out"]
              and all(isinstance(b, int | float) and not isinstance(b, bool)
                      and math.isfinite(b) for b in bias),
              f"{what}: bias must be null or {rec['n_out']} finite numbers")
    order = rec.get("row_order")
    if order is not None:
        _need(isinstance(order, list) and all(_is_int(i) for i in order)
              and sorted(order) == list(range(rec["n_out"])),
              f"{what}: row_order must be null or a permutation of 0..{rec['n_out'] - 1}")
    return LayerInfo(name=rec["name"], n_in=rec["n_in"], n_out=rec["n_out"], slot=rec["slot"],
                     w_frac=rec["w_frac"], relu=rec["relu"], has_bias=rec["has_bias"],
                     codebook=[float(c) for c in cb], first_tile=rec["first_tile"],
                     n_tiles=rec["n_tiles"], nnz=rec["nnz"], padding=rec["padding"],
                     bias=None if bias is None else [float(b) for b in bias],
                     row_order=None if order is None else [int(i) for i in order])


def _descriptor(rec, t: int, cfg: EIEConfig) -> tuple[Descriptor, int]:
    what = f"manifest.json: program[{t}]"
    _need(isinstance(rec, dict), f"{what} is not an object")
    layout = cfg.descriptor_layout()
    fields = {}
    for name, width in layout.items():
        value = rec.get(name)
        if name in ("relu", "bias_en", "swap", "last"):
            _need(isinstance(value, bool), f"{what}: field {name!r} missing or not a bool")
        else:
            _need(_is_int(value) and 0 <= value < (1 << width),
                  f"{what}: field {name!r} missing or does not fit {width} bits")
        fields[name] = value
    word = rec.get("word")
    _need(isinstance(word, str) and word.startswith("0x"), f"{what}: 'word' must be a hex string")
    try:
        value = int(word, 16)
    except ValueError:
        raise ImageError(f"{what}: 'word' {word!r} is not hex") from None
    desc = Descriptor(**fields)
    _need(desc.encode(cfg) == value and Descriptor.decode(value, cfg) == desc,
          f"{what}: fields do not decode to the recorded word {word}")
    return desc, value


#: Largest extension memory the reader accepts (words), checked before decoding.
MAX_EXTENSION_DEPTH = 1 << 20

#: Largest total of memory words a config may imply (each held in 8 bytes once read: 256 MiB;
#: 16 times EIE's paper configuration), checked before anything is allocated or read.
MAX_IMAGE_WORDS = 1 << 25


def _check_size(cfg: EIEConfig) -> None:
    shapes = cfg.memory_shapes()
    per_pe = sum(shapes[f"pe_{kind}"][1] for kind in ("spmat", "ptr_even", "ptr_odd", "bias"))
    words = cfg.n_pes * per_pe + shapes["codebook"][1] + shapes["program"][1]
    _need(words <= MAX_IMAGE_WORDS,
          f"manifest.json: config implies {words} memory words ({cfg.n_pes} PEs x "
          f"{per_pe} words per PE; {words * 8 >> 20} MiB once read), more than the "
          f"{MAX_IMAGE_WORDS} this reader accepts")


def _check_program(image: PackedImage) -> None:
    """Decode every tile's pointers and entries with the one decoder (``contract.decode``)
    and check the descriptor's ranges, as the golden model does before it executes, so an
    image this reader accepts is one golden runs."""
    cfg = image.config
    n = cfg.n_pes
    for k, layer in enumerate(image.layers):
        for t in range(layer.first_tile, layer.first_tile + layer.n_tiles):
            desc = image.program[t]
            where = f"program[{t}] (layer {k})"
            _need(desc.out_local <= cfg.acc_depth,
                  f"{where}: out_local {desc.out_local} exceeds the {cfg.acc_depth} "
                  f"accumulators per PE")
            _need(desc.in_local <= cfg.act_depth,
                  f"{where}: in_local {desc.in_local} exceeds act_depth {cfg.act_depth}")
            _need(desc.out_base + desc.out_local <= cfg.act_depth,
                  f"{where}: activation addresses run past act_depth {cfg.act_depth}")
            _need(not desc.bias_en or desc.bias_base + desc.out_local <= cfg.bias_depth,
                  f"{where}: bias addresses run past bias_depth {cfg.bias_depth}")
            n_cols = min(layer.n_in, desc.in_local * n)
            pointers = column_pointers(image, desc, n_cols, where=where)
            for p in np.flatnonzero(pointers[:, -1]):
                decode_pe(image, desc, int(p), pointers[p], where=where)


def read_image(path) -> PackedImage:
    """Load and validate the image directory ``path``.

    Memories are read from the ``.mem`` files, else ``.bin``, else ``.coe``; every file
    the manifest lists (in every format) must exist with its recorded SHA-256.

    Raises
    ------
    ImageError
        anything wrong with the directory, the manifest or a file (the message names it),
        or an image with an engine extension (read it with :func:`read_image_extension`).
    """
    image, extension = _read(path)
    if extension is not None:
        raise ImageError(f"manifest.json: this is an {extension.kind!r} image, not a plain "
                         f"EIE image; read it with that engine's reader")
    return image


def read_image_extension(path, kind: str) -> tuple[PackedImage, ImageExtension]:
    """Load an image with an engine extension of ``kind`` (docs/image-format.md,
    "Extensions"): the EIE part, checked as :func:`read_image` checks it, and the
    extension's section and memories (decoded; unsigned words). The engine checks that
    they are what its config needs.

    Raises
    ------
    ImageError
        as :func:`read_image`, or the image has no extension of ``kind``.
    """
    image, extension = _read(path)
    _need(extension is not None and extension.kind == kind,
          f"manifest.json: not an {kind!r} image (extension "
          f"{extension.kind if extension else None!r})")
    return image, extension


def _extension(manifest: dict) -> ImageExtension | None:
    ext = manifest.get("extension")
    if ext is None:
        return None
    _need(isinstance(ext, dict) and isinstance(ext.get("kind"), str)
          and isinstance(ext.get("chained"), bool) and isinstance(ext.get("data"), dict),
          "manifest.json: 'extension' must be an object with 'kind', 'chained' and 'data'")
    return ImageExtension(kind=ext["kind"], data=ext["data"], chained=ext["chained"])


def image_kind(path) -> str:
    """The engine an image directory is for: ``"eie"`` for a plain EIE image, else its
    extension's kind (``"lstm"`` for an ESE image), so a caller can pick the reader.

    Reads only the manifest; nothing else is checked (the reader does that).

    Raises
    ------
    ImageError
        not a directory, no ``manifest.json``, not a JSON object, or a malformed
        ``extension`` entry.
    """
    ext = _extension(_manifest(Path(path)))
    return "eie" if ext is None else ext.kind


def _manifest(root: Path) -> dict:
    _need(root.is_dir(), f"{root}: not an image directory")
    try:
        manifest = json.loads((root / "manifest.json").read_text())
    except FileNotFoundError:
        raise ImageError(f"{root}: manifest.json missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ImageError(f"manifest.json: not valid JSON ({exc})") from None
    except RecursionError:
        raise ImageError("manifest.json: nested too deeply to be a manifest") from None
    except OSError as exc:
        raise ImageError(f"manifest.json: cannot read ({exc.strerror or exc})") from None
    _need(isinstance(manifest, dict), "manifest.json: not a JSON object")
    return manifest


def _read(path) -> tuple[PackedImage, ImageExtension | None]:
    root = Path(path)
    manifest = _manifest(root)
    _need(manifest.get("format") == "eie-image",
          f"manifest.json: format is {manifest.get('format')!r}, expected 'eie-image'")
    _need(manifest.get("version") == IMAGE_FORMAT_VERSION,
          f"manifest.json: version {manifest.get('version')!r} is not supported "
          f"(this reader handles version {IMAGE_FORMAT_VERSION})")
    try:
        cfg = EIEConfig.from_dict(manifest.get("config"))
    except ConfigError as exc:
        raise ImageError(f"manifest.json: bad config ({exc})") from None
    _need(manifest.get("config_id") == cfg.config_id,
          f"manifest.json: config_id {manifest.get('config_id')!r} does not match its config "
          f"({cfg.config_id})")
    _need(cfg.word_bits <= 64, f"manifest.json: {cfg.word_bits}-bit spmat words unsupported")
    _check_size(cfg)

    memories = manifest.get("memories")
    _need(isinstance(memories, dict), "manifest.json: 'memories' missing")
    shapes = cfg.memory_shapes()
    expected = {"codebook": shapes["codebook"], "program": shapes["program"]}
    for p in range(cfg.n_pes):
        for kind in ("spmat", "ptr_even", "ptr_odd", "bias"):
            expected[f"pe{p:03d}_{kind}"] = shapes[f"pe_{kind}"]
    extension = _extension(manifest)
    extra = sorted(set(memories) - set(expected))
    _need(not extra or extension is not None, f"manifest.json: unknown memories {extra[:4]}")
    for mem in extra:
        rec = memories[mem]
        _need(isinstance(rec, dict) and _is_int(rec.get("width")) and _is_int(rec.get("depth"))
              and 1 <= rec["width"] <= 256 and 1 <= rec["depth"] <= MAX_EXTENSION_DEPTH,
              f"manifest.json: extension memory {mem} needs a width in [1, 256] and a depth "
              f"in [1, {MAX_EXTENSION_DEPTH}]")
        expected[mem] = (rec["width"], rec["depth"])
    words = {}
    for mem, (width, depth) in expected.items():
        rec = memories.get(mem)
        _need(isinstance(rec, dict), f"manifest.json: memory {mem} missing")
        _need(rec.get("width") == width and rec.get("depth") == depth,
              f"manifest.json: memory {mem} is {rec.get('width')}x{rec.get('depth')}, "
              f"config says {width}x{depth}")
        files = rec.get("files")
        _need(isinstance(files, dict) and files and set(files) <= set(_DECODERS),
              f"manifest.json: memory {mem} has no valid 'files'")
        data = {fmt: _read_checked(root, rec, fmt, mem) for fmt in files}
        fmt = next(f for f in _READ_ORDER if f in data)
        words[mem] = _DECODERS[fmt](data[fmt], width, depth, rec["files"][fmt])

    n = cfg.n_pes
    image = PackedImage.empty(cfg)
    for p in range(n):
        image.spmat[p] = words[f"pe{p:03d}_spmat"]
        image.ptr_even[p] = words[f"pe{p:03d}_ptr_even"]
        image.ptr_odd[p] = words[f"pe{p:03d}_ptr_odd"]
        image.bias[p] = _signed(words[f"pe{p:03d}_bias"], cfg.acc_bits)
    image.codebook[:] = _signed(words["codebook"], cfg.codebook_bits)

    program = manifest.get("program")
    _need(isinstance(program, list) and 1 <= len(program) <= cfg.max_tiles,
          f"manifest.json: program must list 1..{cfg.max_tiles} descriptors")
    prog_words = [int(w) for w in words["program"]]
    prog_file = memories["program"]["files"]
    prog_file = prog_file[next(f for f in _READ_ORDER if f in prog_file)]
    for t, rec in enumerate(program):
        desc, value = _descriptor(rec, t, cfg)
        _need(prog_words[t] == value, f"{prog_file}: word {t} (0x{prog_words[t]:x}) differs "
                                      f"from the manifest's {rec['word']}")
        _need(desc.last == (t == len(program) - 1),
              f"manifest.json: program[{t}]: 'last' must be set on the final tile only")
        image.program.append(desc)
    _need(not any(prog_words[len(program):]),
          f"{prog_file}: words past the program's {len(program)} tiles are not zero")

    layers = manifest.get("layers")
    _need(isinstance(layers, list) and layers, "manifest.json: 'layers' missing or empty")
    next_tile = 0
    for k, rec in enumerate(layers):
        info = _layer(rec, k, cfg)
        what = f"manifest.json: layer {k} ({info.name})"
        _need(info.first_tile == next_tile and info.n_tiles >= 1,
              f"{what}: tiles do not follow the previous layer's")
        next_tile += info.n_tiles
        _need(next_tile <= len(program), f"{what}: tiles run past the program")
        _need(info.n_tiles == -(-info.n_out // cfg.rows_per_tile),
              f"{what}: {info.n_tiles} tiles do not cover {info.n_out} rows")
        _need(k == 0 or layers[k - 1].get("n_out") == info.n_in
              or (extension is not None and not extension.chained),
              f"{what}: n_in does not match the previous layer's n_out")
        _need(-(-max(info.n_in, info.n_out) // n) <= cfg.act_depth,
              f"{what}: vectors longer than the activation buffers")
        for t in range(info.n_tiles):
            d = image.program[info.first_tile + t]
            _need(d.slot == info.slot and d.shift == info.w_frac and d.relu == info.relu
                  and d.bias_en == info.has_bias and d.in_local == -(-info.n_in // n)
                  and d.swap == (t == info.n_tiles - 1),
                  f"{what}: program[{info.first_tile + t}] disagrees with the layer")
        _need(image.codebook[info.slot * cfg.codebook_size] == 0,
              f"codebook: slot {info.slot} value 0 is not 0")
        image.layers.append(info)
    _need(next_tile == len(program), "manifest.json: program has tiles no layer owns")
    _check_program(image)

    pes = manifest.get("pes", [])
    _need(isinstance(pes, list) and all(isinstance(pe, dict) for pe in pes),
          "manifest.json: 'pes' must be a list of objects")
    image.stats = {"pes": [dict(pe) for pe in pes]}
    if extension is not None:
        extension.memories = {mem: (width, depth, words[mem], False)
                              for mem, (width, depth) in expected.items() if mem in extra}
    return image, extension


def check_config(image: PackedImage, config: EIEConfig) -> None:
    """Raise ``ImageError`` if ``image`` was packed for a config other than ``config``.

    The message names every differing field (image value versus design value).
    """
    mine, theirs = image.config.to_dict(), config.to_dict()
    diff = [f"{k}={mine[k]} (image) vs {theirs.get(k)} (design)"
            for k in mine if mine[k] != theirs.get(k)]
    if diff:
        raise ImageError("image was packed for a different config: " + ", ".join(diff))

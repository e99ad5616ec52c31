"""System tests need a C++ compiler and make for Verilator.

On a developer machine without them the Verilator suite is skipped cleanly. Under CI (the
``CI`` environment variable set, as ``CI=true bash .ci/run`` does) a missing tool is an
error naming it instead: a CI image without a C++ compiler must not pass green.
"""

import os
import shutil
import sys
from pathlib import Path

import pytest

# The LSTM system tests build their models with the unit tests' shared helpers
# (tests/lstm_models.py), also when sim_tests is run on its own.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

# Test models are small and short: compile them without C++ optimisation (a 64-PE model
# builds in ~30 s instead of several minutes). Explicit settings win.
os.environ.setdefault("EIE_SIM_OPT", "-O0")

TOOLS = ("make", "c++")
_MISSING_KEY = pytest.StashKey[str]()


def in_ci() -> bool:
    """``CI`` is set to anything but an explicit no (``""``, ``0``, ``false``, ``no``)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def pytest_collection_modifyitems(config, items):
    missing = missing_tools()
    if not missing:
        return
    reason = f"Verilator system tests need {', '.join(missing)} (not found on PATH)"
    if in_ci():
        # Error every system test at setup (see pytest_runtest_setup): under CI the
        # toolchain is part of the environment, so its absence is a failure.
        for item in items:
            if "sim_tests" in str(item.fspath):
                item.stash[_MISSING_KEY] = reason
        return
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if "sim_tests" in str(item.fspath):
            item.add_marker(skip)


def pytest_runtest_setup(item):
    reason = item.stash.get(_MISSING_KEY, None)
    if reason is not None:
        pytest.fail(f"CI is set but {reason}", pytrace=False)

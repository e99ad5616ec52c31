"""System tests need a C++ compiler and make for Verilator; skip them cleanly without."""

import os
import shutil

import pytest

# Test models are small and short: compile them without C++ optimisation (a 64-PE model
# builds in ~30 s instead of several minutes). Explicit settings win.
os.environ.setdefault("EIE_SIM_OPT", "-O0")


def pytest_collection_modifyitems(config, items):
    missing = [tool for tool in ("make", "c++") if shutil.which(tool) is None]
    if not missing:
        return
    skip = pytest.mark.skip(reason=f"Verilator system tests need {', '.join(missing)}")
    for item in items:
        if "sim_tests" in str(item.fspath):
            item.add_marker(skip)

"""Install contract (issue 9): pyproject.toml states compatible ranges, constraints.txt the
exact versions (which must lie in those ranges); the Verilator build cache defaults to the
user's cache directory, not the package's folder."""

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from sim_tests.runner import sim_build_root

ROOT = Path(__file__).resolve().parent.parent


def requirements():
    with open(ROOT / "pyproject.toml", "rb") as f:
        return [Requirement(r) for r in tomllib.load(f)["project"]["dependencies"]]


def pins() -> dict[str, Version]:
    out = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            out[canonicalize_name(name)] = Version(version)
    return out


def test_runtime_dependencies_are_ranges():
    for req in requirements():
        assert req.specifier, f"{req.name} has no version range"
        assert all(spec.operator not in ("==", "===") for spec in req.specifier), (
            f"{req} is an exact pin: pins belong in constraints.txt")


def test_pins_lie_in_the_ranges():
    pinned = pins()
    for req in requirements():
        name = canonicalize_name(req.name)
        assert name in pinned, f"{req.name} is not pinned in constraints.txt"
        assert req.specifier.contains(pinned[name], prereleases=True), (
            f"constraints.txt pins {name}=={pinned[name]} outside {req}")


def test_makefile_names_no_machine_path():
    makefile = (ROOT / "Makefile").read_text()
    assert not re.search(r"(?<![\w.])/(opt|usr|home|tmp|srv|mnt)/", makefile)
    assert "--find-links" not in makefile


def test_sim_build_defaults_to_the_user_cache(tmp_path):
    home = tmp_path / "home"
    assert sim_build_root({"HOME": str(home)}) == home / ".cache" / "eie-ese" / "sim_build"
    assert sim_build_root({"HOME": str(home), "XDG_CACHE_HOME": ""}) == (
        home / ".cache" / "eie-ese" / "sim_build")
    # a relative XDG_CACHE_HOME is invalid by the XDG spec and ignored
    assert sim_build_root({"HOME": str(home), "XDG_CACHE_HOME": "rel"}) == (
        home / ".cache" / "eie-ese" / "sim_build")
    cache = tmp_path / "xdg"
    assert sim_build_root({"HOME": str(home), "XDG_CACHE_HOME": str(cache)}) == (
        cache / "eie-ese" / "sim_build")
    override = tmp_path / "builds"
    assert sim_build_root({"HOME": str(home), "XDG_CACHE_HOME": str(cache),
                           "EIE_SIM_BUILD": str(override)}) == override

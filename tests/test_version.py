"""``eie --version`` and ``eie.__version__`` (issue 9): the package's version, from its
metadata, or from pyproject.toml in a source tree that is not installed."""

import importlib.metadata
import tomllib
from pathlib import Path

import pytest

import eie
from eie.cli import main

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def pyproject_version() -> str:
    with open(PYPROJECT, "rb") as f:
        return tomllib.load(f)["project"]["version"]


def test_dunder_version_is_the_distribution_version():
    assert eie.__version__ == importlib.metadata.version("eie-ese") == pyproject_version()


def test_cli_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    out = capsys.readouterr()
    assert (out.out, out.err) == (f"eie {pyproject_version()}\n", "")


def test_fallback_without_metadata(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    assert eie._version() == pyproject_version()

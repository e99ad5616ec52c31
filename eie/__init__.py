"""EIE/ESE sparse-accelerator generator: the user-facing layer (CLI, Python API, demo,
benchmarks).

The Python API mirrors the ``eie`` command::

    import eie
    image = eie.pack("mlp.pt", "img", config=eie.EIEConfig(n_pes=4), density=0.1)
    out = eie.golden("img", x)          # or eie.sim("img", x) on the RTL
    eie.build("proj", image="img")
    table = eie.sweep("mlp.pt", "sweep", grid={"n_pes": [8, 16], "queue_depth": [4, 8]})
    lstm = eie.pack("lstm.pt", "lstm_img", config=eie.ESEConfig(channels=2))  # an LSTMImage
"""

from importlib import metadata as _metadata
from pathlib import Path as _Path

from contract.config import EIEConfig
from contract.image import PackedImage
from contract.image_read import read_image
from contract.lstm_config import ESEConfig
from contract.lstm_image import LSTMImage

from .api import build, golden, inspect_image, load_input, pack, resources, sim, verilog

# the function eie.sweep (the module stays importable: from eie.sweep import ...)
from .sweep import sweep


def _version() -> str:
    """The installed distribution's version; in a source tree that is not installed, the
    version in its ``pyproject.toml`` (one number, kept there)."""
    try:
        return _metadata.version("eie-ese")
    except _metadata.PackageNotFoundError:
        import tomllib

        pyproject = _Path(__file__).resolve().parent.parent / "pyproject.toml"
        try:
            with open(pyproject, "rb") as f:
                return tomllib.load(f)["project"]["version"]
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return "0+unknown"


#: Version of eie-ese (``eie --version``).
__version__ = _version()

__all__ = ["__version__", "EIEConfig", "ESEConfig", "PackedImage", "LSTMImage", "read_image",
           "pack", "golden", "sim", "verilog", "build", "resources", "inspect_image",
           "load_input", "sweep"]

"""EIE/ESE sparse-accelerator generator: the user-facing layer (CLI, Python API, demo,
benchmarks).

The Python API mirrors the ``eie`` command::

    import eie
    image = eie.pack("mlp.pt", "img", config=eie.EIEConfig(n_pes=4), density=0.1)
    out = eie.golden("img", x)          # or eie.sim("img", x) on the RTL
    eie.build("proj", image="img")
    lstm = eie.pack("lstm.pt", "lstm_img", config=eie.ESEConfig(channels=2))  # an LSTMImage
"""

from contract.config import EIEConfig
from contract.image import PackedImage
from contract.image_read import read_image
from contract.lstm_config import ESEConfig
from contract.lstm_image import LSTMImage

from .api import build, golden, inspect_image, load_input, pack, resources, sim, verilog

__all__ = ["EIEConfig", "ESEConfig", "PackedImage", "LSTMImage", "read_image", "pack",
           "golden", "sim", "verilog", "build", "resources", "inspect_image", "load_input"]

"""EIE/ESE sparse-accelerator generator: the user-facing layer (CLI, Python API, demo,
benchmarks).

The Python API mirrors the ``eie`` command::

    import eie
    image = eie.pack("mlp.pt", "img", config=eie.EIEConfig(n_pes=4), density=0.1)
    out = eie.golden("img", x)          # or eie.sim("img", x) on the RTL
    eie.build("proj", image="img")
"""

from contract.config import EIEConfig
from contract.image import PackedImage
from contract.image_read import read_image

from .api import build, golden, inspect_image, load_input, pack, resources, sim, verilog

__all__ = ["EIEConfig", "PackedImage", "read_image", "pack", "golden", "sim", "verilog",
           "build", "resources", "inspect_image", "load_input"]

"""The contract layer: the one frozen config, the packed image (container, descriptor
codec, on-disk reader and writer, entry decoder) and the error types.

Every other layer (compiler/, golden/, rtl/, boards/, sim_tests/, eie/) builds on this one;
it imports nothing of theirs, nor torch or Amaranth (see the layers contract in
``pyproject.toml``).
"""

from .config import EIEConfig, clog2
from .errors import ConfigError, ImageError
from .image import IMAGE_FORMAT_VERSION, Descriptor, LayerInfo, PackedImage
from .image_read import check_config, read_image
from .image_write import FORMATS, write_image

__all__ = ["EIEConfig", "clog2", "ConfigError", "ImageError", "IMAGE_FORMAT_VERSION",
           "Descriptor", "LayerInfo", "PackedImage", "check_config", "read_image",
           "FORMATS", "write_image"]

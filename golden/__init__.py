"""Bit-exact golden model (docs/numerics.md) and cycle model (docs/architecture.md).

Never imports Amaranth or the compiler: it decodes the image's memories with the
contract layer's decoder (``contract.decode``). ``ImageDecodeError`` is
``contract.errors.ImageDecodeError``, re-exported.
"""

from .bound import error_bound
from .cycle_model import PIPELINE, CycleReport, compute_span, cycles
from .model import (
    GoldenResult,
    ImageDecodeError,
    decode_program,
    decode_tile,
    dequantize,
    infer,
    quantize_input,
    run,
    write_back,
)

__all__ = [
    "run", "infer", "quantize_input", "dequantize", "cycles", "error_bound", "decode_tile",
    "decode_program", "write_back", "compute_span", "GoldenResult", "CycleReport",
    "ImageDecodeError", "PIPELINE",
]

"""Compression compiler: PyTorch MLP -> pruned, weight-shared layers -> packed EIE image.

Never imports Amaranth. The stages are importable separately; the common entry points are
re-exported here.
"""

from contract.image_write import write_image

from .compress import Compressed, compress
from .errors import CapacityError, CompileError, ModelError
from .huffman import huffman_bits, huffman_report
from .model import layers_to_torch, load_model
from .pack import pack
from .pack_reference import pack_reference
from .prune import (
    apply_masks,
    balance_prune,
    classifier_train_fn,
    density_schedule,
    iterative_prune,
    magnitude_prune,
    regression_train_fn,
)
from .quantize import (
    finetune_centroids,
    finetune_codebooks,
    share_weights,
    ternarize,
    weight_grads,
)
from .types import DenseLayer, QuantLayer
from .unpack import unpack, unpack_values

__all__ = [
    "CapacityError", "CompileError", "Compressed", "DenseLayer", "ModelError", "QuantLayer",
    "apply_masks", "balance_prune", "classifier_train_fn", "compress", "density_schedule",
    "finetune_centroids", "finetune_codebooks", "huffman_bits",
    "huffman_report", "iterative_prune", "layers_to_torch", "load_model",
    "magnitude_prune", "pack", "pack_reference", "regression_train_fn", "share_weights",
    "ternarize", "unpack",
    "unpack_values", "weight_grads", "write_image",
]

"""Model import: PyTorch module, state_dict, ``.pt``/``.pth`` or ``.safetensors`` -> DenseLayers.

Only multi-layer perceptrons are accepted: a chain of fully-connected layers, each optionally
followed by ReLU. Everything else is rejected with a :class:`~compiler.errors.ModelError`
that names the offending layer or key. Decisions are documented in ``docs/compression.md``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence

import numpy as np

from .errors import ModelError
from .types import DenseLayer

__all__ = ["load_model", "validate_layers", "layers_to_torch"]


def load_model(source, relu=None, final_relu: bool = False) -> list[DenseLayer]:
    """Import an MLP as a list of float64 :class:`DenseLayer`.

    Parameters
    ----------
    source : nn.Module, state_dict, path, or list of DenseLayer
        - ``nn.Module``: its leaf modules, in registration order, must be ``nn.Linear``,
          ``nn.ReLU``, ``nn.Identity``, ``nn.Dropout`` or ``nn.Flatten``. ReLU flags come
          from the ``nn.ReLU`` modules that follow each Linear. Pruning hooks from
          ``torch.nn.utils.prune`` are honoured (``weight_orig * weight_mask``).
        - state_dict (mapping of name -> tensor/array): every ``<prefix>.weight`` (2-D) is a
          layer, with optional ``<prefix>.bias`` (1-D), in key order.
        - ``str``/``os.PathLike``: a ``.pt``/``.pth`` state_dict (loaded with
          ``weights_only=True``; never unsafe unpickling) or a ``.safetensors`` file. A
          safetensors file does not record key order: layers are ordered by name, with
          numeric parts compared as numbers (``0 < 2 < 10``, ``fc1 < fc2``).
        - a list of :class:`DenseLayer` (validated and copied).
    relu : list of bool, optional
        ReLU flag per layer; overrides the default. Its length must equal the layer count.
    final_relu : bool
        Apply ReLU after the last layer as well (ignored when ``relu`` is given). For a
        state_dict the default is ReLU after every hidden layer and none after the last;
        for an ``nn.Module`` it is what the module's ``nn.ReLU`` modules say.

    Raises
    ------
    ModelError
        Unsupported layer types or keys, non-float dtypes, NaN/Inf, shapes that do not
        chain, an empty model, or a file that cannot be read safely.
    """
    if isinstance(source, (str, os.PathLike)):
        layers = _from_state_dict(_load_file(source), sort_by_name=_is_safetensors(source))
        default_relu = None
    elif _is_module(source):
        layers, default_relu = _from_module(source)
    elif isinstance(source, Mapping):
        layers = _from_state_dict(source)
        default_relu = None
    elif isinstance(source, Sequence) and all(isinstance(x, DenseLayer) for x in source):
        layers = [DenseLayer(x.name, x.weight, x.bias, x.relu) for x in source]
        default_relu = [x.relu for x in source]
    else:
        raise ModelError(
            f"cannot import a model from {type(source).__name__}: expected an nn.Module, "
            "a state_dict, a .pt/.pth/.safetensors path or a list of DenseLayer")

    if not layers:
        raise ModelError("the model has no fully-connected (Linear) layers")
    n = len(layers)
    if relu is not None:
        flags = [bool(r) for r in relu]
        if len(flags) != n:
            raise ModelError(f"relu has {len(flags)} flags but the model has {n} layers")
    elif default_relu is not None:
        flags = list(default_relu)
        if final_relu:
            flags[-1] = True
    else:
        flags = [True] * (n - 1) + [bool(final_relu)]
    for layer, flag in zip(layers, flags, strict=True):
        layer.relu = flag
    return validate_layers(layers)


def validate_layers(layers: list[DenseLayer]) -> list[DenseLayer]:
    """Check dtype, shapes, finiteness and chaining; return float64 copies.

    Raises
    ------
    ModelError
        Naming the layer (and, for a broken chain, both layers).
    """
    if not layers:
        raise ModelError("the model has no fully-connected (Linear) layers")
    out = []
    for layer in layers:
        weight = _to_float64(layer.weight, f"layer {layer.name!r} weight")
        if weight.ndim != 2 or 0 in weight.shape:
            raise ModelError(f"layer {layer.name!r}: weight must be a non-empty 2-D matrix, "
                             f"not shape {tuple(weight.shape)}")
        bias = None
        if layer.bias is not None:
            bias = _to_float64(layer.bias, f"layer {layer.name!r} bias")
            if bias.shape != (weight.shape[0],):
                raise ModelError(f"layer {layer.name!r}: bias has shape {tuple(bias.shape)}, "
                                 f"expected ({weight.shape[0]},) to match the weight")
        for what, arr in (("weight", weight), ("bias", bias)):
            if arr is None:
                continue
            bad = ~np.isfinite(arr)
            if bad.any():
                n_nan = int(np.isnan(arr).sum())
                n_inf = int(bad.sum()) - n_nan
                raise ModelError(f"layer {layer.name!r}: {what} has {n_nan} NaN and "
                                 f"{n_inf} Inf value(s)")
        out.append(DenseLayer(str(layer.name), weight, bias, bool(layer.relu)))
    for prev, nxt in zip(out, out[1:], strict=False):
        if prev.n_out != nxt.n_in:
            raise ModelError(f"layers do not chain: {prev.name!r} has {prev.n_out} outputs but "
                             f"the next layer {nxt.name!r} has {nxt.n_in} inputs")
    return out


# ---- sources ---------------------------------------------------------------------------

def _is_module(obj) -> bool:
    try:
        from torch import nn
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return False
    return isinstance(obj, nn.Module)


def _is_safetensors(path) -> bool:
    return os.fspath(path).lower().endswith(".safetensors")


def _load_file(path) -> dict:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ModelError(f"{path}: no such file")
    if _is_safetensors(path):
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            return load_file(path, device="cpu")
        except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
            raise ModelError(f"{path}: not a readable safetensors file ({exc})") from None

    import pickle

    import torch
    try:
        data = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError:
        # torch's own message advises weights_only=False (which this tool never does) and may
        # hold terminal escapes: say in one plain line what to save instead.
        raise ModelError(
            f"{path}: holds pickled Python objects (a whole model saved with "
            "torch.save(model)?), which are never unpickled; save model.state_dict() with "
            "torch.save, or a .safetensors file, instead") from None
    except Exception as exc:  # corrupt zip, truncated file, not a torch file at all
        raise ModelError(f"{path}: not a readable PyTorch state_dict "
                         f"({type(exc).__name__}: {str(exc).strip()[:200]})") from None
    if not isinstance(data, Mapping):
        raise ModelError(f"{path}: holds a {type(data).__name__}, expected a state_dict "
                         "(a mapping of parameter names to tensors)")
    return data


def _natural_key(text: str):
    return [(0, int(part), "") if part.isdigit() else (1, 0, part)
            for part in re.split(r"(\d+)", text) if part]


def _from_state_dict(state: Mapping, sort_by_name: bool = False) -> list[DenseLayer]:
    tensors, problems = {}, []
    for key, value in state.items():
        arr = _as_array(value)
        if arr is None:
            problems.append(f"{key} (a {type(value).__name__}, not a tensor)")
        else:
            tensors[str(key)] = arr

    # Fold torch.nn.utils.prune re-parametrisations: X.weight_orig * X.weight_mask.
    for key in list(tensors):
        if key.endswith("_orig"):
            base = key[: -len("_orig")]
            mask_key = base + "_mask"
            if mask_key in tensors:
                orig, mask = tensors.pop(key), tensors.pop(mask_key)
                if orig.shape != mask.shape:
                    problems.append(f"{key} / {mask_key} (shapes {orig.shape} vs {mask.shape})")
                    continue
                tensors[base] = orig * mask

    prefixes: dict[str, dict[str, np.ndarray]] = {}
    for key, arr in tensors.items():
        prefix, _, leaf = key.rpartition(".")
        if leaf == "weight" and arr.ndim == 2:
            prefixes.setdefault(prefix, {})["weight"] = arr
        elif leaf == "bias" and arr.ndim == 1:
            prefixes.setdefault(prefix, {})["bias"] = arr
        else:
            problems.append(f"{key} (shape {tuple(arr.shape)})")
    for prefix, parts in prefixes.items():
        if "weight" not in parts:
            problems.append(f"{prefix + '.' if prefix else ''}bias (a bias without a 2-D weight)")
    if problems:
        raise ModelError("state_dict entries that are not the 2-D weight or 1-D bias of a "
                         "Linear layer (only MLPs are supported): " + ", ".join(problems))

    names = list(prefixes)
    if sort_by_name:
        names.sort(key=_natural_key)
    return [DenseLayer(p or "weight", prefixes[p]["weight"], prefixes[p].get("bias"), True)
            for p in names]


def _as_array(value) -> np.ndarray | None:
    """A tensor/array as NumPy (dtype kept, so non-float dtypes can be reported)."""
    if isinstance(value, np.ndarray):
        return value
    try:
        import torch
    except ImportError:  # pragma: no cover
        return None
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.dtype == torch.bfloat16:
            value = value.float()
        return value.numpy()
    return None


def _to_float64(value, what: str) -> np.ndarray:
    arr = _as_array(value)
    if arr is None:
        arr = np.asarray(value)
    if not np.issubdtype(arr.dtype, np.floating):
        raise ModelError(f"{what} has dtype {arr.dtype}; only floating-point weights are "
                         "supported (dequantize integer models first)")
    return np.array(arr, dtype=np.float64, copy=True)


def _from_module(module) -> tuple[list[DenseLayer], list[bool]]:
    from torch import nn

    layers: list[DenseLayer] = []
    flags: list[bool] = []
    unsupported = []
    for name, sub in module.named_modules():
        children = list(sub.children())
        own_params = [n for n, _ in sub.named_parameters(recurse=False)]
        if isinstance(sub, nn.Linear):
            weight, bias = _linear_tensors(sub)
            layers.append(DenseLayer(name or "linear", weight, bias, False))
            flags.append(False)
        elif isinstance(sub, nn.ReLU):
            if not layers:
                unsupported.append(f"{name} (ReLU before the first Linear layer)")
            else:
                flags[-1] = True
        elif children or isinstance(sub, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
            if own_params:
                unsupported.append(f"{name or type(sub).__name__} ({type(sub).__name__} with "
                                   f"its own parameters {', '.join(own_params)})")
        elif not isinstance(sub, (nn.Identity, nn.Dropout, nn.Flatten)):
            # Dropout is the identity at inference; Flatten is a no-op on a vector input.
            unsupported.append(f"{name or 'model'} ({type(sub).__name__})")
    if unsupported:
        raise ModelError("unsupported layer(s): " + ", ".join(unsupported) + "; only "
                         "Linear, ReLU, Identity, Dropout and Flatten are supported")
    return layers, flags


def _linear_tensors(linear):
    """Weight and bias of an nn.Linear, folding torch.nn.utils.prune masks if present."""
    def get(param):
        orig = getattr(linear, param + "_orig", None)
        mask = getattr(linear, param + "_mask", None)
        value = orig * mask if orig is not None and mask is not None else getattr(linear, param)
        return None if value is None else value.detach().cpu()

    return get("weight"), get("bias")


def layers_to_torch(layers, dtype=None):
    """An ``nn.Sequential`` of ``nn.Linear`` (+ ``nn.ReLU`` where flagged) holding ``layers``.

    ``layers`` may be DenseLayers or QuantLayers (their ``dense()`` weights are used).
    Default dtype is float32.
    """
    import torch
    from torch import nn

    dtype = torch.float32 if dtype is None else dtype
    modules = []
    for layer in layers:
        weight = layer.dense() if hasattr(layer, "dense") else layer.weight
        linear = nn.Linear(layer.n_in, layer.n_out, bias=layer.bias is not None, dtype=dtype)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.asarray(weight, dtype=np.float64)))
            if layer.bias is not None:
                linear.bias.copy_(torch.from_numpy(np.asarray(layer.bias, dtype=np.float64)))
        modules.append(linear)
        if layer.relu:
            modules.append(nn.ReLU())
    return nn.Sequential(*modules)

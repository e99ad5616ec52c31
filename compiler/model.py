"""Model import: PyTorch module, state_dict, ``.pt``/``.pth`` or ``.safetensors`` -> DenseLayers.

Only multi-layer perceptrons are accepted: a chain of fully-connected layers, each optionally
followed by ReLU. Everything else is rejected with a :class:`~compiler.errors.ModelError`
that names the offending layer or key. Decisions are documented in ``docs/compression.md``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .errors import ModelError
from .types import DenseLayer

__all__ = ["load_model", "import_model", "ModelImport", "validate_layers", "layers_to_torch",
           "orders_that_chain", "save_safetensors", "SAFETENSORS_ORDER_KEY"]

#: The safetensors metadata key holding the layer order (comma-separated layer names, as in
#: the state_dict without ``.weight``), e.g. ``save_file(sd, path, metadata={"eie.layers":
#: "fc1,fc2,out"})``. A safetensors file keeps no key order of its own.
SAFETENSORS_ORDER_KEY = "eie.layers"


@dataclass
class ModelImport:
    """What :func:`import_model` found.

    Attributes
    ----------
    layers : list of DenseLayer
        The validated float64 layers, in execution order.
    order_source : str
        Where that order came from, as a phrase: ``"the layer order given"``,
        ``"the forward pass"``,
        ``"the file's key order"``, ``"the file's eie.layers metadata"``, ...
    ambiguous : bool
        The order was not given, traced or stored, and the layer shapes chain in more than
        one order (e.g. square layers), so the order taken may not be the forward order.
    note : str or None
        Why a module's forward pass could not be traced (the registration order was used).
    """

    layers: list[DenseLayer]
    order_source: str
    ambiguous: bool = False
    note: str | None = None



def load_model(source, relu=None, final_relu: bool = False, order=None) -> list[DenseLayer]:
    """Import an MLP as a list of float64 :class:`DenseLayer` (:func:`import_model`'s
    ``layers``; the parameters are the same)."""
    return import_model(source, relu=relu, final_relu=final_relu, order=order).layers


def import_model(source, relu=None, final_relu: bool = False, order=None) -> ModelImport:
    """Import an MLP: its float64 :class:`DenseLayer` list and where the layer order came from.

    Parameters
    ----------
    source : nn.Module, state_dict, path, or list of DenseLayer
        - ``nn.Module``: its leaf modules must be ``nn.Linear``, ``nn.ReLU``,
          ``nn.Identity``, ``nn.Dropout`` or ``nn.Flatten``. The layer order and the ReLU
          flags come from the forward pass (``torch.fx.symbolic_trace``: the Linear calls
          in order, and a ReLU module, ``F.relu``/``torch.relu`` or ``.relu()`` after one);
          when tracing fails, from the registration order and the ``nn.ReLU`` modules that
          follow each Linear (``note`` says why). Pruning hooks from
          ``torch.nn.utils.prune`` are honoured (``weight_orig * weight_mask``).
        - state_dict (mapping of name -> tensor/array): every ``<prefix>.weight`` (2-D) is a
          layer, with optional ``<prefix>.bias`` (1-D), in key order.
        - ``str``/``os.PathLike``: a ``.pt``/``.pth`` state_dict (loaded with
          ``weights_only=True``; never unsafe unpickling) or a ``.safetensors`` file. A
          safetensors file does not record key order: its metadata key ``eie.layers``
          (:data:`SAFETENSORS_ORDER_KEY`) gives the order when present; otherwise layers are
          ordered by name, with numeric parts compared as numbers (``0 < 2 < 10``).
        - a list of :class:`DenseLayer` (validated and copied).
    order : list of str, optional
        The layer order, by name (the state_dict prefix, without ``.weight``); every layer
        exactly once. Overrides all of the above. A module's layers keep their ReLU flags.
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
        chain, an empty model, a file that cannot be read safely, or an ``order`` (or
        ``eie.layers`` metadata) that names unknown layers or leaves some out.
    """
    note = None
    stored = None
    if isinstance(source, (str, os.PathLike)):
        safetensors = _is_safetensors(source)
        layers = _from_state_dict(_load_file(source), sort_by_name=safetensors)
        default_relu = None
        if safetensors:
            stored = _stored_order(source)
            origin = ("the file's eie.layers metadata" if stored is not None else
                      "the layer names in natural order (the .safetensors file has no "
                      "eie.layers metadata)")
        else:
            origin = "the file's key order"
    elif _is_module(source):
        layers, default_relu, note = _from_module(source)
        origin = "the forward pass" if note is None else "the registration order"
    elif isinstance(source, Mapping):
        layers = _from_state_dict(source)
        default_relu = None
        origin = "the state_dict's key order"
    elif isinstance(source, Sequence) and all(isinstance(x, DenseLayer) for x in source):
        layers = [DenseLayer(x.name, x.weight, x.bias, x.relu) for x in source]
        default_relu = [x.relu for x in source]
        origin = "the list's order"
    else:
        raise ModelError(
            f"cannot import a model from {type(source).__name__}: expected an nn.Module, "
            "a state_dict, a .pt/.pth/.safetensors path or a list of DenseLayer")

    if not layers:
        raise ModelError("the model has no fully-connected (Linear) layers")
    chosen = None
    if order is not None:
        what = "the layer order given"
        chosen, origin = _order_names(order, what), what
    elif stored is not None:
        what = f"the file's {SAFETENSORS_ORDER_KEY} metadata"
        chosen = _order_names(stored, what)
    if chosen is not None:
        permutation = _permutation(layers, chosen, what)
        layers = [layers[i] for i in permutation]
        if default_relu is not None:
            default_relu = [default_relu[i] for i in permutation]
    # Only an order nobody stated (file, list or registration order) can be silently wrong.
    guessed = chosen is None and origin != "the forward pass"
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
    try:
        layers = validate_layers(layers)
    except ModelError as exc:
        if note is None or chosen is not None:
            raise
        raise ModelError(f"{exc} (in registration order: the forward pass could not be "
                         f"traced, {note}; give the order as layers=[...] or eie pack "
                         f"--layers)") from None
    shapes = [(layer.n_in, layer.n_out) for layer in layers]
    return ModelImport(layers, origin, guessed and orders_that_chain(shapes) > 1, note)


def save_safetensors(model, path) -> list[str]:
    """Save ``model`` (an ``nn.Module`` or a state_dict) as a ``.safetensors`` file whose
    ``eie.layers`` metadata holds its layer order (a module's forward order, a state_dict's
    key order), so that the file packs as the model runs. Returns that order.
    """
    from safetensors.torch import save_file

    imported = import_model(model)
    state = model.state_dict() if _is_module(model) else model
    tensors = {}
    for key, value in state.items():
        array = _as_array(value)
        if array is None:
            raise ModelError(f"{key}: a {type(value).__name__}, not a tensor")
        import torch
        tensors[str(key)] = torch.from_numpy(np.ascontiguousarray(array))
    names = [layer.name for layer in imported.layers]
    save_file(tensors, os.fspath(path), metadata={SAFETENSORS_ORDER_KEY: ",".join(names)})
    return names


def _order_names(order, what: str) -> list[str]:
    names = order.split(",") if isinstance(order, str) else list(order)
    names = [str(name).strip() for name in names]
    if not names or not all(names):
        raise ModelError(f"{what} must be a non-empty comma list of layer names, "
                         f"not {order!r}")
    return names


def _permutation(layers: list[DenseLayer], names: list[str], what: str) -> list[int]:
    """Indices of ``layers`` in the order ``names`` gives; every layer named exactly once."""
    have = [layer.name for layer in layers]
    unknown = [name for name in names if name not in have]
    twice = sorted({name for name in names if names.count(name) > 1})
    missing = [name for name in have if name not in names]
    if unknown or twice or missing:
        parts = ([f"unknown {', '.join(unknown)}"] if unknown else []) + (
            [f"listed twice {', '.join(twice)}"] if twice else []) + (
            [f"missing {', '.join(missing)}"] if missing else [])
        raise ModelError(f"{what}: {'; '.join(parts)} (the model's layers: "
                         f"{', '.join(have)})")
    return [have.index(name) for name in names]


def orders_that_chain(shapes: list[tuple[int, int]], limit: int = 2) -> int:
    """How many orders of layers with these ``(n_in, n_out)`` shapes chain, up to ``limit``.

    Counted exactly (dynamic programming over subsets) for up to 16 layers; beyond that, 2
    when any layer could also feed a layer other than its successor (a cautious answer).
    """
    n = len(shapes)
    feeds = [[shapes[i][1] == shapes[j][0] and i != j for j in range(n)] for i in range(n)]
    if n > 16:
        return 2 if any(feeds[i][j] for i in range(n) for j in range(n) if j != i + 1) else 1
    # ways[mask][last]: chains using exactly the layers in mask and ending at last (capped).
    ways = [[0] * n for _ in range(1 << n)]
    for i in range(n):
        ways[1 << i][i] = 1
    for mask in range(1, 1 << n):
        for last in range(n):
            count = ways[mask][last]
            if not count:
                continue
            for nxt in range(n):
                if not mask >> nxt & 1 and feeds[last][nxt]:
                    cell = ways[mask | 1 << nxt]
                    cell[nxt] = min(limit, cell[nxt] + count)
    return min(limit, sum(ways[(1 << n) - 1]))


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


def _stored_order(path) -> str | None:
    """The ``eie.layers`` metadata of a safetensors file (``None`` when absent)."""
    from safetensors import safe_open

    with safe_open(os.fspath(path), framework="pt") as f:
        metadata = f.metadata() or {}
    return metadata.get(SAFETENSORS_ORDER_KEY)


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


def _from_module(module) -> tuple[list[DenseLayer], list[bool], str | None]:
    """The module's Linear layers and ReLU flags in forward order, and ``None``; or, when
    the forward pass cannot be traced, in registration order and the reason."""
    layers, flags = _registered(module)
    by_name = {layer.name: i for i, layer in enumerate(layers)}
    try:
        traced = _traced(module)
    except Exception as exc:  # torch.fx raises many types (TraceError, TypeError, ...)
        text = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else ""
        return layers, flags, f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    names = [name for name, _ in traced]
    if sorted(names) != sorted(by_name) or len(set(names)) != len(names):
        return layers, flags, "the forward pass does not call every Linear layer exactly once"
    return ([layers[by_name[name]] for name in names], [relu for _, relu in traced], None)


def _traced(module) -> list[tuple[str, bool]]:
    """``(Linear name, ReLU follows)`` in the order ``module``'s traced forward calls them."""
    import torch
    from torch import fx, nn
    from torch.nn import functional

    graph = fx.symbolic_trace(module).graph
    relus = {torch.relu, functional.relu, torch.relu_}
    calls: list[list] = []
    for node in graph.nodes:
        if node.op == "call_module":
            sub = module.get_submodule(node.target)
            if isinstance(sub, nn.Linear):
                calls.append([node.target or "linear", False])
            elif isinstance(sub, nn.ReLU) and calls:
                calls[-1][1] = True
        elif calls and ((node.op == "call_function" and node.target in relus)
                        or (node.op == "call_method" and node.target in ("relu", "relu_"))):
            calls[-1][1] = True
    return [(name, relu) for name, relu in calls]


def _registered(module) -> tuple[list[DenseLayer], list[bool]]:
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

"""Model import: nn.Module, state_dict, .pt, .safetensors, torch prune, and every error."""

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn
from torch.nn.utils import prune

from compiler.errors import CompileError, ModelError
from compiler.model import load_model
from compiler.types import DenseLayer


def make_mlp(seed=0, sizes=(12, 8, 6, 3)):
    torch.manual_seed(seed)
    mods = []
    for a, b in zip(sizes, sizes[1:], strict=False):
        mods += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*mods[:-1])


def check_matches(layers, model):
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(layers) == len(linears)
    for layer, lin in zip(layers, linears, strict=True):
        assert layer.weight.dtype == np.float64
        np.testing.assert_array_equal(layer.weight, lin.weight.detach().double().numpy())
        np.testing.assert_array_equal(layer.bias, lin.bias.detach().double().numpy())


def test_errors_are_value_errors():
    assert issubclass(ModelError, CompileError)
    assert issubclass(CompileError, ValueError)


def test_from_module_relu_flags_and_names():
    model = make_mlp()
    layers = load_model(model)
    check_matches(layers, model)
    assert [l.name for l in layers] == ["0", "2", "4"]
    assert [l.relu for l in layers] == [True, True, False]
    assert [(l.n_out, l.n_in) for l in layers] == [(8, 12), (6, 8), (3, 6)]


def test_module_flags_follow_module_not_default():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 5), nn.Dropout(0.1), nn.Linear(5, 2),
                          nn.ReLU(), nn.Identity())
    assert [l.relu for l in load_model(model)] == [False, True]
    assert [l.relu for l in load_model(model, relu=[True, False])] == [True, False]


def test_nested_custom_module():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
            self.head = nn.Linear(4, 2, bias=False)

    layers = load_model(Net())
    assert [l.name for l in layers] == ["body.0", "head"]
    assert layers[1].bias is None
    assert [l.relu for l in layers] == [True, False]


def test_from_state_dict_default_relu_and_override():
    model = make_mlp()
    layers = load_model(model.state_dict())
    check_matches(layers, model)
    assert [l.relu for l in layers] == [True, True, False]
    assert [l.relu for l in load_model(model.state_dict(), final_relu=True)] == [True] * 3
    flags = [False, True, False]
    assert [l.relu for l in load_model(model.state_dict(), relu=flags)] == flags
    with pytest.raises(ModelError, match="relu has 2 flags but the model has 3"):
        load_model(model.state_dict(), relu=[True, False])


def test_from_numpy_state_dict_and_dense_layers():
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    layers = load_model({"fc.weight": w})
    assert layers[0].name == "fc" and layers[0].bias is None and not layers[0].relu
    np.testing.assert_array_equal(layers[0].weight, w.astype(np.float64))
    again = load_model(layers)
    assert again[0] is not layers[0]
    np.testing.assert_array_equal(again[0].weight, layers[0].weight)


def test_pt_file(tmp_path):
    model = make_mlp(1)
    path = tmp_path / "m.pt"
    torch.save(model.state_dict(), path)
    check_matches(load_model(path), model)
    check_matches(load_model(str(path)), model)


def test_safetensors_file_orders_layers_numerically(tmp_path):
    # 12 layers: safetensors sorts keys as strings ("10" < "2"), the loader must not.
    model = nn.Sequential(*[nn.Linear(3 + i, 4 + i) for i in range(12)])
    path = tmp_path / "m.safetensors"
    save_file(model.state_dict(), str(path))
    layers = load_model(path)
    assert [l.name for l in layers] == [str(i) for i in range(12)]
    check_matches(layers, model)


def test_torch_prune_state_dict_round_trips_zeros(tmp_path):
    model = make_mlp(2)
    for m in model:
        if isinstance(m, nn.Linear):
            prune.l1_unstructured(m, "weight", amount=0.5)
    expected = [(m.weight_orig * m.weight_mask).detach().double().numpy()
                for m in model if isinstance(m, nn.Linear)]
    path = tmp_path / "pruned.pt"
    torch.save(model.state_dict(), path)
    for source in (model, model.state_dict(), path):
        layers = load_model(source)
        for layer, exp in zip(layers, expected, strict=True):
            np.testing.assert_array_equal(layer.weight, exp)
            assert (layer.weight == 0).sum() == exp.size // 2


def test_nan_and_inf_named():
    sd = make_mlp().state_dict()
    sd["2.weight"][0, 0] = float("nan")
    sd["2.weight"][1, 1] = float("nan")
    sd["2.weight"][2, 2] = float("inf")
    with pytest.raises(ModelError, match=r"'2': weight has 2 NaN and 1 Inf"):
        load_model(sd)
    sd = make_mlp().state_dict()
    sd["4.bias"][0] = -float("inf")
    with pytest.raises(ModelError, match=r"'4': bias has 0 NaN and 1 Inf"):
        load_model(sd)


def test_shapes_must_chain():
    sd = {"a.weight": torch.zeros(5, 4), "b.weight": torch.zeros(3, 6)}
    with pytest.raises(ModelError, match=r"'a' has 5 outputs .* 'b' has 6 inputs"):
        load_model(sd)


def test_bias_shape_checked():
    with pytest.raises(ModelError, match="bias has shape"):
        load_model({"a.weight": torch.zeros(5, 4), "a.bias": torch.zeros(4)})


def test_unknown_keys_listed():
    sd = {"fc.weight": torch.zeros(2, 3), "bn.running_mean": torch.zeros(2),
          "conv.weight": torch.zeros(2, 3, 3, 3), "step": 3}
    with pytest.raises(ModelError) as info:
        load_model(sd)
    msg = str(info.value)
    assert "bn.running_mean" in msg and "conv.weight" in msg and "step" in msg


@pytest.mark.parametrize("layer", [nn.Conv2d(1, 2, 3), nn.LSTM(4, 4), nn.BatchNorm1d(4),
                                   nn.Sigmoid()])
def test_unsupported_module_named(layer):
    model = nn.Sequential(nn.Linear(4, 4), layer)
    with pytest.raises(ModelError, match=type(layer).__name__):
        load_model(model)


def test_relu_before_first_linear_rejected():
    with pytest.raises(ModelError, match="ReLU before the first Linear"):
        load_model(nn.Sequential(nn.ReLU(), nn.Linear(2, 2)))


def test_empty_model():
    with pytest.raises(ModelError, match="no fully-connected"):
        load_model(nn.Sequential())
    with pytest.raises(ModelError, match="no fully-connected"):
        load_model({})


def test_non_float_dtype():
    with pytest.raises(ModelError, match="int8"):
        load_model({"q.weight": torch.zeros(2, 2, dtype=torch.int8)})


def test_half_precision_accepted():
    layers = load_model({"h.weight": torch.ones(2, 2, dtype=torch.bfloat16)})
    np.testing.assert_array_equal(layers[0].weight, np.ones((2, 2)))


def test_corrupt_files(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"this is not a zip archive at all")
    with pytest.raises(ModelError, match="bad.pt"):
        load_model(bad)
    bad_st = tmp_path / "bad.safetensors"
    bad_st.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(ModelError, match="safetensors"):
        load_model(bad_st)
    with pytest.raises(ModelError, match="no such file"):
        load_model(tmp_path / "missing.pt")


def test_pickled_module_needs_unsafe_load(tmp_path):
    path = tmp_path / "whole.pt"
    torch.save(make_mlp(), path)  # pickles the nn.Module itself
    with pytest.raises(ModelError, match=r"^[^\n\x1b]*: holds pickled Python objects .*never "
                                         r"unpickled; save model\.state_dict\(\) with "
                                         r"torch\.save, or a \.safetensors file, instead$"):
        load_model(path)


def test_file_holding_a_tensor(tmp_path):
    path = tmp_path / "t.pt"
    torch.save(torch.zeros(3), path)
    with pytest.raises(ModelError, match="expected a state_dict"):
        load_model(path)


def test_unsupported_source_type():
    with pytest.raises(ModelError, match="cannot import"):
        load_model(42)
    assert isinstance(load_model([DenseLayer("x", np.eye(2), None, False)])[0], DenseLayer)

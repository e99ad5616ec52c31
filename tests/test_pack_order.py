"""The MLP layer order: printed by `eie pack`, set by --layers / ``layers=``, taken from a
module's forward pass and from a .safetensors file's ``eie.layers`` metadata (issue 9,
"Layer order")."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import eie
from compiler import ModelError, compress
from compiler.model import import_model, load_model, orders_that_chain, save_safetensors
from contract.config import EIEConfig
from eie.cli import main

CONFIG = EIEConfig(n_pes=2)
AMBIGUOUS = ("eie pack: warning: the layer shapes chain in more than one order; the order "
             "was taken from {}; set it with --layers a,b,c (Python: layers=[...])\n")


class OutFirst(nn.Module):
    """Registers its output layer first; runs fc1 -> ReLU -> fc_out."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc_out = nn.Linear(8, 3)
        self.fc1 = nn.Linear(4, 8)

    def forward(self, x):
        return self.fc_out(torch.relu(self.fc1(x)))


class Untraceable(OutFirst):
    def forward(self, x):
        if x.sum() > 0:      # data-dependent control flow: torch.fx cannot trace it
            x = x + 0
        return self.fc_out(torch.relu(self.fc1(x)))


def _square_state() -> dict:
    """Three 4x4 layers named in key order c, a, b: every order chains."""
    rng = np.random.default_rng(3)
    return {f"{name}.{part}": torch.from_numpy(rng.normal(size=shape).astype(np.float32))
            for name in "cab" for part, shape in (("weight", (4, 4)), ("bias", (4,)))}


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _images_equal(a, b) -> None:
    assert a.config == b.config
    for name in ("spmat", "ptr_even", "ptr_odd", "bias", "codebook"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.program == b.program
    assert a.layers == b.layers


# ---- counting orders -------------------------------------------------------------------

def test_orders_that_chain_counts_by_hand():
    assert orders_that_chain([(4, 4)] * 3) == 2                 # 3! orders, capped at 2
    assert orders_that_chain([(4, 4)] * 3, limit=10) == 6
    # 64-128-64-10: 128->64 could feed 64->128 again, but only one order uses every layer
    assert orders_that_chain([(64, 128), (128, 64), (64, 10)]) == 1
    assert orders_that_chain([(2, 3), (3, 2)]) == 2             # a 2-cycle: both orders
    assert orders_that_chain([(2, 3)]) == 1


# ---- modules: the forward pass ---------------------------------------------------------

def test_module_order_and_relu_come_from_the_forward_pass():
    model = OutFirst()
    imported = import_model(model)
    assert [layer.name for layer in imported.layers] == ["fc1", "fc_out"]
    assert [layer.relu for layer in imported.layers] == [True, False]
    assert (imported.order_source, imported.ambiguous, imported.note) == (
        "the forward pass", False, None)
    assert np.array_equal(imported.layers[0].weight, model.fc1.weight.detach().double())
    x = torch.randn(5, 4)
    got = compress(model, bits=8).to_torch()(x)
    assert torch.allclose(got, model(x), atol=1e-2)


def test_untraceable_module_falls_back_to_registration_order_with_a_note():
    with pytest.raises(ModelError) as info:
        load_model(Untraceable())
    assert str(info.value) == (
        "layers do not chain: 'fc_out' has 3 outputs but the next layer 'fc1' has 4 inputs "
        "(in registration order: the forward pass could not be traced, TraceError: "
        "symbolically traced variables cannot be used as inputs to control flow; give the "
        "order as layers=[...] or eie pack --layers)")
    imported = import_model(Untraceable(), order=["fc1", "fc_out"])
    assert [layer.name for layer in imported.layers] == ["fc1", "fc_out"]
    assert imported.order_source == "the layer order given"
    assert imported.note.startswith("TraceError: ")


def test_api_pack_of_a_module_prints_the_forward_order():
    _, text = eie.api.pack_report(OutFirst(), config=CONFIG)
    assert text.splitlines()[0] == "layers (from the forward pass): fc1, fc_out"


# ---- state_dicts and files -------------------------------------------------------------

def test_square_layers_warn_that_the_order_was_taken_from_the_file(tmp_path, capsys):
    torch.save(_square_state(), tmp_path / "sq.pt")
    code, out, err = _run(capsys, "pack", tmp_path / "sq.pt", "-o", tmp_path / "img",
                          "--pes", "2")
    assert code == 0
    assert out.splitlines()[0] == "layers (from the file's key order): c, a, b"
    assert err == AMBIGUOUS.format("the file's key order")


def test_layers_flag_sets_the_order(tmp_path, capsys):
    state = _square_state()
    torch.save(state, tmp_path / "sq.pt")
    code, out, err = _run(capsys, "pack", tmp_path / "sq.pt", "-o", tmp_path / "img",
                          "--pes", "2", "--layers", "a,b,c")
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == "layers (from the layer order given): a, b, c"
    # the same network written with its keys in the order a, b, c
    reordered = {f"{n}.{p}": state[f"{n}.{p}"] for n in "abc" for p in ("weight", "bias")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", eie.api.PackWarning)
        want = eie.pack(reordered, config=CONFIG)
    _images_equal(eie.api.load_image(tmp_path / "img"), want)


@pytest.mark.parametrize(("names", "message"), [
    ("a,b", "missing c"),
    ("a,b,c,x", "unknown x"),
    ("a,a,b,c", "listed twice a"),
    ("a,x", "unknown x; missing c, b"),
])
def test_layers_flag_with_wrong_names_is_one_line_and_writes_nothing(tmp_path, capsys,
                                                                       names, message):
    torch.save(_square_state(), tmp_path / "sq.pt")
    code, out, err = _run(capsys, "pack", tmp_path / "sq.pt", "-o", tmp_path / "img",
                          "--pes", "2", "--layers", names)
    assert (code, out) == (2, "")
    assert err == (f"eie pack: error: the layer order given: {message} (the model's "
                   f"layers: c, a, b)\n")
    assert not (tmp_path / "img").exists()


def test_layers_flag_on_an_lstm_is_refused(tmp_path, capsys):
    torch.save(nn.LSTM(4, 8).state_dict(), tmp_path / "lstm.pt")
    code, out, err = _run(capsys, "pack", tmp_path / "lstm.pt", "-o", tmp_path / "img",
                          "--layers", "a")
    assert (code, out) == (2, "")
    assert err == "eie pack: error: --layers do(es) not apply to LSTM models\n"
    assert not (tmp_path / "img").exists()


def test_pt_and_safetensors_of_one_model_pack_the_same_network(tmp_path, capsys):
    # Keys "hidden" then "b_out": a .safetensors file without metadata sorts them by name
    # (b_out first), which does not chain; with the eie.layers metadata it is the .pt's
    # network.
    torch.manual_seed(1)
    hidden, out_layer = nn.Linear(6, 5), nn.Linear(5, 2)
    state = {"hidden.weight": hidden.weight.detach(), "hidden.bias": hidden.bias.detach(),
             "b_out.weight": out_layer.weight.detach(), "b_out.bias": out_layer.bias.detach()}
    torch.save(state, tmp_path / "m.pt")
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "plain.safetensors")
    assert save_safetensors(state, tmp_path / "m.safetensors") == ["hidden", "b_out"]

    code, out, err = _run(capsys, "pack", tmp_path / "plain.safetensors", "-o",
                          tmp_path / "bad", "--pes", "2")
    assert (code, out) == (2, "")
    assert err == ("eie pack: error: layers do not chain: 'b_out' has 2 outputs but the next "
                   "layer 'hidden' has 6 inputs\n")
    assert not (tmp_path / "bad").exists()

    for name in ("m.pt", "m.safetensors"):
        code, out, err = _run(capsys, "pack", tmp_path / name, "-o", tmp_path / name[2:],
                              "--pes", "2")
        assert (code, err) == (0, "")
    assert out.splitlines()[0] == "layers (from the file's eie.layers metadata): hidden, b_out"
    _images_equal(eie.api.load_image(tmp_path / "pt"),
                  eie.api.load_image(tmp_path / "safetensors"))


def test_square_safetensors_without_metadata_warns_naming_the_name_order(tmp_path, capsys):
    save_file({k: v.contiguous() for k, v in _square_state().items()}, tmp_path / "sq.st")
    (tmp_path / "sq.st").rename(tmp_path / "sq.safetensors")
    code, out, err = _run(capsys, "pack", tmp_path / "sq.safetensors", "-o", tmp_path / "img",
                          "--pes", "2")
    assert code == 0
    source = ("the layer names in natural order (the .safetensors file has no eie.layers "
              "metadata)")
    assert out.splitlines()[0] == f"layers (from {source}): a, b, c"
    assert err == AMBIGUOUS.format(source)


def test_safetensors_metadata_with_unknown_names_is_an_error(tmp_path, capsys):
    save_file({k: v.contiguous() for k, v in _square_state().items()},
              tmp_path / "sq.safetensors", metadata={"eie.layers": "a,b,z"})
    code, out, err = _run(capsys, "pack", tmp_path / "sq.safetensors", "-o", tmp_path / "img")
    assert (code, out) == (2, "")
    assert err == ("eie pack: error: the file's eie.layers metadata: unknown z; missing c "
                   "(the model's layers: a, b, c)\n")
    assert not (tmp_path / "img").exists()


def test_api_warns_about_an_ambiguous_order():
    with pytest.warns(eie.api.PackWarning, match="^the layer shapes chain in more than one "
                                                 "order; the order was taken from the "
                                                 "state_dict's key order;"):
        eie.pack(_square_state(), config=CONFIG)
    with warnings.catch_warnings():
        warnings.simplefilter("error", eie.api.PackWarning)
        eie.pack(_square_state(), config=CONFIG, layers=["a", "b", "c"])

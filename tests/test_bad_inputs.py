"""Bad input to every ``eie`` command: exit status 2, exactly one stderr line
``eie <command>: error: ...`` (``eie: error:`` before a subcommand is known), nothing on
stdout, no file created anywhere under the test's folder, never a traceback and never an
unpickled object (the pickles below would create a folder if they were unpickled).

Each case builds its bad input in the test's folder first; only then are the files listed,
the command run and the files listed again. Models and images are tiny (an MLP 4 -> 6 -> 3 on
2 PEs, an LSTM 3 -> 4 with a 2-output head) so the suite stays fast. ``eie sim`` and
``eie build`` cases fail before Verilator or Vivado would run.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from contract.config import EIEConfig
from eie.cli import main

MLP_FLAGS = ["--pes", "2"]


class _Mkdir:
    """Unpickling this creates the folder ``path``: the sign that something was unpickled."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


class _LSTMHead(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lstm = nn.LSTM(3, 4, batch_first=True)
        self.head = nn.Linear(4, 2)


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))


def _quiet_main(argv) -> int:
    with contextlib.redirect_stdout(io.StringIO()):
        return main([str(a) for a in argv])


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Valid tiny models and images, outside every test's own folder."""
    root = tmp_path_factory.mktemp("made")
    torch.save(_mlp().state_dict(), root / "mlp.pt")
    torch.save(_LSTMHead().state_dict(), root / "lstm.pt")
    assert _quiet_main(["pack", root / "mlp.pt", "-o", root / "mlp_img", *MLP_FLAGS]) == 0
    assert _quiet_main(["pack", root / "lstm.pt", "-o", root / "lstm_img", "--pes", "2"]) == 0
    return root


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


# ---- building bad inputs -----------------------------------------------------------------

def _image(made, tmp, kind="mlp") -> Path:
    out = tmp / f"{kind}_img"
    shutil.copytree(made / f"{kind}_img", out)
    return out


def _manifest(img: Path) -> dict:
    return json.loads((img / "manifest.json").read_text())


def _write_manifest(img: Path, manifest: dict) -> None:
    (img / "manifest.json").write_text(json.dumps(manifest))


def _set_words(img: Path, mem: str, change) -> None:
    """Rewrite memory ``mem``'s ``.mem`` file with ``change(words)`` (a list of ints) and make
    it the only listed file of that memory, with its SHA-256, so that only the contents are
    wrong."""
    manifest = _manifest(img)
    rec = manifest["memories"][mem]
    name = rec["files"]["mem"]
    digits = -(-rec["width"] // 4)
    words = [int(line, 16) for line in (img / name).read_text().split()]
    words = change(words)
    data = "".join(f"{w:0{digits}x}\n" for w in words).encode()
    (img / name).write_bytes(data)
    rec["files"] = {"mem": name}
    rec["sha256"] = {"mem": hashlib.sha256(data).hexdigest()}
    _write_manifest(img, manifest)


def _set(words, index, value):
    words[index] = value
    return words


def _save(path: Path, array) -> Path:
    np.save(path, array)
    return path


def _edit_manifest(edit):
    def build(made, tmp):
        img = _image(made, tmp)
        manifest = _manifest(img)
        edit(manifest)
        _write_manifest(img, manifest)
        return img
    return build


def _huge_config(manifest):
    config = dict(manifest["config"], n_pes=256, spmat_depth=1 << 17, ptr_depth=1 << 17)
    manifest["config"] = config
    manifest["config_id"] = EIEConfig(**config).config_id


def _deep_manifest(made, tmp):
    img = _image(made, tmp)
    (img / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    return img


def _flip_byte(made, tmp):
    img = _image(made, tmp)
    path = img / "pe000_spmat.mem"
    data = bytearray(path.read_bytes())
    data[3] = ord("f") if data[3] != ord("f") else ord("e")
    path.write_bytes(bytes(data))
    return img


def _truncate(fix_sha: bool):
    def build(made, tmp):
        img = _image(made, tmp)
        if fix_sha:
            _set_words(img, "pe001_ptr_odd", lambda words: words[:-1])
        else:
            path = img / "pe001_ptr_odd.mem"
            path.write_bytes(path.read_bytes()[:-10])
        return img
    return build


def _missing_file(made, tmp):
    img = _image(made, tmp)
    (img / "pe000_bias.mem").unlink()
    return img


def _bad_sha(manifest):
    manifest["memories"]["codebook"]["sha256"]["mem"] = "0" * 64


# The image's PE 0 pointers of tile 0 (layer 0, 4 columns): P_j in ptr_even[j/2] (even j),
# ptr_odd[(j-1)/2] (odd j). A 16-bit P_1 = 0xffff exceeds P_2: decreasing pointers.
def _decreasing_pointers(made, tmp):
    img = _image(made, tmp)
    _set_words(img, "pe000_ptr_odd", lambda w: _set(w, 0, 0xffff))
    return img


# P_4 = 0xffff (ptr_even[2]): 65535 entries of 8 bits, 8 per word, run past spmat_depth.
def _entries_past_spmat(made, tmp):
    img = _image(made, tmp)
    _set_words(img, "pe000_ptr_even", lambda w: _set(w, 2, 0xffff))
    return img


# PE 0's first entry (low 8 bits of word 0: v in bits 0-3, z in 4-7) becomes v = 1, z = 15:
# local row 15, past the tile's out_local of ceil(6 / 2) = 3 rows.
def _entry_past_out_local(made, tmp):
    img = _image(made, tmp)
    _set_words(img, "pe000_spmat", lambda w: _set(w, 0, (w[0] & ~0xff) | 0xf1))
    return img


def _linked_file(made, tmp):
    img = _image(made, tmp)
    (img / "real.mem").write_bytes((img / "program.mem").read_bytes())
    (img / "program.mem").unlink()
    (img / "program.mem").symlink_to("real.mem")
    return img


def _state_file(tmp, state, name="model.pt") -> Path:
    torch.save(state, tmp / name)
    return tmp / name


def _mlp_with(value):
    def build(made, tmp):
        model = _mlp()
        with torch.no_grad():
            model[0].weight[1, 2] = value
        return _state_file(tmp, model.state_dict())
    return build


def _conv(made, tmp):
    return _state_file(tmp, nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(),
                                          nn.Flatten(), nn.Linear(8, 2)).state_dict())


def _broken_chain(made, tmp):
    return _state_file(tmp, {"a.weight": torch.ones(6, 4), "b.weight": torch.ones(3, 5)})


def _whole_model(made, tmp):
    return _state_file(tmp, _mlp(), "whole.pt")


def _evil_pickle(made, tmp):
    path = tmp / "evil.pt"
    torch.save({"w": _Mkdir(tmp / "pwned")}, path)
    return path


def _evil_npy(made, tmp):
    path = tmp / "evil.npy"
    np.save(path, np.array([_Mkdir(tmp / "pwned")], dtype=object), allow_pickle=True)
    return path


def _huge_header(made, tmp):
    path = tmp / "huge.npy"
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"shape": (1 << 20, 1 << 20), "fortran_order": False, "descr": "<f8"})
        f.write(b"\0" * 64)
    return path


def _truncated_npy(made, tmp):
    path = _save(tmp / "x.npy", np.zeros((2, 4)))
    path.write_bytes(path.read_bytes()[:-8])
    return path


def _read_only(tmp) -> Path:
    folder = tmp / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    return folder / "y.npz"


def _file(tmp, name="afile") -> Path:
    (tmp / name).write_text("not a folder\n")
    return tmp / name


def _json(tmp, text, name="cfg.json") -> Path:
    (tmp / name).write_text(text)
    return tmp / name


X = np.zeros((2, 4))            # a valid MLP input
SEQ = np.zeros((5, 3))          # a valid LSTM frame sequence

# Each case: (id, command, build(made, tmp) -> argv, text the line must hold). command None:
# the line starts "eie: error:".
CASES = [
    # ---- argparse --------------------------------------------------------------------------
    ("no-command", None, lambda m, t: [], "required"),
    ("unknown-command", None, lambda m, t: ["frobnicate"], "invalid choice"),
    ("pack-no-output", "pack", lambda m, t: ["pack", m / "mlp.pt"], "-o/--output"),
    ("pack-density-2", "pack", lambda m, t: ["pack", m / "mlp.pt", "-o", t / "i",
                                             "--density", "2"], "density must be in [0, 1]"),
    ("pack-density-word", "pack", lambda m, t: ["pack", m / "mlp.pt", "-o", t / "i",
                                                "--density", "half"], "--density"),
    ("pack-pes-word", "pack", lambda m, t: ["pack", m / "mlp.pt", "-o", t / "i", "--pes",
                                            "two"], "invalid int value"),
    ("pack-formats", "pack", lambda m, t: ["pack", m / "mlp.pt", "-o", t / "i", "--formats",
                                           "hex"], "formats must be"),
    ("pack-scope", "pack", lambda m, t: ["pack", m / "mlp.pt", "-o", t / "i", "--scope",
                                         "all"], "invalid choice"),
    ("golden-no-input", "golden", lambda m, t: ["golden", m / "mlp_img", "-o", t / "y.npz"],
     "--input"),
    ("inspect-no-image", "inspect", lambda m, t: ["inspect"], "IMAGE_DIR"),
    ("verilog-no-output", "verilog", lambda m, t: ["verilog", "--pes", "2"], "-o/--output"),
    ("sim-no-output", "sim", lambda m, t: ["sim", m / "mlp_img", "--input", "x.npy"],
     "-o/--output"),
    ("build-board", "build", lambda m, t: ["build", "--board", "zcu104", "-o", t / "p"],
     "invalid choice"),
    ("resources-pes-word", "resources", lambda m, t: ["resources", "--pes", "x"],
     "invalid int value"),
    ("bench-what", "bench", lambda m, t: ["bench", "everything"], "invalid choice"),
    ("bench-flag", "bench", lambda m, t: ["bench", "compiler", "--fast"], "unrecognized"),
    ("demo-flag", "demo", lambda m, t: ["demo", "--gpu"], "unrecognized"),
    # ---- pack: models ------------------------------------------------------------------------
    ("pack-missing-model", "pack", lambda m, t: ["pack", t / "nope.pt", "-o", t / "i"],
     "no such file"),
    ("pack-model-dir", "pack", lambda m, t: ["pack", t, "-o", t / "i"], ""),
    ("pack-nan", "pack", lambda m, t: ["pack", _mlp_with(float("nan"))(m, t), "-o", t / "i"],
     "NaN"),
    ("pack-inf", "pack", lambda m, t: ["pack", _mlp_with(float("inf"))(m, t), "-o", t / "i"],
     "Inf"),
    ("pack-conv2d", "pack", lambda m, t: ["pack", _conv(m, t), "-o", t / "i"], ""),
    ("pack-broken-chain", "pack", lambda m, t: ["pack", _broken_chain(m, t), "-o", t / "i"],
     "chain"),
    ("pack-whole-model", "pack", lambda m, t: ["pack", _whole_model(m, t), "-o", t / "i"],
     "state_dict()"),
    ("pack-evil-pickle", "pack", lambda m, t: ["pack", _evil_pickle(m, t), "-o", t / "i"],
     "state_dict()"),
    ("pack-garbage-pt", "pack", lambda m, t: ["pack", _json(t, "garbage", "g.pt"), "-o",
                                              t / "i"], ""),
    ("pack-garbage-safetensors", "pack",
     lambda m, t: ["pack", _json(t, "\x10\0\0\0\0\0\0\0{no", "g.safetensors"), "-o", t / "i"],
     "safetensors"),
    ("pack-tensor-not-dict", "pack",
     lambda m, t: ["pack", _state_file(t, torch.zeros(3)), "-o", t / "i"], "state_dict"),
    ("pack-empty-dict", "pack", lambda m, t: ["pack", _state_file(t, {}), "-o", t / "i"], ""),
    ("pack-output-file", "pack", lambda m, t: ["pack", m / "mlp.pt", "-o", _file(t)], ""),
    ("pack-output-under-file", "pack",
     lambda m, t: ["pack", m / "mlp.pt", "-o", _file(t) / "img"], ""),
    ("pack-pes-0", "pack", lambda m, t: ["pack", m / "mlp.pt", "-o", t / "i", "--pes", "0"],
     "n_pes"),
    ("pack-config-missing", "pack",
     lambda m, t: ["pack", m / "mlp.pt", "-o", t / "i", "--config", t / "none.json"], ""),
    ("pack-config-not-json", "pack",
     lambda m, t: ["pack", m / "mlp.pt", "-o", t / "i", "--config", _json(t, "{pes: 2")],
     "not valid JSON"),
    ("pack-config-deep", "pack",
     lambda m, t: ["pack", m / "mlp.pt", "-o", t / "i", "--config",
                   _json(t, "[" * 100_000 + "]" * 100_000)], "nested too deeply"),
    ("pack-config-unknown-field", "pack",
     lambda m, t: ["pack", m / "mlp.pt", "-o", t / "i", "--config", _json(t, '{"pez": 2}')],
     "unknown config field"),
    # ---- pack: capacity, in the flag's unit --------------------------------------------------
    ("pack-spmat-depth", "pack",
     lambda m, t: ["pack", m / "mlp.pt", "-o", t / "i", *MLP_FLAGS, "--spmat-depth", "1"],
     "--spmat-depth"),
    ("pack-act-depth", "pack",
     lambda m, t: ["pack", m / "mlp.pt", "-o", t / "i", *MLP_FLAGS, "--act-depth", "1"],
     "--act-depth 2 needed, 1 configured"),
    ("pack-max-tiles", "pack",
     lambda m, t: ["pack", m / "mlp.pt", "-o", t / "i", *MLP_FLAGS, "--acc-depth", "1",
                   "--max-tiles", "1"], "--max-tiles"),
    ("pack-max-layers", "pack",
     lambda m, t: ["pack", m / "mlp.pt", "-o", t / "i", *MLP_FLAGS, "--max-layers", "1"],
     "--max-layers 2 needed, 1 configured"),
    ("pack-bias-depth", "pack",
     lambda m, t: ["pack", m / "mlp.pt", "-o", t / "i", *MLP_FLAGS, "--bias-depth", "1"],
     "--bias-depth"),
    ("pack-ptr-depth", "pack",
     lambda m, t: ["pack", m / "mlp.pt", "-o", t / "i", *MLP_FLAGS, "--ptr-depth", "1"],
     "--ptr-depth"),
    # ---- pack: LSTM ------------------------------------------------------------------------
    ("pack-ese-flag-on-mlp", "pack",
     lambda m, t: ["pack", m / "mlp.pt", "-o", t / "i", "--channels", "2"], "LSTM"),
    ("pack-lstm-ternary", "pack",
     lambda m, t: ["pack", m / "lstm.pt", "-o", t / "i", "--ternary"], "--ternary"),
    ("pack-lstm-nan", "pack",
     lambda m, t: ["pack", _state_file(t, {**_LSTMHead().state_dict(),
                                          "lstm.weight_hh_l0": torch.full((16, 4), np.nan)}),
                   "-o", t / "i"], ""),
    # ---- golden: inputs ----------------------------------------------------------------------
    ("golden-input-missing", "golden",
     lambda m, t: ["golden", m / "mlp_img", "--input", t / "x.npy", "-o", t / "y.npz"],
     "no such file"),
    ("golden-input-dir", "golden",
     lambda m, t: ["golden", m / "mlp_img", "--input", t, "-o", t / "y.npz"], "directory"),
    ("golden-input-npz", "golden",
     lambda m, t: ["golden", m / "mlp_img", "--input",
                   (np.savez(t / "x.npz", x=X), t / "x.npz")[1], "-o", t / "y.npz"], ".npz"),
    ("golden-input-csv", "golden",
     lambda m, t: ["golden", m / "mlp_img", "--input", _json(t, "1,2,3,4\n", "x.csv"),
                   "-o", t / "y.npz"], "not a .npy file"),
    ("golden-input-complex", "golden",
     lambda m, t: ["golden", m / "mlp_img", "--input", _save(t / "x.npy", X + 1j), "-o",
                   t / "y.npz"], "complex"),
    ("golden-input-object", "golden",
     lambda m, t: ["golden", m / "mlp_img", "--input", _evil_npy(m, t), "-o", t / "y.npz"],
     "objects"),
    ("golden-input-huge-header", "golden",
     lambda m, t: ["golden", m / "mlp_img", "--input", _huge_header(m, t), "-o", t / "y.npz"],
     "GiB"),
    ("golden-input-truncated", "golden",
     lambda m, t: ["golden", m / "mlp_img", "--input", _truncated_npy(m, t), "-o",
                   t / "y.npz"], ""),
    ("golden-input-shape", "golden",
     lambda m, t: ["golden", m / "mlp_img", "--input", _save(t / "x.npy", np.zeros((2, 5))),
                   "-o", t / "y.npz"], "shape"),
    ("golden-input-nan", "golden",
     lambda m, t: ["golden", m / "mlp_img", "--input",
                   _save(t / "x.npy", np.full((2, 4), np.nan)), "-o", t / "y.npz"], "NaN"),
    ("golden-input-strings", "golden",
     lambda m, t: ["golden", m / "mlp_img", "--input", _save(t / "x.npy", np.array(["a"] * 4)),
                   "-o", t / "y.npz"], "numeric"),
    # ---- golden: output paths ----------------------------------------------------------------
    ("golden-output-image-folder", "golden",
     lambda m, t: ["golden", _image(m, t), "--input", _save(t / "x.npy", X), "-o",
                   t / "mlp_img"], "directory"),
    ("golden-output-inside-image", "golden",
     lambda m, t: ["golden", _image(m, t), "--input", _save(t / "x.npy", X), "-o",
                   t / "mlp_img" / "y.npz"], "image folder"),
    ("golden-output-under-file", "golden",
     lambda m, t: ["golden", m / "mlp_img", "--input", _save(t / "x.npy", X), "-o",
                   _file(t) / "y.npz"], "not a folder"),
    ("golden-output-read-only", "golden",
     lambda m, t: ["golden", m / "mlp_img", "--input", _save(t / "x.npy", X), "-o",
                   _read_only(t)], "read-only"),
    ("golden-output-dir", "golden",
     lambda m, t: ["golden", m / "mlp_img", "--input", _save(t / "x.npy", X), "-o", t],
     "directory"),
    # ---- images (golden, inspect, build, verilog) --------------------------------------------
    ("golden-image-missing", "golden",
     lambda m, t: ["golden", t / "none", "--input", _save(t / "x.npy", X), "-o", t / "y.npz"],
     "not an image directory"),
    ("golden-flipped-byte", "golden",
     lambda m, t: ["golden", _flip_byte(m, t), "--input", _save(t / "x.npy", X), "-o",
                   t / "y.npz"], "SHA-256"),
    ("inspect-flipped-byte", "inspect", lambda m, t: ["inspect", _flip_byte(m, t)], "SHA-256"),
    ("inspect-truncated-mem", "inspect", lambda m, t: ["inspect", _truncate(False)(m, t)],
     "SHA-256"),
    ("inspect-truncated-mem-resigned", "inspect",
     lambda m, t: ["inspect", _truncate(True)(m, t)], "expected depth"),
    ("inspect-missing-file", "inspect", lambda m, t: ["inspect", _missing_file(m, t)],
     "file missing"),
    ("inspect-bad-sha", "inspect", lambda m, t: ["inspect", _edit_manifest(_bad_sha)(m, t)],
     "SHA-256"),
    ("inspect-manifest-not-json", "inspect",
     lambda m, t: ["inspect", (lambda i: ((i / "manifest.json").write_text("{"), i)[1])(
         _image(m, t))], "not valid JSON"),
    ("inspect-manifest-deep", "inspect", lambda m, t: ["inspect", _deep_manifest(m, t)],
     "nested too deeply"),
    ("inspect-manifest-list", "inspect",
     lambda m, t: ["inspect", (lambda i: ((i / "manifest.json").write_text("[]"), i)[1])(
         _image(m, t))], "not a JSON object"),
    ("inspect-manifest-version", "inspect",
     lambda m, t: ["inspect", _edit_manifest(lambda d: d.update(version=99))(m, t)],
     "version"),
    ("inspect-manifest-huge-config", "inspect",
     lambda m, t: ["inspect", _edit_manifest(_huge_config)(m, t)], "memory words"),
    ("inspect-manifest-config-id", "inspect",
     lambda m, t: ["inspect", _edit_manifest(lambda d: d.update(config_id=1))(m, t)],
     "config_id"),
    ("inspect-manifest-file-name", "inspect",
     lambda m, t: ["inspect", _edit_manifest(
         lambda d: d["memories"]["codebook"]["files"].update(mem="../x.mem"))(m, t)],
     "plain name"),
    ("inspect-manifest-no-layers", "inspect",
     lambda m, t: ["inspect", _edit_manifest(lambda d: d.update(layers=[]))(m, t)], "layers"),
    ("inspect-decreasing-pointers", "inspect",
     lambda m, t: ["inspect", _decreasing_pointers(m, t)], "pointers decrease"),
    ("golden-decreasing-pointers", "golden",
     lambda m, t: ["golden", _decreasing_pointers(m, t), "--input", _save(t / "x.npy", X),
                   "-o", t / "y.npz"], "pointers decrease"),
    ("build-decreasing-pointers", "build",
     lambda m, t: ["build", "--image", _decreasing_pointers(m, t), "-o", t / "proj"],
     "pointers decrease"),
    ("inspect-entries-past-spmat", "inspect",
     lambda m, t: ["inspect", _entries_past_spmat(m, t)], "spmat_depth"),
    ("build-entries-past-spmat", "build",
     lambda m, t: ["build", "--image", _entries_past_spmat(m, t), "-o", t / "proj"],
     "spmat_depth"),
    ("inspect-entry-past-out-local", "inspect",
     lambda m, t: ["inspect", _entry_past_out_local(m, t)], "out_local"),
    ("golden-entry-past-out-local", "golden",
     lambda m, t: ["golden", _entry_past_out_local(m, t), "--input", _save(t / "x.npy", X),
                   "-o", t / "y.npz"], "out_local"),
    ("verilog-entry-past-out-local", "verilog",
     lambda m, t: ["verilog", "--image", _entry_past_out_local(m, t), "-o", t / "v"],
     "out_local"),
    ("build-linked-file", "build",
     lambda m, t: ["build", "--image", _linked_file(m, t), "-o", t / "proj"],
     "symbolic link"),
    ("build-config-mismatch", "build",
     lambda m, t: ["build", "--image", m / "mlp_img", "--pes", "3", "-o", t / "proj"],
     "n_pes"),
    ("build-lstm-image-flags", "build",
     lambda m, t: ["build", "--image", m / "lstm_img", "--pes", "3", "-o", t / "proj"],
     "disagree with the ESE image"),
    ("build-image-missing", "build",
     lambda m, t: ["build", "--image", t / "none", "-o", t / "proj"], "not an image"),
    ("build-config-deep", "build",
     lambda m, t: ["build", "--config", _json(t, "[" * 100_000 + "]" * 100_000), "-o",
                   t / "proj"], "nested too deeply"),
    # ---- verilog -------------------------------------------------------------------------------
    ("verilog-pes-0", "verilog", lambda m, t: ["verilog", "--pes", "0", "-o", t / "v"], "n_pes"),
    ("verilog-corrupt-image", "verilog",
     lambda m, t: ["verilog", "--image", _flip_byte(m, t), "-o", t / "v"], "SHA-256"),
    ("verilog-config-mismatch", "verilog",
     lambda m, t: ["verilog", "--image", m / "mlp_img", "--pes", "3", "-o", t / "v"],
     "n_pes"),
    ("verilog-lstm-image-flags", "verilog",
     lambda m, t: ["verilog", "--image", m / "lstm_img", "--act-depth", "8", "-o", t / "v"],
     "disagree with the ESE image"),
    ("resources-lstm-image-config", "resources",
     lambda m, t: ["resources", "--image", m / "lstm_img", "--config", _json(t, "{}"),
                   "-o", t / "r"], "--config does not apply"),
    ("verilog-output-file", "verilog", lambda m, t: ["verilog", "--pes", "2", "-o", _file(t)],
     ""),
    # ---- sim (fails before Verilator) ----------------------------------------------------------
    ("sim-input-npz", "sim",
     lambda m, t: ["sim", m / "mlp_img", "--input",
                   (np.savez(t / "x.npz", x=X), t / "x.npz")[1], "-o", t / "y.npz"], ".npz"),
    ("sim-input-shape", "sim",
     lambda m, t: ["sim", m / "mlp_img", "--input", _save(t / "x.npy", np.zeros(7)), "-o",
                   t / "y.npz"], "shape"),
    ("sim-output-image-folder", "sim",
     lambda m, t: ["sim", _image(m, t), "--input", _save(t / "x.npy", X), "-o",
                   t / "mlp_img"], "directory"),
    ("sim-lstm-shape", "sim",
     lambda m, t: ["sim", m / "lstm_img", "--input", _save(t / "x.npy", np.zeros((5, 4))),
                   "-o", t / "y.npz"], "shape"),
    ("sim-corrupt-image", "sim",
     lambda m, t: ["sim", _decreasing_pointers(m, t), "--input", _save(t / "x.npy", X), "-o",
                   t / "y.npz"], "pointers decrease"),
    # ---- LSTM golden / inspect ---------------------------------------------------------------
    ("golden-lstm-shape", "golden",
     lambda m, t: ["golden", m / "lstm_img", "--input", _save(t / "x.npy", np.zeros((5, 4))),
                   "-o", t / "y.npz"], "shape"),
    ("golden-lstm-nan", "golden",
     lambda m, t: ["golden", m / "lstm_img", "--input",
                   _save(t / "x.npy", np.full((5, 3), np.inf)), "-o", t / "y.npz"], "NaN"),
    ("golden-lstm-complex", "golden",
     lambda m, t: ["golden", m / "lstm_img", "--input", _save(t / "x.npy", SEQ + 1j), "-o",
                   t / "y.npz"], "complex"),
    ("golden-lstm-output-image-folder", "golden",
     lambda m, t: ["golden", _image(m, t, "lstm"), "--input", _save(t / "x.npy", SEQ), "-o",
                   t / "lstm_img"], "directory"),
    ("inspect-lstm-flipped-manifest", "inspect",
     lambda m, t: ["inspect", (lambda i: ((i / "manifest.json").write_text("{]"), i)[1])(
         _image(m, t, "lstm"))], "not valid JSON"),
    # ---- resources, bench, demo (configs only: nothing long runs) ----------------------------
    ("resources-pes-0", "resources", lambda m, t: ["resources", "--pes", "0", "-o", t / "r"],
     "n_pes"),
    ("resources-config-list", "resources",
     lambda m, t: ["resources", "--config", _json(t, "[1]"), "-o", t / "r"], "JSON object"),
    ("resources-config-deep", "resources",
     lambda m, t: ["resources", "--config", _json(t, "[" * 100_000 + "]" * 100_000), "-o",
                   t / "r"], "nested too deeply"),
    ("demo-pes-0", "demo", lambda m, t: ["demo", "--pes", "0", "-o", t / "d"], "n_pes"),
    ("demo-config-missing", "demo",
     lambda m, t: ["demo", "--config", t / "none.json", "-o", t / "d"], ""),
]


def test_enough_cases():
    assert len(CASES) >= 60
    assert {c for _, c, _, _ in CASES} >= {"pack", "golden", "inspect", "verilog", "sim",
                                          "build", "resources", "bench", "demo"}


@pytest.mark.parametrize("command, build, text", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_input(command, build, text, made, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)       # default output folders (build/...) land here
    argv = [str(a) for a in build(made, tmp_path)]
    capsys.readouterr()
    before = _files(tmp_path)
    made_before = _files(made)
    try:
        code = main(argv)
    except SystemExit as exc:         # argparse
        code = exc.code
    out, err = capsys.readouterr()
    for folder in tmp_path.rglob("*"):
        if folder.is_dir():
            folder.chmod(0o755)       # let pytest remove a read-only folder
    assert code == 2, err
    assert out == ""
    assert len(err.splitlines()) == 1 and err.endswith("\n"), err
    prefix = "eie: error: " if command is None else f"eie {command}: error: "
    assert err.startswith(prefix), err
    assert text in err, err
    assert "Traceback" not in err and "\x1b" not in err and "weights_only=False" not in err
    assert _files(tmp_path) == before
    assert _files(made) == made_before


# ---- the file a user asked for ---------------------------------------------------------------

def test_output_without_suffix_prints_the_file_written(made, tmp_path, capsys):
    np.save(tmp_path / "x.npy", X)
    assert main(["golden", str(made / "mlp_img"), "--input", str(tmp_path / "x.npy"),
                 "-o", str(tmp_path / "y")]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"wrote {tmp_path / 'y.npz'}: y [2, 3]"), out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy", "y.npz"]


def test_output_folder_is_created(made, tmp_path, capsys):
    np.save(tmp_path / "x.npy", X)
    target = tmp_path / "out" / "sub" / "y.npz"
    assert main(["golden", str(made / "mlp_img"), "--input", str(tmp_path / "x.npy"),
                 "-o", str(target)]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {target}: ")
    assert sorted(np.load(target).files) == ["cycles", "cycles_per_layer", "layers", "q",
                                             "saturation", "wraps", "y"]


def test_build_copies_only_listed_files(made, tmp_path, capsys):
    img = _image(made, tmp_path)
    (img / "notes.mem").write_text("not part of the image\n")
    (img / "outside.bin").symlink_to("/etc/hostname")
    assert main(["build", "--image", str(img), "-o", str(tmp_path / "proj")]) == 0
    listed = {"manifest.json"} | {name for rec in _manifest(img)["memories"].values()
                                  for name in rec["files"].values()}
    assert {p.name for p in (tmp_path / "proj" / "src" / "image").iterdir()} == listed

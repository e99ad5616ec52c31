"""System tests: the Verilated array against the golden model, bit for bit and cycle for cycle.

Every (n_pes, queue_depth) config is one Verilator build (cached in ``sim_build/``) shared
by its cases; each case is one simulator run that loads a random image (by backdoor, or
through the host port where that is under test: ``load="host"``, throttled or not) and
runs a batch of inputs (including an all-zero one). Outputs must equal
``golden.run`` exactly and the RTL cycle counters must equal
``golden.cycle_model.cycles`` (with the measured ``PIPELINE`` constants) exactly.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

import golden
from compiler.pack import pack
from compiler.types import QuantLayer
from contract.config import EIEConfig
from golden import cycle_model
from sim_tests.runner import simulate

# (n_pes, queue_depth) -> memory sizes chosen so that the cases reach multi-tile layers
# and, where acc_depth > 16, padding entries (zero runs longer than 15 local rows).
CONFIGS = {
    (1, 1): dict(act_depth=48, acc_depth=20),
    (2, 2): dict(act_depth=32, acc_depth=18),
    (3, 16): dict(act_depth=24, acc_depth=8),
    (4, 8): dict(act_depth=32, acc_depth=20),
    (8, 4): dict(act_depth=16, acc_depth=4),
    (16, 3): dict(act_depth=16, acc_depth=4),
    (64, 8): dict(act_depth=8, acc_depth=4),
}


def sim_config(n_pes: int, queue_depth: int) -> EIEConfig:
    sizes = CONFIGS[(n_pes, queue_depth)]
    return EIEConfig(n_pes=n_pes, queue_depth=queue_depth, spmat_depth=512, ptr_depth=1024,
                     bias_depth=128, max_layers=4, max_tiles=16, **sizes)


def random_layer(rng, name, n_out, n_in, density, bias, scale):
    mask = rng.random((n_out, n_in)) < density
    indices = (rng.integers(1, 16, (n_out, n_in)) * mask).astype(np.uint8)
    codebook = np.concatenate([[0.0], rng.normal(0.0, scale, 15)])
    b = rng.normal(0.0, 1.0, n_out) if bias else None
    return QuantLayer(name, indices, codebook, b, relu=bool(rng.random() < 0.7))


def random_case(config, seed, *, widths, w_density, a_density, bias=True, batch=3):
    """A random image with the given layer widths and a batch of inputs (first all-zero)."""
    rng = np.random.default_rng(seed)
    layers = []
    for k in range(len(widths) - 1):
        scale = float(rng.choice([0.01, 0.3, 4.0]))
        density = w_density[k] if isinstance(w_density, (list, tuple)) else w_density
        layers.append(random_layer(rng, f"fc{k}", widths[k + 1], widths[k], density, bias,
                                   scale))
    image = pack(layers, config)
    big = rng.random() < 0.3
    q = rng.integers(-2**15 if big else -600, 2**15 if big else 600, (batch, widths[0]))
    q = q * (rng.random((batch, widths[0])) < a_density)
    q[0] = 0
    return image, q.astype(np.int64)


def check(image, q, **kw):
    result = simulate(image, q, **kw)
    want = golden.run(image, q)
    np.testing.assert_array_equal(result["q"], want.q)
    assert result["config_id"] == image.config.config_id
    for b in range(q.shape[0]):
        report = cycle_model.cycles(image, q[b])
        assert int(result["cycles_total"][b]) == report.total, f"sample {b}"
        assert result["cycles_per_layer"][b].tolist() == [lc.cycles for lc in report.layers]
    return result


def max_width(config):
    return config.n_pes * config.act_depth


# One test per config: several cases share one build and run back to back.
@pytest.mark.parametrize("n_pes,queue_depth", list(CONFIGS))
def test_random_matrix(n_pes, queue_depth):
    config = sim_config(n_pes, queue_depth)
    rng = np.random.default_rng(1000 * n_pes + queue_depth)
    top = max_width(config)
    tile_rows = config.rows_per_tile
    # multi-tile layer (more outputs than one tile) whenever the buffers allow it
    wide = min(top, tile_rows + int(rng.integers(1, tile_rows + 1)))
    cases = [
        # 3 layers, mid densities, bias on, throttled host port
        (dict(widths=[int(rng.integers(1, top + 1)), wide, int(rng.integers(1, top + 1)),
                      int(rng.integers(1, top + 1))],
              w_density=0.3, a_density=0.5), dict(host_idle=0.3, load="host")),
        # extremes: empty and full weights, dense activations, no bias
        (dict(widths=[top, wide, top], w_density=[1.0, 0.0], a_density=1.0, bias=False), {}),
        # very sparse weights (long zero runs -> padding) and sparse activations
        (dict(widths=[int(rng.integers(1, top + 1)), wide], w_density=0.03,
              a_density=0.1), dict(host_idle=0.1, load="host")),
    ]
    for k, (case, options) in enumerate(cases):
        image, q = random_case(config, 7 * k + n_pes, **case)
        check(image, q, seed=k, **options)


def test_padding_entries_exercised():
    config = sim_config(1, 1)
    image, q = random_case(config, 3, widths=[40, 45], w_density=0.03, a_density=0.8)
    assert sum(layer.padding for layer in image.layers) > 0
    check(image, q)


def test_reset_mid_run_then_rerun():
    config = sim_config(4, 8)
    image, q = random_case(config, 5, widths=[100, 90, 60], w_density=0.4, a_density=0.7)
    result = check(image, q[1:], reset_after=40, load="host")
    assert result["cycles_total"].shape == (2,)


def wide_descriptor_config() -> EIEConfig:
    """Two PEs with deep pointer, spmat and bias memories: their base-address fields push
    the tile descriptor to 70 bits, so ``shift``'s upper bits, ``relu``, ``bias_en``,
    ``swap`` and ``last`` lie above bit 63 and reach the program memory only through the
    array's ``WDATA_HIGH`` register (docs/rtl.md, "Host port")."""
    return EIEConfig(n_pes=2, queue_depth=2, act_depth=32, acc_depth=16, ptr_depth=1 << 14,
                     spmat_depth=1 << 14, bias_depth=1 << 14, max_layers=4, max_tiles=16)


def test_descriptor_wider_than_64_bits():
    config = wide_descriptor_config()
    layout = config.descriptor_layout()
    lsb = dict(zip(layout, itertools.accumulate([0, *layout.values()]), strict=False))
    assert config.descriptor_bits > 64
    assert min(lsb["relu"], lsb["bias_en"], lsb["swap"], lsb["last"]) >= 64
    assert lsb["shift"] < 64 < lsb["shift"] + layout["shift"]  # a field across the boundary
    image, q = random_case(config, 30, widths=[50, 40, 20], w_density=0.4, a_density=0.7)
    program = image.program
    # The bits above 63 matter: a shift bit above 63, both values of swap and last, and
    # upper halves that change between descriptors (WDATA_HIGH written again).
    assert any(d.shift >> (64 - lsb["shift"]) for d in program)
    assert {d.swap for d in program} == {d.last for d in program} == {False, True}
    assert len({d.encode(config) >> 64 for d in program}) == len(program)
    check(image, q, load="host")


def test_single_vector_shapes():
    config = sim_config(3, 16)
    image, q = random_case(config, 9, widths=[20, 30], w_density=0.5, a_density=0.5)
    result = simulate(image, q[1])
    assert result["q"].shape == (30,)
    np.testing.assert_array_equal(result["q"], golden.run(image, q[1:2]).q[0])
    assert result["cycles_per_layer"].shape == (1,)


def test_balanced_rows_on_the_rtl():
    """A balanced image (compiler.balance) on the RTL: outputs in the model's order equal
    golden's and the unbalanced image's, cycles equal the cycle model's."""
    config = sim_config(4, 8)
    rng = np.random.default_rng(17)
    layers = [random_layer(rng, f"fc{k}", n_out, n_in, 0.3, True, 0.3)
              for k, (n_out, n_in) in enumerate(((90, 70), (40, 90)))]
    q = (rng.integers(-600, 600, (3, 70)) * (rng.random((3, 70)) < 0.6)).astype(np.int64)
    balanced = pack(layers, config, balance_rows=True)
    result = check(balanced, q)
    np.testing.assert_array_equal(result["q"], golden.run(pack(layers, config), q).q)


def test_baked_image():
    """The $readmemh flow: memories start from the side files, nothing is loaded."""
    config = sim_config(4, 8)
    image, q = random_case(config, 11, widths=[70, 90, 40], w_density=0.3, a_density=0.6)
    check(image, q, bake=True)


def test_cli_sim_matches_cli_golden(tmp_path):
    """`eie sim` writes the same fields as `eie golden`, with equal values (reuses the
    (4, 8) build)."""
    import json

    import torch

    from eie.cli import main

    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Linear(30, 40), torch.nn.ReLU(),
                                torch.nn.Linear(40, 6))
    torch.save(model.state_dict(), tmp_path / "mlp.pt")
    (tmp_path / "config.json").write_text(json.dumps(sim_config(4, 8).to_dict()))
    image = tmp_path / "image"
    assert main(["pack", str(tmp_path / "mlp.pt"), "-o", str(image), "--config",
                 str(tmp_path / "config.json"), "--density", "0.3"]) == 0
    np.save(tmp_path / "x.npy", np.random.default_rng(3).uniform(-1, 1, (3, 30)))
    for command in ("golden", "sim"):
        assert main([command, str(image), "--input", str(tmp_path / "x.npy"),
                     "-o", str(tmp_path / f"{command}.npz")]) == 0
    want, got = np.load(tmp_path / "golden.npz"), np.load(tmp_path / "sim.npz")
    assert sorted(got.files) == sorted(want.files)
    for field in want.files:
        np.testing.assert_array_equal(got[field], want[field], err_msg=field)


def _vcd_top_signals(text: str) -> dict[str, str]:
    """``{name: id code}`` of the variables in the VCD's top scope."""
    codes, depth = {}, 0
    for line in text.splitlines():
        words = line.split()
        if words[:1] == ["$scope"]:
            depth += 1
        elif words[:1] == ["$upscope"]:
            depth -= 1
        elif words[:1] == ["$var"] and depth == 1:
            codes[words[4]] = words[3]
        elif words[:1] == ["$enddefinitions"]:
            break
    return codes


def test_waveforms_vcd_and_fst(tmp_path):
    """`--waves x.vcd` and `--waves x.fst` record the run (FST through the lz4 shim when
    the machine has liblz4 but no headers); the traced builds stay bit-exact."""
    import struct

    from sim_tests.runner import _fst_supported

    config = sim_config(2, 2)
    image, q = random_case(config, 21, widths=[12, 10], w_density=0.5, a_density=0.7,
                           batch=1)
    vcd = simulate(image, q, waves=tmp_path / "run.vcd")
    np.testing.assert_array_equal(vcd["q"], golden.run(image, q).q)
    text = Path(vcd["waves"]).read_text()
    codes = _vcd_top_signals(text)
    assert {"clk", "rst", "busy", "done"} <= set(codes)
    body = text.split("$enddefinitions", 1)[1].splitlines()
    assert f"1{codes['done']}" in body and f"1{codes['busy']}" in body
    vcd_end = max(int(line[1:]) for line in body if line.startswith("#"))
    if not _fst_supported():
        pytest.skip("no liblz4 on this machine: FST falls back to VCD")
    fst = simulate(image, q, waves=tmp_path / "run.fst")
    np.testing.assert_array_equal(fst["q"], vcd["q"])
    assert fst["cycles_total"].tolist() == vcd["cycles_total"].tolist()
    data = Path(fst["waves"]).read_bytes()
    assert fst["waves"].endswith(".fst")
    # FST header block: type 0, section length 329, then start and end time (big endian).
    block, length, start, end = struct.unpack(">BQQQ", data[:25])
    assert (block, length, start) == (0, 329, 0)
    assert end == vcd_end

"""Paper-scale RTL runs (64 PEs, EIE memory sizes): `make test-slow`, not in CI.

Each EIE benchmark layer (random matrix and input with the paper's shape and densities)
runs on the 64-PE array, loaded by backdoor ($readmemh); the RTL must equal golden bit for
bit and the cycle model cycle for cycle. `eie bench eie` reports the same runs as a table.
"""

import numpy as np
import pytest

import golden
from eie.bench import EIE_LAYERS, _layer_case, eie_bench_config
from sim_tests.runner import simulate


@pytest.mark.slow
@pytest.mark.parametrize("spec", EIE_LAYERS, ids=[s[0] for s in EIE_LAYERS])
def test_eie_layer_on_64_pes(spec):
    config = eie_bench_config()
    image, q = _layer_case(spec, config, np.random.default_rng(7), 1)
    result = simulate(image, q, opt="-O1")
    np.testing.assert_array_equal(result["q"], golden.run(image, q[None, :]).q[0])
    assert result["cycles_total"] == golden.cycles(image, q).total

"""System tests of the broadcast width ``B > 1`` (docs/architecture.md, "Broadcast width"):
the Verilated array against golden bit for bit and against the cycle model
(``golden.cycle_model._wide_span``) cycle for cycle.

Each (n_pes, queue_depth, B) is one Verilator build; its cases cover dense rows (groups of
``B``, the PE-bound regime where the broadcast stalls), sparse rows (groups cut by row
ends), empty columns (lanes whose column no PE queues), ``B = queue_depth`` and a row
width that is not a multiple of ``B``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from golden import cycle_model
from sim_tests.test_eie import check, random_case

# (n_pes, queue_depth, B) -> memory sizes
WIDE = {
    (2, 2, 2): dict(act_depth=32, acc_depth=18),
    (4, 4, 4): dict(act_depth=32, acc_depth=20),
    (5, 3, 3): dict(act_depth=24, acc_depth=8),
    (8, 8, 2): dict(act_depth=16, acc_depth=4),
}


def wide_config(n_pes, queue_depth, width):
    from contract.config import EIEConfig
    return EIEConfig(n_pes=n_pes, queue_depth=queue_depth, broadcast_width=width,
                     spmat_depth=512, ptr_depth=1024, bias_depth=128, max_layers=4,
                     max_tiles=16, **WIDE[(n_pes, queue_depth, width)])


@pytest.mark.parametrize("n_pes,queue_depth,width", list(WIDE))
def test_wide_broadcast_random(n_pes, queue_depth, width):
    config = wide_config(n_pes, queue_depth, width)
    rng = np.random.default_rng(77 * n_pes + width)
    top = config.n_pes * config.act_depth
    tile_rows = config.rows_per_tile
    wide = min(top, tile_rows + int(rng.integers(1, tile_rows + 1)))
    cases = [
        (dict(widths=[top, wide, int(rng.integers(1, top + 1))], w_density=0.3,
              a_density=1.0), {}),
        (dict(widths=[int(rng.integers(1, top + 1)), wide, top], w_density=[0.05, 0.6],
              a_density=0.3), dict(load="host", host_idle=0.2)),
        (dict(widths=[top - 1, wide], w_density=[1.0], a_density=0.8, bias=False), {}),
        (dict(widths=[top, int(rng.integers(1, top + 1))], w_density=0.02,
              a_density=0.6), {}),
    ]
    narrow_differs = 0
    for k, (case, options) in enumerate(cases):
        image, q = random_case(config, 11 * k + n_pes, **case)
        result = check(image, q, seed=k, **options)
        # The cases must tell B from 1: some inputs take a different number of cycles.
        narrow = dataclasses.replace(image, config=dataclasses.replace(config,
                                                                       broadcast_width=1))
        narrow_cycles = [cycle_model.cycles(narrow, row).total for row in q]
        narrow_differs += narrow_cycles != [int(c) for c in result["cycles_total"]]
    assert narrow_differs >= 2


def test_wide_same_outputs_as_b1():
    # B changes the schedule only: the outputs of a B = 4 image equal those of B = 1.
    import golden
    config = wide_config(4, 4, 4)
    image, q = random_case(config, 5, widths=[100, 90, 60], w_density=0.4, a_density=0.7)
    narrow = dataclasses.replace(image, config=dataclasses.replace(config, broadcast_width=1))
    np.testing.assert_array_equal(golden.run(image, q).q, golden.run(narrow, q).q)

"""`python -m sim_tests.bare_throughput` builds and clocks the bare Verilator model."""

from contract.config import EIEConfig
from sim_tests.bare_throughput import bare_throughput


def test_bare_model_runs(tmp_path):
    result = bare_throughput(EIEConfig(n_pes=2, queue_depth=2), cycles=5000, opt="-O0",
                             work_dir=tmp_path)
    assert result["cycles"] == 5000
    assert result["seconds"] > 0
    assert result["cycles_per_second"] == result["cycles"] / result["seconds"]

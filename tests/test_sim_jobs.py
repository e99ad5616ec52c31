import numpy as np
import pytest

from compiler.pack import pack
from compiler.types import QuantLayer
from contract.config import EIEConfig
from sim_tests import jobs


def test_job_roundtrip_without_pickle(tmp_path):
    config = EIEConfig(n_pes=2)
    layer = QuantLayer("fc", np.eye(5, dtype=np.uint8), np.linspace(0, 1, 16), None, True)
    image = pack([layer], config)
    job = {"config": config, "images": [image], "q": np.arange(6).reshape(2, 3),
           "flags": {"seed": 3, "stall": 0.25, "name": "x", "none": None},
           "scalar": np.int64(7)}
    jobs.save(tmp_path / "job", job)
    back = jobs.load(tmp_path / "job")
    assert back["config"] == config and back["scalar"] == 7
    assert back["flags"] == job["flags"]
    np.testing.assert_array_equal(back["q"], job["q"])
    np.testing.assert_array_equal(back["images"][0].spmat, image.spmat)
    assert back["images"][0].program == image.program
    with pytest.raises(TypeError, match="cannot hand object"):
        jobs.save(tmp_path / "bad", {"x": object()})

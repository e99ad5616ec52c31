"""`eie demo --lstm`'s RTL stage on a tiny budget: the RTL's accuracy, bit- and
cycle-exactness as the report gives them."""

import numpy as np
from test_lstm_prune import TINY

from contract.config import EIEConfig
from contract.lstm_config import ESEConfig
from contract.lstm_image import read_lstm_image
from eie.lstm_demo import run_lstm_demo
from golden.lstm_model import quantize_sequence, run_lstm


def test_demo_rtl_stage(tmp_path):
    config = ESEConfig(channel=EIEConfig(n_pes=2, act_frac=11, acc_depth=16))
    r = run_lstm_demo(tmp_path / "demo", config, rtl_sequences=5, **TINY)
    rtl = r["rtl"]
    assert rtl["sequences"] == 5 and rtl["bit_exact"] and rtl["cycle_exact"]
    x = np.load(tmp_path / "demo" / "x_test.npy")[:5].astype(np.float64)
    labels = np.load(tmp_path / "demo" / "y_test.npy")[:5]
    gold = run_lstm(read_lstm_image(tmp_path / "demo" / "image"),
                    quantize_sequence(x, config))
    assert rtl["acc_rtl"] == np.mean(np.argmax(gold.y[:, -1], 1) == labels)
    report = (tmp_path / "demo" / "report.md").read_text()
    assert "| bit-exact against golden | | True |" in report

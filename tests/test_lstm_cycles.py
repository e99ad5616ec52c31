"""The ESE cycle model (golden/lstm_cycles.py) against docs/ese.md "Schedule" and
docs/architecture.md: a case computed by hand, channel lockstep, and the FrameCycles
accounting."""

import dataclasses
import logging

import numpy as np
import pytest

from compiler.lstm_model import LSTMLayerWeights, LSTMSpec
from compiler.lstm_pack import compress_lstm, pack_lstm
from compiler.types import DenseLayer
from contract.config import EIEConfig
from contract.lstm_config import ESEConfig
from golden.lstm_cycles import lstm_cycles
from golden.lstm_model import quantize_sequence, run_lstm


@pytest.fixture(autouse=True)
def _quiet():
    logging.getLogger("compiler.pack").setLevel(logging.ERROR)


def test_hand_computed_frames():
    # One PE, queue depth 8, 4 accumulators: a 1-input, 1-cell LSTM without projection,
    # every weight 0.5 (4 entries per column, no padding), x = 1 in both frames.
    #
    # LOAD_X: I'/N = 1 word + LOAD 3                                    =  4
    # gate tile (out_local 4): PRE 2 + preload 4 + C + DRAIN 5 + write-back 4 + POST 1
    #   = 16 + C, then CELL 12 (SEG 2 + the cell unit's drain 10; docs/ese.md, "RTL")
    # COPY M -> H: H'/N = 1 + COPY 2                                      =  3
    # Frame 0 (h = 0): slots are column 0 (x) at b0 = 0, popped at s = 2, ends at
    #   e = 2 + 4 = 6, then the all-zero row of h as an empty slot at b = 1;
    #   C = max(b_last + 1, b0 + 2, e) = max(2, 2, 6) = 6      -> 4 + 16 + 6 + 12 + 3 = 41
    # Frame 1 (h != 0): column 0 at b0 = 0 (s = 2, e = 6), column 1 at b1 = 1 (the queue
    #   has room, D = 8), popped at max(b1 + 2, 6) = 6, e = 10;
    #   C = max(b1 + 1, b1 + 2, 10) = 10                       -> 4 + 16 + 10 + 12 + 3 = 45
    config = ESEConfig(channel=EIEConfig(n_pes=1, act_frac=11, acc_depth=4, act_depth=16,
                                         spmat_depth=64, ptr_depth=16, bias_depth=16),
                       cell_depth=4)
    w = np.full((4, 1), 0.5)
    spec = LSTMSpec([LSTMLayerWeights("l0", w, w.copy(), np.zeros(4), None, None)], [])
    image = pack_lstm(compress_lstm(spec, config), config)
    q = quantize_sequence(np.ones((2, 1)), config)
    assert np.all(run_lstm(image, q).h[0] != 0)       # frame 1 broadcasts h
    report = lstm_cycles(image, q)
    assert report.cycles.tolist() == [41, 45]
    f0, f1 = report.frames
    assert (f0.compute, f0.mac_busy, f0.ideal) == (6, 4, 4)
    assert (f1.compute, f1.mac_busy, f1.ideal) == (10, 8, 8)
    # out_local 4 < the drain 10: none of the cell unit's cycles overlap the write-back
    assert (f1.elementwise, f1.elementwise_hidden, f1.elementwise_exposed) == (4, 0, 10)
    assert f1.per_matrix == [16 + 10 + 12]
    assert report.total == 86


def _lockstep_image(channels):
    config = ESEConfig(channel=EIEConfig(n_pes=3, act_frac=11, acc_depth=16, act_depth=64,
                                         spmat_depth=512, ptr_depth=128, bias_depth=64,
                                         max_tiles=32),
                       channels=channels, cell_depth=16)
    rng = np.random.default_rng(4)
    n_in, hidden, proj = 9, 7, 5
    layer = LSTMLayerWeights("l0", rng.normal(0, 0.5, (4 * hidden, n_in)),
                             rng.normal(0, 0.5, (4 * hidden, proj)),
                             rng.normal(0, 0.3, 4 * hidden),
                             rng.normal(0, 0.5, (proj, hidden)), None)
    head = [DenseLayer("head", rng.normal(0, 0.5, (4, proj)), rng.normal(0, 0.1, 4), False)]
    spec = LSTMSpec([layer], head)
    return pack_lstm(compress_lstm(spec, config, density=0.5, balance=True), config)


def test_channel_lockstep_is_the_or_of_the_patterns():
    # Sequences a and b zero different input columns; c zeros exactly the columns both
    # zero, so its non-zero pattern is their OR. m and h are dense in all three (checked),
    # and the only ReLU-free head reads h, so every matrix sees the OR pattern.
    rng = np.random.default_rng(5)
    x = rng.normal(0, 1.0, (3, 6, 9))
    zero_a, zero_b = [0, 2, 3, 7], [2, 3, 5, 8]
    x[0][:, zero_a] = 0
    x[1][:, zero_b] = 0
    x[2][:, sorted(set(zero_a) & set(zero_b))] = 0
    two = _lockstep_image(channels=2)
    one = dataclasses.replace(two, config=dataclasses.replace(two.config, channels=1))
    q = quantize_sequence(x, two.config)
    result = run_lstm(two, q, trace=True)
    assert np.all(result.h[0] != 0) and np.all(result.trace[0]["m"] != 0)
    grouped = lstm_cycles(two, q[:2]).cycles                  # a, b on channels 0, 1
    alone = lstm_cycles(one, q).cycles                         # each on its own
    # two channels: the OR pattern's schedule, plus channel 1's write-back pass after
    # every tile (out_local rows and PASS = 2; docs/ese.md, "RTL")
    passes = sum(d.out_local + 2 for d in two.matrices.program)
    np.testing.assert_array_equal(grouped[0], alone[2] + passes)
    np.testing.assert_array_equal(grouped[1], alone[2] + passes)
    assert np.all(alone[2] >= np.maximum(alone[0], alone[1]))
    assert np.any(alone[2] > np.maximum(alone[0], alone[1]))   # the OR costs cycles
    # a third sequence starts a new group: it runs alone
    three = lstm_cycles(two, q[[0, 1, 0]]).cycles
    np.testing.assert_array_equal(three[2], alone[0])
    np.testing.assert_array_equal(three[:2], grouped)


@pytest.mark.parametrize("seed", range(4))
def test_frame_fields_are_consistent(seed):
    image = _lockstep_image(channels=1)
    x = np.random.default_rng(seed).normal(0, 1.0, (2, 5, 9))
    report = lstm_cycles(image, quantize_sequence(x, image.config))
    # 7 cells on 3 PEs: 3 local cells, 12 gate rows per PE, one tile of 16 accumulators
    gates = image.matrices.layers[0]
    assert gates.n_tiles == 1
    assert image.matrices.program[gates.first_tile].out_local == 12
    for frames in report.frames:
        for frame in frames:
            assert frame.ideal <= frame.mac_busy <= frame.compute <= frame.cycles
            # with a projection: LOAD (3) + x words + every matrix's tiles (CELL included)
            assert frame.cycles == 3 + image.memory.x_words + sum(frame.per_matrix)
            # 12 rows through the cell unit, which drains 10 cycles after the write-back
            assert (frame.elementwise, frame.elementwise_hidden,
                    frame.elementwise_exposed) == (12, 2, 10)
            assert frame.elementwise_hidden + frame.elementwise_exposed == frame.elementwise


def test_a_given_golden_run_is_reused():
    image = _lockstep_image(channels=2)
    q = quantize_sequence(np.random.default_rng(5).normal(0, 1.0, (3, 4, 9)), image.config)
    result = run_lstm(image, q, trace=True)
    assert np.array_equal(lstm_cycles(image, q, result=result).cycles,
                          lstm_cycles(image, q).cycles)
    with pytest.raises(ValueError, match="batched run_lstm"):
        lstm_cycles(image, q, result=run_lstm(image, q))

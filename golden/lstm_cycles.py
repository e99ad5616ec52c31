"""Cycle model of the ESE engine: the schedule of docs/ese.md, "Schedule (cycle contract)".

Every matrix tile costs what the EIE cycle contract gives (docs/architecture.md); the LSTM
adds the frame load, the cell unit's latency after each gate tile and, without a
projection, the copy of the cell outputs into ``h``. Channels run in lockstep: a column is
broadcast when its activation is non-zero in any channel of the group.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from contract.lstm_image import LSTMImage
from contract.lstm_layout import padded

from .cycle_model import PIPELINE, compute_span
from .lstm_model import LSTMResult, decode_matrices, run_lstm

__all__ = ["LSTM_PIPELINE", "FrameCycles", "LSTMCycleReport", "lstm_cycles"]

#: Constants of the ESE RTL (``rtl.lstm_scheduler.lstm_pipeline``; ``sim_tests`` assert
#: them cycle for cycle): LOAD after the frame's ``I'/N`` load cycles (the cycle that finds
#: the frame, the read latency, the frame's end), SEG per projection or head tile, CELL
#: per gate tile (its SEG and the cell unit's drain), COPY after the ``H'/N`` copy cycles,
#: and with A > 1 channels per tile ``(A - 1) * out_local + PASS`` (the other channels'
#: write-back passes).
LSTM_PIPELINE = {"LOAD": 3, "SEG": 2, "CELL": 12, "COPY": 2, "PASS": 2}


@dataclass
class FrameCycles:
    """Cycles of one frame of one channel group.

    Attributes
    ----------
    cycles : the frame, every phase and constant included.
    compute : sum of the matrix tiles' compute spans ``C``.
    mac_busy : per tile the busiest PE's entries, summed (a lower bound on ``compute``).
    ideal : per tile ``ceil(sum_p busy / N)``, summed.
    elementwise : gate rows through the cell unit per PE (the gate tiles' ``out_local``
        times the channels of the group).
    elementwise_hidden : of those, the cycles that overlap the gate write-back: channel 0
        streams through the cell unit, which drains ``CELL - SEG`` cycles after the
        write-back ends, so all but that of each gate tile's ``out_local``.
    elementwise_exposed : the cycles the cell unit adds to the frame: its drain after each
        gate tile and the other channels' passes (so ``hidden + exposed = elementwise``
        when ``out_local`` is at least the drain).
    per_matrix : cycles per matrix (``image.matrices.layers`` order).
    """

    cycles: int
    compute: int
    mac_busy: int
    ideal: int
    elementwise: int
    elementwise_hidden: int
    elementwise_exposed: int
    per_matrix: list = field(default_factory=list)


@dataclass
class LSTMCycleReport:
    """Per sequence and frame: ``frames[b][t]``; ``cycles`` int64 [batch, T]."""

    frames: list
    cycles: np.ndarray

    @property
    def total(self) -> int:
        return int(self.cycles.sum())


def _tile_cycles(tile, acts, queue_depth: int, pipe: dict):
    span = compute_span(tile.lengths, acts, queue_depth)
    out_local = tile.desc.out_local
    total = pipe["PRE"] + out_local + span.compute + pipe["DRAIN"] + out_local + pipe["POST"]
    return int(total), span


def lstm_cycles(image: LSTMImage, q_in, *, pipeline: dict | None = None,
                lstm_pipeline: dict | None = None, matrices=None,
                result: LSTMResult | None = None) -> LSTMCycleReport:
    """Cycle count of every frame of every sequence (docs/ese.md, "Schedule").

    ``q_in`` is int [T, n_in] or [batch, T, n_in]; sequence ``b`` runs on channel
    ``b mod C``, in group ``b // C`` with the sequences on the other channels.
    ``matrices`` (:func:`decode_matrices`) and ``result`` (``run_lstm(image, q_in,
    trace=True)`` of the same, batched input) avoid recomputing them.
    """
    pipe = dict(PIPELINE if pipeline is None else pipeline)
    lpipe = dict(LSTM_PIPELINE if lstm_pipeline is None else lstm_pipeline)
    q_in = np.asarray(q_in)
    single = q_in.ndim == 2
    q3 = q_in[None] if single else q_in
    if matrices is None:
        matrices = decode_matrices(image)
    if result is None:
        result = run_lstm(image, q3, matrices=matrices, trace=True)
    elif result.trace is None or np.ndim(result.q) != 3:
        raise ValueError("result must be a batched run_lstm(..., trace=True) of q_in")
    cfg = image.config
    n, depth, channels = cfg.n_pes, cfg.channel.queue_depth, cfg.channels
    batch, steps, width = q3.shape
    cols = {k: info.in_local * n for k, info in
            ((k, image.matrices.program[m.first_tile]) for k, m in
             enumerate(image.matrices.layers))}

    frames = [[None] * steps for _ in range(batch)]
    cycles = np.zeros((batch, steps), np.int64)
    for g0 in range(0, batch, channels):
        group = slice(g0, min(g0 + channels, batch))
        size = group.stop - group.start
        for t in range(steps):
            acc = _Frame(len(image.matrices.layers), lpipe["LOAD"] + image.memory.x_words)
            inp = (q3[group, t], padded(width, n))
            for li, info in enumerate(image.layers):
                h_prev = (result.h[li][group, t - 1] if t else
                          np.zeros((size, info.n_out), np.int64))
                parts = [inp, (h_prev, padded(info.n_out, n))]
                tiles = acc.matrix(info.gates, matrices[info.gates],
                                   _active(parts, cols[info.gates]), depth, pipe,
                                   lpipe["CELL"], size, lpipe["PASS"])
                drain = lpipe["CELL"] - lpipe["SEG"]     # the cell unit's own share
                for tile in tiles:
                    # channel 0 streams through the cell unit under the write-back; the
                    # other channels' passes come after it
                    acc.elementwise += size * tile.desc.out_local
                    acc.hidden += max(tile.desc.out_local - drain, 0)
                    acc.exposed += drain + (size - 1) * tile.desc.out_local
                m = result.trace[li]["m"][group, t]
                if info.proj:
                    acc.matrix(info.projection, matrices[info.projection],
                               _active([(m, padded(info.hidden, n))], cols[info.projection]),
                               depth, pipe, lpipe["SEG"], size, lpipe["PASS"])
                else:
                    acc.cycles += padded(info.hidden, n) // n + lpipe["COPY"]
                inp = (result.h[li][group, t], padded(info.n_out, n))
            for j, k in enumerate(image.head):
                acc.matrix(k, matrices[k], _active([inp], cols[k]), depth, pipe,
                           lpipe["SEG"], size, lpipe["PASS"])
                out = result.trace[-1]["head"][j][group, t]
                inp = (out, padded(out.shape[1], n))
            frame = acc.report()
            for b in range(group.start, group.stop):
                frames[b][t] = frame
                cycles[b, t] = frame.cycles
    if single:
        return LSTMCycleReport(frames[0], cycles[0])
    return LSTMCycleReport(frames, cycles)


def _active(parts, width: int) -> np.ndarray:
    """Column ``j`` of a matrix input is broadcast when it is non-zero in any channel;
    ``parts`` are ``(values [channels, len], padded len)`` laid end to end."""
    active = np.zeros(width, np.int64)
    at = 0
    for values, size in parts:
        active[at:at + values.shape[1]] = np.any(values != 0, axis=0)
        at += size
    return active


class _Frame:
    """Running sums of one frame."""

    def __init__(self, n_matrices: int, cycles: int):
        self.cycles, self.compute, self.mac_busy, self.ideal = cycles, 0, 0, 0
        self.elementwise = self.hidden = self.exposed = 0
        self.per_matrix = [0] * n_matrices

    def matrix(self, k: int, tiles, active, queue_depth: int, pipe: dict, extra: int,
               channels: int, pass_cycles: int):
        """Every tile: its EIE cycles, ``extra`` (SEG, or CELL for a gate tile) and with
        more than one channel the write-back passes of channels 1 .. channels-1."""
        for tile in tiles:
            spent, span = _tile_cycles(tile, active, queue_depth, pipe)
            spent += extra
            if channels > 1:
                spent += (channels - 1) * tile.desc.out_local + pass_cycles
            self.cycles += spent
            self.per_matrix[k] += spent
            self.compute += span.compute
            self.mac_busy += int(span.busy.max()) if span.busy.size else 0
            self.ideal += span.ideal
        return tiles

    def report(self) -> FrameCycles:
        return FrameCycles(cycles=int(self.cycles), compute=self.compute,
                           mac_busy=self.mac_busy, ideal=self.ideal,
                           elementwise=self.elementwise,
                           elementwise_hidden=self.hidden,
                           elementwise_exposed=self.exposed, per_matrix=self.per_matrix)

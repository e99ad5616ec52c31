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
from .lstm_model import decode_matrices, run_lstm

__all__ = ["LSTM_PIPELINE", "FrameCycles", "LSTMCycleReport", "lstm_cycles"]

#: Constants the ESE RTL fixes (part 2 measures them and may change them; golden and RTL
#: must agree): LOAD after the frame's ``I'/N`` load cycles, CELL from the last gate row
#: leaving the accumulators to the last ``m`` written, COPY after the ``H'/N`` copy cycles.
LSTM_PIPELINE = {"LOAD": 1, "CELL": 8, "COPY": 2}


@dataclass
class FrameCycles:
    """Cycles of one frame of one channel group.

    Attributes
    ----------
    cycles : the frame, every phase and constant included.
    compute : sum of the matrix tiles' compute spans ``C``.
    mac_busy : per tile the busiest PE's entries, summed (a lower bound on ``compute``).
    ideal : per tile ``ceil(sum_p busy / N)``, summed.
    elementwise : gate rows through the cell unit per PE (the gate tiles' ``out_local``).
    elementwise_hidden : of those, the cycles that overlap the gate write-back (all of
        them: the cell unit consumes the write-back stream).
    elementwise_exposed : cycles the cell unit adds to the frame (``CELL`` per gate tile).
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
                lstm_pipeline: dict | None = None) -> LSTMCycleReport:
    """Cycle count of every frame of every sequence (docs/ese.md, "Schedule").

    ``q_in`` is int [T, n_in] or [batch, T, n_in]; sequence ``b`` runs on channel
    ``b mod C``, in group ``b // C`` with the sequences on the other channels.
    """
    pipe = dict(PIPELINE if pipeline is None else pipeline)
    lpipe = dict(LSTM_PIPELINE if lstm_pipeline is None else lstm_pipeline)
    q_in = np.asarray(q_in)
    single = q_in.ndim == 2
    q3 = q_in[None] if single else q_in
    matrices = decode_matrices(image)
    result = run_lstm(image, q3, matrices=matrices, trace=True)
    cfg = image.config
    n, depth, channels = cfg.n_pes, cfg.channel.queue_depth, cfg.channels
    batch, steps, width = q3.shape
    cols = {k: info.in_local * n for k, info in
            ((k, image.matrices.program[m.first_tile]) for k, m in
             enumerate(image.matrices.layers))}

    def vector(parts, k):
        """The matrix-``k`` input of every sequence, padded to its scanned width."""
        v = np.zeros((parts[0].shape[0], cols[k]), np.int64)
        at = 0
        for part, size in parts:
            v[:, at:at + part.shape[1]] = part
            at += size
        return v

    frames = [[None] * steps for _ in range(batch)]
    cycles = np.zeros((batch, steps), np.int64)
    for g0 in range(0, batch, channels):
        group = slice(g0, min(g0 + channels, batch))
        for t in range(steps):
            total = lpipe["LOAD"] + image.memory.x_words
            compute = busy_max = ideal = elem = exposed = 0
            per_matrix = [0] * len(image.matrices.layers)
            inp = (q3[group, t], padded(width, n))

            def run_matrix(k, parts):
                nonlocal compute, busy_max, ideal
                acts = np.any(vector(parts, k) != 0, axis=0).astype(np.int64)
                spent = 0
                tiles = []
                for tile in matrices[k]:
                    c, span = _tile_cycles(tile, acts, depth, pipe)
                    spent += c
                    compute += span.compute
                    busy_max += int(span.busy.max()) if span.busy.size else 0
                    ideal += span.ideal
                    tiles.append(tile)
                per_matrix[k] += spent
                return spent, tiles

            for li, info in enumerate(image.layers):
                h_prev = (result.h[li][group, t - 1] if t else
                          np.zeros((group.stop - group.start, info.n_out), np.int64))
                spent, tiles = run_matrix(info.gates, [inp, (h_prev, padded(info.n_out, n))])
                total += spent + lpipe["CELL"] * len(tiles)
                per_matrix[info.gates] += lpipe["CELL"] * len(tiles)
                elem += sum(tile.desc.out_local for tile in tiles)
                exposed += lpipe["CELL"] * len(tiles)
                m = result.trace[li]["m"][group, t]
                if info.proj:
                    spent, _ = run_matrix(info.projection, [(m, padded(info.hidden, n))])
                    total += spent
                else:
                    total += padded(info.hidden, n) // n + lpipe["COPY"]
                h = result.h[li][group, t]
                inp = (h, padded(info.n_out, n))
            a = inp
            for j, k in enumerate(image.head):
                spent, _ = run_matrix(k, [a])
                total += spent
                out = result.trace[-1]["head"][j][group, t]
                a = (out, padded(out.shape[1], n))
            frame = FrameCycles(cycles=int(total), compute=compute, mac_busy=busy_max,
                                ideal=ideal, elementwise=elem, elementwise_hidden=elem,
                                elementwise_exposed=exposed, per_matrix=per_matrix)
            for b in range(group.start, group.stop):
                frames[b][t] = frame
                cycles[b, t] = frame.cycles
    if single:
        return LSTMCycleReport(frames[0], cycles[0])
    return LSTMCycleReport(frames, cycles)

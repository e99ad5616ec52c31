"""The ESE (sparse-LSTM) configuration: one EIE channel config plus what the LSTM adds.

Composition, not extension: ``ESEConfig.channel`` is an :class:`EIEConfig` for the PE array
of one channel, so EIE's fields, rules and ``config_id`` stay as they are. docs/ese.md
gives the meaning of every field and the numerics they set.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

from .config import EIEConfig, check_fields
from .errors import ConfigError

__all__ = ["ESEConfig", "DEFAULT_CHANNEL"]

#: The default channel: 4 PEs, 11 fraction bits (8 are not enough for an LSTM; see
#: docs/ese.md, "Accuracy requirement"), 64 accumulators (16 cells per gate tile).
DEFAULT_CHANNEL = EIEConfig(n_pes=4, act_frac=11, acc_depth=64)


@dataclass(frozen=True)
class ESEConfig:
    """Architecture parameters of an ESE engine (docs/ese.md, "Config").

    Parameters
    ----------
    channel : the PE array of one channel (an :class:`EIEConfig`).
    channels : channels that share one copy of the weights.
    gate_frac : fraction bits of σ/tanh outputs (signed ``gate_frac + 2`` bits).
    cell_bits : signed width of the cell state (``gate_frac`` fraction bits).
    table_range_log2 : σ/tanh input range ``[-2**r, 2**r)``.
    table_segments_log2 : interpolation segments ``2**k`` of each table.
    cell_depth : cell-state words per PE per channel (all layers' cells).
    max_lstm_layers : LSTM layers an image may hold.
    """

    channel: EIEConfig = field(default_factory=lambda: DEFAULT_CHANNEL)
    channels: int = 1
    gate_frac: int = 14
    cell_bits: int = 24
    table_range_log2: int = 3
    table_segments_log2: int = 8
    cell_depth: int = 128
    max_lstm_layers: int = 4

    def __post_init__(self):
        if not isinstance(self.channel, EIEConfig):
            raise ConfigError(f"channel must be an EIEConfig, not {self.channel!r}")
        for f in dataclasses.fields(self):
            if f.name == "channel":
                continue
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"{f.name} must be an integer, not {value!r}")
            if value < 1:
                raise ConfigError(f"{f.name} must be a positive integer, not {value!r}")
        ch = self.channel
        if ch.broadcast_width != 1:
            raise ConfigError(f"channel broadcast_width must be 1 (the ESE array broadcasts one "
                              f"column per cycle), not {ch.broadcast_width}")
        if ch.acc_depth % 4:
            raise ConfigError(f"channel acc_depth must be a multiple of 4 (a gate tile holds "
                              f"whole cells of 4 gate rows), not {ch.acc_depth}")
        if self.gate_frac <= ch.act_frac:
            raise ConfigError(f"gate_frac ({self.gate_frac}) must exceed the channel's "
                              f"act_frac ({ch.act_frac}): a cell value becomes a table input "
                              f"by a right shift")
        if self.gate_frac + 2 > 30:
            raise ConfigError(f"gate_frac must be at most 28, not {self.gate_frac}")
        if self.cell_bits < self.gate_frac + 2 or self.cell_bits > 40:
            raise ConfigError(f"cell_bits must be in [gate_frac + 2, 40], not {self.cell_bits}")
        if self.table_range_log2 > ch.act_bits - 1 - ch.act_frac:
            raise ConfigError(f"table range 2**{self.table_range_log2} exceeds the activation "
                              f"range 2**{ch.act_bits - 1 - ch.act_frac}")
        if self.interpolation_bits < 1:
            raise ConfigError(
                f"2**{self.table_segments_log2} table segments leave no interpolation bit "
                f"for inputs with {ch.act_frac} fraction bits over 2**"
                f"{self.table_range_log2 + 1} (need act_frac + table_range_log2 + 1 > "
                f"table_segments_log2)")

    # ---- derived quantities -------------------------------------------------------------
    @property
    def n_pes(self) -> int:
        return self.channel.n_pes

    @property
    def gate_bits(self) -> int:
        """Signed width of a σ/tanh output."""
        return self.gate_frac + 2

    @property
    def table_size(self) -> int:
        """Samples per table (``2**table_segments_log2 + 1``)."""
        return (1 << self.table_segments_log2) + 1

    @property
    def interpolation_bits(self) -> int:
        """Low bits of a table input offset used for interpolation (``b`` in docs/ese.md)."""
        return self.channel.act_frac + self.table_range_log2 + 1 - self.table_segments_log2

    @property
    def cells_per_tile(self) -> int:
        return self.channel.acc_depth // 4

    # ---- (de)serialisation ----------------------------------------------------------------
    def to_dict(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["channel"] = self.channel.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> ESEConfig:
        check_fields(cls, data, "ESE config")
        data = dict(data)
        if "channel" in data:
            data["channel"] = EIEConfig.from_dict(data["channel"])
        try:
            return cls(**data)
        except TypeError as exc:
            raise ConfigError(str(exc)) from None

    @property
    def config_id(self) -> int:
        """32-bit identifier of this config (stable hash of its fields, channel included)."""
        text = json.dumps(self.to_dict(), sort_keys=True).encode()
        return int.from_bytes(hashlib.sha256(b"ese" + text).digest()[:4], "little")

    @classmethod
    def ese(cls, **overrides) -> ESEConfig:
        """The ESE-size engine of the benchmark: 32 channels of 32 PEs for the 1024-cell,
        512-projection, 153-input LSTM (docs/ese-reference.md, recalled figures).

        A 5-bit relative index (9-bit entries, 4 to a 36-bit word): at 11% density the
        4-bit index of EIE pads 0.12 entries per non-zero and the 5-bit one 0.014, which
        takes the frame from 13,323 to 12,134 cycles (`eie bench ese`, docs/benchmarks.md)
        in the same four BRAM36 per PE (4096 x 36 bits against 2048 x 64)."""
        channel = overrides.pop("channel", None) or EIEConfig(
            n_pes=32, queue_depth=8, act_frac=11, acc_depth=128, index_bits=5,
            entries_per_word=4, spmat_depth=4096, ptr_depth=1024, act_depth=128,
            bias_depth=256, max_layers=8, max_tiles=16)
        base = dict(channel=channel, channels=32, cell_depth=32)
        base.update(overrides)
        return cls(**base)

"""The one frozen architecture configuration shared by compiler, golden model and RTL.

Every packed image records the config it was packed for (``EIEConfig.to_dict``) and
its ``config_id``; loading an image into a design with a different config is an error.
Variants come from ``dataclasses.replace``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

from .errors import ConfigError
from .host_map import HOST_DATA_BITS, MAX_HOST_DEPTH, MAX_HOST_PES, OFFSET_BITS

__all__ = ["EIEConfig", "ConfigError", "MAX_BROADCAST_WIDTH", "clog2", "check_fields"]

#: Largest broadcast width ``B`` (lanes of the LNZD, pointer reads per PE per cycle).
MAX_BROADCAST_WIDTH = 8


def check_fields(cls, data, what: str) -> None:
    """Raise ``ConfigError`` unless ``data`` is a dict whose keys are fields of the
    dataclass ``cls`` (``what`` names it in the message)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{what} must be a JSON object, not {type(data).__name__}")
    unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise ConfigError(f"unknown {what} field(s): {', '.join(unknown)}")


def clog2(n: int) -> int:
    """Bits needed to address ``n`` items (at least 1)."""
    return max(1, (int(n) - 1).bit_length())


def _bits_for(value: int) -> int:
    """Bits needed to hold the unsigned value ``value`` (at least 1)."""
    return max(1, int(value).bit_length())


@dataclass(frozen=True)
class EIEConfig:
    """Architecture parameters of an EIE PE array.

    Defaults are the EIE paper's PE micro-architecture (4-bit codebook index, 4-bit
    relative index, 8 entries per 64-bit word, 16-bit pointers, queue depth 8, 16-bit
    fixed point) with the array and memories scaled down so the default design
    simulates in seconds; ``EIEConfig.paper()`` gives the paper's 64-PE sizes.

    Parameters
    ----------
    n_pes : number of processing elements; row ``i`` belongs to PE ``i mod n_pes``.
    queue_depth : activation-queue (FIFO) depth per PE.
    weight_bits : codebook-index bits ``v`` per entry (index 0 is reserved for zero).
    index_bits : relative-row-index bits ``z`` per entry.
    entries_per_word : entries per sparse-matrix SRAM word.
    pointer_bits : width of a column pointer (entries, relative to the tile base).
    spmat_depth : sparse-matrix SRAM words per PE.
    ptr_depth : entries per pointer bank (even and odd bank each) per PE.
    act_depth : activations per PE per activation buffer (source and destination).
    acc_depth : accumulators per PE, i.e. output rows per PE per row tile.
    bias_depth : bias entries per PE (one per local output row per tile).
    max_layers : codebook slots (one per layer).
    max_tiles : tile descriptors in the program memory.
    act_bits, act_frac : activation fixed-point format (signed).
    codebook_bits : codebook value width (signed); fraction bits are per layer.
    acc_bits : accumulator width; accumulation wraps modulo ``2**acc_bits``.
    broadcast_width : ``B``, non-zero activations the LNZD broadcasts per cycle (from one
        activation row); each PE reads ``B`` columns' pointers per cycle and queues the
        non-empty ones (docs/architecture.md, "Broadcast width"). ``B = 1`` is EIE. It does
        not change an image's contents, only the schedule; it is left out of
        ``to_dict`` (and so of ``config_id``) at 1, so configs from before it existed keep
        their identifiers.
    """

    n_pes: int = 4
    queue_depth: int = 8
    weight_bits: int = 4
    index_bits: int = 4
    entries_per_word: int = 8
    pointer_bits: int = 16
    spmat_depth: int = 2048
    ptr_depth: int = 1024
    act_depth: int = 256
    acc_depth: int = 32
    bias_depth: int = 256
    max_layers: int = 8
    max_tiles: int = 32
    act_bits: int = 16
    act_frac: int = 8
    codebook_bits: int = 16
    acc_bits: int = 32
    broadcast_width: int = 1

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"{field.name} must be an integer, not {value!r}")
        positive = ("n_pes", "queue_depth", "weight_bits", "index_bits", "entries_per_word",
                    "pointer_bits", "spmat_depth", "ptr_depth", "act_depth", "acc_depth",
                    "bias_depth", "max_layers", "max_tiles", "act_bits", "codebook_bits",
                    "acc_bits", "broadcast_width")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive integer, not {getattr(self, name)!r}")
        if not 0 <= self.act_frac < self.act_bits:
            raise ConfigError(f"act_frac must be in [0, act_bits), not {self.act_frac!r}")
        if self.weight_bits < 2:
            raise ConfigError("weight_bits must be at least 2 (index 0 is reserved for zero)")
        if self.acc_bits < self.act_bits + self.codebook_bits:
            raise ConfigError(
                f"acc_bits ({self.acc_bits}) must hold a full product "
                f"({self.act_bits}+{self.codebook_bits} bits)")
        if self.acc_bits > 62:
            raise ConfigError(f"acc_bits must be at most 62, not {self.acc_bits}")
        if self.broadcast_width > MAX_BROADCAST_WIDTH:
            raise ConfigError(f"broadcast_width must be at most {MAX_BROADCAST_WIDTH}, not "
                              f"{self.broadcast_width}")
        if self.broadcast_width > min(self.n_pes, self.queue_depth):
            raise ConfigError(
                f"broadcast_width ({self.broadcast_width}) must not exceed n_pes "
                f"({self.n_pes}) or queue_depth ({self.queue_depth}): a row has n_pes "
                f"activations and a queue takes at most queue_depth columns in a cycle")
        if self.queue_depth % self.broadcast_width:
            raise ConfigError(
                f"queue_depth ({self.queue_depth}) must be a multiple of broadcast_width "
                f"({self.broadcast_width}): the queue is broadcast_width interleaved banks")
        if self.pointer_bits > 32:
            raise ConfigError(f"pointer_bits must be at most 32, not {self.pointer_bits}")
        # What the RTL relies on, checked here so that the compiler and golden model never
        # accept an image the array cannot run (docs/layers.md, "Config rules").
        epw = self.entries_per_word
        if epw & (epw - 1):
            raise ConfigError(f"entries_per_word must be a power of two (the spmat reader "
                              f"splits an entry address into word and lane), not {epw}")
        if self.word_bits > HOST_DATA_BITS:
            raise ConfigError(
                f"an spmat word ({epw} entries of {self.entry_bits} bits = {self.word_bits} "
                f"bits) must fit the {HOST_DATA_BITS}-bit host data port")
        if self.n_pes > MAX_HOST_PES:
            raise ConfigError(f"n_pes must be at most {MAX_HOST_PES} (the host address map's "
                              f"PE field), not {self.n_pes}")
        depths = {"spmat_depth": self.spmat_depth, "ptr_depth": self.ptr_depth,
                  "act_depth": self.act_depth, "bias_depth": self.bias_depth,
                  "max_layers * 2**weight_bits": self.max_layers << self.weight_bits,
                  "max_tiles": self.max_tiles}
        for name, depth in depths.items():
            if depth > MAX_HOST_DEPTH:
                raise ConfigError(f"{name} must be at most 2**{OFFSET_BITS} (the host address "
                                  f"map's offset field), not {depth}")

    # ---- derived quantities -------------------------------------------------------------
    @property
    def entry_bits(self) -> int:
        return self.weight_bits + self.index_bits

    @property
    def word_bits(self) -> int:
        return self.entry_bits * self.entries_per_word

    @property
    def codebook_size(self) -> int:
        return 1 << self.weight_bits

    @property
    def max_run(self) -> int:
        """Largest zero run a single relative index can encode."""
        return (1 << self.index_bits) - 1

    @property
    def max_shift(self) -> int:
        return (1 << self.descriptor_layout()["shift"]) - 1

    @property
    def rows_per_tile(self) -> int:
        return self.n_pes * self.acc_depth

    @property
    def max_vector(self) -> int:
        """Longest activation vector the buffers hold."""
        return self.n_pes * self.act_depth

    def descriptor_layout(self) -> dict[str, int]:
        """Field widths of one tile descriptor, LSB first, in this order."""
        return {
            "in_local": _bits_for(self.act_depth),
            "out_local": _bits_for(self.acc_depth),
            "out_base": clog2(self.act_depth),
            "ptr_base": clog2(self.ptr_depth),
            "spmat_base": clog2(self.spmat_depth),
            "bias_base": clog2(self.bias_depth),
            "slot": clog2(self.max_layers),
            "shift": 6,
            "relu": 1,
            "bias_en": 1,
            "swap": 1,
            "last": 1,
        }

    @property
    def descriptor_bits(self) -> int:
        return sum(self.descriptor_layout().values())

    def memory_shapes(self) -> dict[str, tuple[int, int]]:
        """(width bits, depth) of every memory an image fills; ``pe_*`` exist per PE."""
        return {
            "pe_spmat": (self.word_bits, self.spmat_depth),
            "pe_ptr_even": (self.pointer_bits, self.ptr_depth),
            "pe_ptr_odd": (self.pointer_bits, self.ptr_depth),
            "pe_bias": (self.acc_bits, self.bias_depth),
            "codebook": (self.codebook_bits, self.max_layers * self.codebook_size),
            "program": (self.descriptor_bits, self.max_tiles),
        }

    # ---- (de)serialisation ----------------------------------------------------------------
    def to_dict(self) -> dict[str, int]:
        data = dataclasses.asdict(self)
        if data["broadcast_width"] == 1:
            # Added after the image format was fixed: at EIE's value it is left out, so
            # every earlier config keeps its dict and its config_id.
            del data["broadcast_width"]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> EIEConfig:
        check_fields(cls, data, "config")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ConfigError(str(exc)) from None

    @classmethod
    def load(cls, path) -> EIEConfig:
        """The config in the JSON file ``path``: an object of fields, or an image's
        ``manifest.json`` (its ``config`` object)."""
        with open(path) as f:
            try:
                data = json.load(f)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{path}: not valid JSON ({exc})") from None
            except RecursionError:
                raise ConfigError(f"{path}: nested too deeply to be a config") from None
        # An image's manifest.json holds the config it was packed for as its "config".
        if isinstance(data, dict) and data.get("format") == "eie-image" and "config" in data:
            data = data["config"]
        return cls.from_dict(data)

    @property
    def config_id(self) -> int:
        """32-bit identifier of this config (stable hash of its fields)."""
        text = json.dumps(self.to_dict(), sort_keys=True).encode()
        return int.from_bytes(hashlib.sha256(text).digest()[:4], "little")

    @classmethod
    def paper(cls, **overrides) -> EIEConfig:
        """EIE (ISCA'16) sizes: 64 PEs, 128 KB spmat, 32 KB pointers, 2 KB activations and
        64 accumulators per PE."""
        base = dict(n_pes=64, queue_depth=8, spmat_depth=16384, ptr_depth=8192,
                    act_depth=1024, acc_depth=64, bias_depth=1024, max_layers=16,
                    max_tiles=64)
        base.update(overrides)
        return cls(**base)

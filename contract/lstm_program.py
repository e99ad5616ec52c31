"""The ESE frame program and host address map (docs/ese.md, "RTL: frame program" and
"Host port").

The ESE scheduler walks the same list of operations every frame: the matrix tiles of the
image with the addresses of the activation memory map filled in, and the copies of ``m``
into ``h`` of layers without a projection. The list is a pure function of an
:class:`~contract.lstm_image.LSTMImage`, so it is not stored in the image: the RTL bakes
it, or the host writes it into the program memory (``Region.PROGRAM``).

An operation word is the tile's EIE descriptor (``EIEConfig.descriptor_layout``, LSB
first, ``out_base`` absolute and ``last`` set) followed by the fields of
:func:`op_fields`. The EIE tile sequencer runs one tile at a time, so that the scheduler
can add the write-back passes of channels 1 .. A-1 after each tile.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass

from .config import clog2
from .host_map import MAX_HOST_DEPTH, MAX_HOST_PES, PE_SHIFT, REGION_SHIFT, SEL_SHIFT
from .image import Descriptor
from .lstm_config import ESEConfig
from .lstm_image import LSTMImage
from .lstm_layout import padded

__all__ = ["OpKind", "Op", "op_fields", "op_bits", "frame_program", "encode_op",
           "ops_depth", "ESERegion", "ESEReg", "ChanSel", "PEEPHOLE_SEL", "FrameIO",
           "frame_io", "ese_address"]


class OpKind(enum.IntEnum):
    TILE = 0    # one EIE tile (its descriptor in the low bits)
    COPY = 1    # copy ``words`` activation words from ``src`` to ``dst`` (m -> h)


@dataclass(frozen=True)
class Op:
    """One operation of the frame program.

    ``desc`` is the tile's descriptor with ``out_base`` absolute (for a copy: ``in_local``
    holds the word count, ``out_base`` the destination); ``scan_base`` is the activation
    address of the tile's input row 0 (a copy's source); ``gate`` routes the write-back
    through the cell unit, whose cells start at ``cell_base`` (cell memory) and ``m_base``
    (activation memory); ``end`` marks the frame's last operation.
    """

    kind: OpKind
    desc: Descriptor
    scan_base: int = 0
    gate: bool = False
    cell_base: int = 0
    m_base: int = 0
    peephole: bool = False
    peep_shift: int = 0
    end: bool = False


def op_fields(config: ESEConfig) -> dict[str, int]:
    """Widths of the fields after the descriptor, LSB first."""
    ch = config.channel
    return {"kind": 1, "scan_base": clog2(ch.act_depth), "gate": 1,
            "cell_base": clog2(config.cell_depth), "m_base": clog2(ch.act_depth),
            "peephole": 1, "peep_shift": 6, "end": 1}


def op_bits(config: ESEConfig) -> int:
    return config.channel.descriptor_bits + sum(op_fields(config).values())


def ops_depth(config: ESEConfig) -> int:
    """Program memory depth: every tile plus one copy per LSTM layer."""
    return config.channel.max_tiles + config.max_lstm_layers


def encode_op(op: Op, config: ESEConfig) -> int:
    value = op.desc.encode(config.channel)
    pos = config.channel.descriptor_bits
    for name, width in op_fields(config).items():
        v = int(getattr(op, name))
        if not 0 <= v < (1 << width):
            raise ValueError(f"operation field {name}={v} does not fit {width} bits")
        value |= v << pos
        pos += width
    return value


def _tiles(image: LSTMImage, k: int, scan_base: int, out_base: int, **extra) -> list[Op]:
    info = image.matrices.layers[k]
    ops = []
    for t in range(info.n_tiles):
        d = image.matrices.program[info.first_tile + t]
        desc = dataclasses.replace(d, out_base=out_base + d.out_base, swap=False, last=True)
        ops.append(Op(OpKind.TILE, desc, scan_base=scan_base, **extra))
    return ops


def frame_program(image: LSTMImage) -> list[Op]:
    """The operations of one frame, in order (docs/ese.md, "Schedule")."""
    cfg = image.config
    n, mem = cfg.n_pes, image.memory
    mats = image.matrices
    y_frac, f_act = cfg.gate_frac, cfg.channel.act_frac
    ops: list[Op] = []
    for li, info in enumerate(image.layers):
        gates = mats.layers[info.gates]
        cells_per_tile = cfg.cells_per_tile
        for t, op in enumerate(_tiles(image, info.gates, mem.in_bases[li], 0)):
            ops.append(dataclasses.replace(
                op, gate=True,
                cell_base=info.cell_base + t * cells_per_tile,
                m_base=mem.m_base + t * cells_per_tile,
                peephole=info.peephole,
                peep_shift=info.peep_frac + y_frac - f_act if info.peephole else 0))
        assert gates.n_tiles * cells_per_tile >= padded(info.hidden, n) // n
        if info.proj:
            ops += _tiles(image, info.projection, mem.m_base, mem.h_bases[li])
        else:
            words = padded(info.hidden, n) // n
            desc = Descriptor(in_local=words, out_local=0, out_base=mem.h_bases[li],
                              ptr_base=0, spmat_base=0, bias_base=0, slot=0, shift=0,
                              relu=False, bias_en=False, swap=False, last=True)
            ops.append(Op(OpKind.COPY, desc, scan_base=mem.m_base))
    if image.head:
        head, src = [], mem.h_bases[-1]
        for j, k in enumerate(image.head):
            dst = mem.y_bases[j % 2]
            head += _tiles(image, k, src, dst)
            src = dst
        ops += head
    ops[-1] = dataclasses.replace(ops[-1], end=True)
    if len(ops) > ops_depth(cfg):
        raise ValueError(f"the frame program has {len(ops)} operations, the program memory "
                         f"holds {ops_depth(cfg)}")
    return ops


@dataclass(frozen=True)
class FrameIO:
    """Where a frame's input and output live in each PE's activation memory.

    ``x_words`` input words per PE (at address 0), the output's ``out_base`` and
    ``out_words`` per PE (the last head layer's ``Y``, else the last layer's ``h``).
    """

    x_words: int
    out_base: int
    out_words: int


def frame_io(image: LSTMImage) -> FrameIO:
    mem, n = image.memory, image.config.n_pes
    if image.head:
        base = mem.y_bases[(len(image.head) - 1) % 2]
    else:
        base = mem.h_bases[-1]
    return FrameIO(mem.x_words, base, padded(image.n_out, n) // n)


# ---- host address map of the ESE top (docs/ese.md, "Host port") ------------------------------
class ESERegion(enum.IntEnum):
    """``addr[31:28]``; 0..3 mean what :class:`contract.host_map.Region` says."""

    REGS = 0
    PE = 1          # shared memories of one PE position (MemSel; PEEPHOLE_SEL)
    CODEBOOK = 2
    PROGRAM = 3     # the frame program (operations)
    CHANNEL = 4     # one memory of one PE of the channel in ESEReg.CHANNEL_SEL (ChanSel)
    TABLES = 5      # σ (0 .. K) and tanh (K+1 .. 2K+1) samples of every cell unit


#: ``MemSel`` value of the peephole memory inside :attr:`ESERegion.PE`.
PEEPHOLE_SEL = 7


class ChanSel(enum.IntEnum):
    """``addr[19:17]`` inside :attr:`ESERegion.CHANNEL`."""

    IN_RING = 0     # input frames: slot s word w at s * slot_words + w
    OUT_RING = 1    # outputs: slot s word w at s * slot_words + w (read only)
    ACT = 2         # the activation memory
    CELL = 3        # the cell state (read only)


class ESEReg(enum.IntEnum):
    CTRL_STATUS = 0x0   # W: bit0 start a run. R: bit0 busy, bit1 done, bit2 waiting
    CONFIG_ID = 0x1     # R: ESEConfig.config_id
    TOTAL_CYCLES = 0x2  # R: busy cycles of the last run, frame waits excluded
    N_PES = 0x3
    WDATA_HIGH = 0x4    # W: bits [64:] of the next program write
    FRAMES = 0x10       # W: frames in the next run
    FRAMES_READY = 0x11  # W: frames the host has written (the run waits for frame t < this)
    ACTIVE_CHANNELS = 0x12  # W: channels 0 .. n-1 hold a sequence (the rest read as 0)
    CHANNEL_SEL = 0x13  # W: channel of Region.CHANNEL accesses
    X_WORDS = 0x14      # W: input words per PE per frame
    OUT_BASE = 0x15     # W: activation address of the output
    OUT_WORDS = 0x16    # W: output words per PE per frame
    FRAME_COUNT = 0x17  # R: frames completed in this run
    CHANNELS = 0x18     # R: channels
    FRAME_SLOTS = 0x19  # R: frame slots of the rings
    FRAME_CYCLES = 0x200  # R: + s, cycles of the last frame run in slot s


def ese_address(region: ESERegion | int, addr: int = 0, *, pe: int = 0, sel: int = 0) -> int:
    """Host word address of ``addr`` in ``region`` of the ESE map (the twin of
    :func:`contract.host_map.host_address`, with :class:`ESERegion` and any ``sel``)."""
    if not 0 <= addr < MAX_HOST_DEPTH:
        raise ValueError(f"Host address offset must be in [0, {MAX_HOST_DEPTH}), not {addr!r}")
    if not 0 <= pe < MAX_HOST_PES:
        raise ValueError(f"Host PE number must be in [0, {MAX_HOST_PES}), not {pe!r}")
    if not 0 <= int(sel) < 8:
        raise ValueError(f"Host memory select must be in [0, 8), not {sel!r}")
    return ((int(ESERegion(region)) << REGION_SHIFT) | (int(pe) << PE_SHIFT)
            | (int(sel) << SEL_SHIFT) | int(addr))

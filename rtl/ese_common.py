"""Layouts and the engine-port mode shared by the ESE units (``rtl/ese_pe.py``,
``rtl/ese_array.py``, ``rtl/lstm_scheduler.py``)."""

from __future__ import annotations

from amaranth.hdl import signed, unsigned
from amaranth.lib import data, enum

from contract.config import clog2
from contract.lstm_config import ESEConfig

__all__ = ["Mode", "broadcast_layout", "cell_tile_layout"]


class Mode(enum.Enum, shape=3):
    """What drives the activation memories' engine port."""

    RUN = 0      # tiles (write-back), the cell unit (m)
    CLEAR = 1    # zero act[dst] and the cell state at dst
    LOAD = 2     # act[dst] <= in_ring[src] (one cycle later)
    COPY = 3     # act[dst] <= act[src] (one cycle later)


def broadcast_layout(config: ESEConfig) -> data.StructLayout:
    ch = config.channel
    return data.StructLayout({
        "values": data.ArrayLayout(signed(ch.act_bits), config.channels),
        "index": unsigned(clog2(ch.n_pes * ch.act_depth)),
    })


def cell_tile_layout(config: ESEConfig) -> data.StructLayout:
    return data.StructLayout({
        "cell_base": unsigned(clog2(config.cell_depth)),
        "m_base": unsigned(clog2(config.channel.act_depth)),
        "peephole": 1,
        "peep_shift": unsigned(6),
    })

"""rtl/host_map.py: the Amaranth decoder and encoder of host word addresses against the
plain-Python map of contract/host_map.py (the one definition of the field positions)."""

import random

from amaranth.hdl import Module, Signal
from amaranth.lib import data, wiring
from amaranth.sim import Simulator

from contract.host_map import (
    MAX_HOST_DEPTH,
    MAX_HOST_PES,
    PE_SHIFT,
    REGION_SHIFT,
    SEL_SHIFT,
    MemSel,
    Reg,
    Region,
    host_address,
    split_address,
)
from rtl.host_map import ADDRESS_BITS, READ_LATENCY, HostAddress, HostSignature, host_address_value


def test_layout_matches_contract():
    fields = data.Layout.cast(HostAddress)
    assert [(name, field.offset, field.width) for name, field in fields] == [
        ("offset", 0, 17), ("sel", SEL_SHIFT, 3), ("pe", PE_SHIFT, 8), ("region", REGION_SHIFT, 4)]
    assert fields.size == ADDRESS_BITS == 32
    const = HostAddress.const({"region": Region.PE, "pe": 3, "sel": MemSel.ACT1, "offset": 5})
    assert const.as_value().value == host_address(Region.PE, 5, pe=3, sel=MemSel.ACT1)


def test_host_signature():
    members = HostSignature().members
    assert {name: (member.flow, member.shape) for name, member in members.items()} == {
        "addr": (wiring.Out, 32), "wdata": (wiring.Out, 64), "write": (wiring.Out, 1),
        "read": (wiring.Out, 1), "rdata": (wiring.In, 64), "rvalid": (wiring.In, 1)}
    assert READ_LATENCY == 3


def random_fields(rng):
    return (rng.choice(list(Region)), rng.randrange(MAX_HOST_DEPTH),
            rng.randrange(MAX_HOST_PES), rng.choice(list(MemSel)))


def test_decode_and_encode_against_contract():
    """Random addresses decode to split_address's fields; fields (constants, and signals
    narrower or wider than their field) encode to host_address's word."""
    rng = random.Random(1)
    cases = [random_fields(rng) for _ in range(200)]
    addr = Signal(32)
    view = HostAddress(addr)
    region, offset, pe, sel = Signal(4), Signal(20), Signal(3), Signal(3)
    encoded = host_address_value(region, offset, pe=pe, sel=sel)

    async def testbench(ctx):
        for fields in cases:
            word = host_address(fields[0], fields[1], pe=fields[2], sel=fields[3])
            ctx.set(addr, word)
            got = (ctx.get(view.region), ctx.get(view.pe), ctx.get(view.sel),
                   ctx.get(view.offset))
            assert got == split_address(word)
            assert ctx.get(view.in_region(fields[0])) == 1
            assert ctx.get(view.is_register(Reg.N_PES)) == (
                fields[0] == Region.REGS and fields[1] == Reg.N_PES)
            # constants
            assert ctx.get(host_address_value(*fields[:2], pe=fields[2], sel=fields[3])) \
                == word
            # values: ``offset`` is wider than its field (truncated), ``pe`` narrower
            ctx.set(region, fields[0])
            ctx.set(offset, fields[1] | (rng.randrange(8) << 17))
            ctx.set(pe, fields[2] & 7)
            ctx.set(sel, fields[3])
            assert ctx.get(encoded) == host_address(fields[0], fields[1], pe=fields[2] & 7,
                                                    sel=fields[3])
        ctx.set(addr, host_address(Region.REGS, Reg.N_PES))
        assert ctx.get(view.is_register(Reg.N_PES)) == 1
        assert ctx.get(view.is_register(Reg.CONFIG_ID)) == 0

    sim = Simulator(Module())
    sim.add_testbench(testbench)
    sim.run()

"""AXI4 signatures of the EIE core's bus ports (``rtl/axi_host.py``): AXI4-Lite and
AXI4-Stream, from the manager's or transmitter's side (docs/register-map.md)."""

from __future__ import annotations

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["AXI4LiteSignature", "AXI4StreamSignature"]


class AXI4LiteSignature(wiring.Signature):
    """AXI4-Lite, from the manager's side (a subordinate has ``In(AXI4LiteSignature(...))``).

    Members follow the AMBA names in lower case (``awaddr``, ``awvalid``, ... ``rready``);
    data is 32 bits, ``awprot``/``arprot`` are present (ignored by :class:`AxiHost`).
    """

    def __init__(self, addr_width: int = 16):
        if not isinstance(addr_width, int) or not 13 <= addr_width <= 32:
            raise TypeError(f"AXI address width must be an integer in [13, 32], "
                            f"not {addr_width!r}")
        self._addr_width = addr_width
        super().__init__({
            "awaddr": Out(addr_width), "awprot": Out(3), "awvalid": Out(1), "awready": In(1),
            "wdata": Out(32), "wstrb": Out(4), "wvalid": Out(1), "wready": In(1),
            "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            "araddr": Out(addr_width), "arprot": Out(3), "arvalid": Out(1), "arready": In(1),
            "rdata": In(32), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
        })

    @property
    def addr_width(self) -> int:
        return self._addr_width


class AXI4StreamSignature(wiring.Signature):
    """AXI4-Stream with 32-bit ``tdata`` and ``tlast``, from the transmitter's side."""

    def __init__(self):
        super().__init__({"tdata": Out(32), "tlast": Out(1), "tvalid": Out(1),
                          "tready": In(1)})

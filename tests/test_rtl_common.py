"""rtl/common.py: the host write signature, the descriptor and tile layouts, the image
check."""

import dataclasses
import random

import pytest
from amaranth.lib import wiring

from contract.config import ConfigError, EIEConfig
from contract.image import Descriptor, PackedImage
from rtl.common import HostWrite, check_image, descriptor_layout, tile_layout


def test_host_write_signature():
    sig = HostWrite.Signature(5, 12)
    assert (sig.addr_width, sig.data_width) == (5, 12)
    assert {name: (member.flow, member.shape) for name, member in sig.members.items()} == {
        "en": (wiring.Out, 1), "addr": (wiring.Out, 5), "data": (wiring.Out, 12)}
    assert sig == HostWrite.Signature(addr_width=5, data_width=12)
    assert sig != HostWrite.Signature(5, 13)
    assert repr(sig) == "HostWrite.Signature(5, 12)"
    port = sig.flip().create()
    assert len(port.addr) == 5 and len(port.data) == 12


@pytest.mark.parametrize("args,message", [
    ((0, 8), r"^Host write address width must be a positive integer, not 0$"),
    ((True, 8), r"^Host write address width must be a positive integer, not True$"),
    ((4, "8"), r"^Host write data width must be a positive integer, not '8'$"),
])
def test_host_write_signature_wrong_parameters(args, message):
    with pytest.raises(TypeError, match=message):
        HostWrite.Signature(*args)


@pytest.mark.parametrize("config", [EIEConfig(), EIEConfig.paper(), EIEConfig(n_pes=3)])
def test_descriptor_layout_is_the_descriptor_codec(config):
    """A descriptor built field by field with the layout equals Descriptor.encode (the
    image format's own codec), LSB first."""
    layout = descriptor_layout(config)
    assert layout.size == config.descriptor_bits
    widths = config.descriptor_layout()
    assert [name for name, _ in layout] == list(widths)
    rng = random.Random(config.n_pes)
    for _ in range(50):
        fields = {name: rng.randrange(1 << width) for name, width in widths.items()}
        for flag in ("relu", "bias_en", "swap", "last"):
            fields[flag] = bool(fields[flag])
        word = Descriptor(**fields).encode(config)
        assert layout.const(fields).as_value().value == word
    tile = tile_layout(config)
    assert {name: field.shape for name, field in tile} == {
        name: layout[name].shape for name in ("ptr_base", "spmat_base", "bias_base",
                                              "out_base", "slot", "shift", "relu", "bias_en")}


def test_check_image():
    config = EIEConfig(n_pes=2)
    image = PackedImage.empty(config)
    assert check_image(None, config) is None
    assert check_image(image, config) is image
    other = dataclasses.replace(config, n_pes=3)
    with pytest.raises(ConfigError, match=r"^image was packed for a different config "
                                          rf"\(config_id {config.config_id:#010x}, "
                                          rf"design {other.config_id:#010x}\)$"):
        check_image(image, other)

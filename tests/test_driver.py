"""The host driver's parts that need no RTL (eie/driver.py): the /dev/mem backend over a
file standing in for /dev/mem, the checks made before any image word is written. The
driver against the RTL is sim_tests/test_driver_axi.py."""

import logging
import mmap

import numpy as np
import pytest
from lstm_models import lstm_model

from boards.ese_resources import slot_words_for
from compiler.lstm_pack import compress_lstm, pack_lstm
from compiler.pack import pack
from compiler.types import QuantLayer
from contract.config import EIEConfig
from contract.errors import ConfigError
from contract.host_map import AXI_ID, AxiReg
from contract.lstm_config import ESEConfig
from eie.driver import DevMem, Driver, DriverError, default_slot_words

PAGE = mmap.PAGESIZE


@pytest.fixture
def devmem(tmp_path):
    path = tmp_path / "mem"
    path.write_bytes(bytes(3 * PAGE))
    return path


def test_devmem_words_at_base(devmem):
    with DevMem(PAGE, 0x2000, path=str(devmem)) as mem:
        mem.write(0x0, 0x1234_5678)
        mem.write(0x1004, -1)
        assert mem.read(0x0) == 0x1234_5678
        assert mem.read(0x1004) == 0xFFFF_FFFF
    raw = devmem.read_bytes()
    # The mapping starts at the base: the words land at base + offset, little endian.
    assert raw[PAGE:PAGE + 4] == (0x1234_5678).to_bytes(4, "little")
    assert raw[PAGE + 0x1004:PAGE + 0x1008] == b"\xff" * 4
    assert raw[:PAGE] == bytes(PAGE)


def test_devmem_rejects_bad_arguments(devmem):
    with pytest.raises(ValueError, match="multiple of the page size"):
        DevMem(4, path=str(devmem))
    with pytest.raises(ValueError, match="size must be positive"):
        DevMem(0, 0, path=str(devmem))
    with DevMem(0, 0x2000, path=str(devmem)) as mem:
        for offset in (2, 0x2000, -4):
            with pytest.raises(ValueError, match="word offset"):
                mem.read(offset)
    with pytest.raises(OSError):
        DevMem(0, path=str(devmem.parent / "missing"))


def _device(devmem, config_id, n_pes):
    mem = DevMem(0, 0x2000, path=str(devmem))
    mem.write(AxiReg.ID, AXI_ID)
    mem.write(AxiReg.CONFIG_ID, config_id)
    mem.write(AxiReg.N_PES, n_pes)
    return mem


def _eie_image(config):
    rng = np.random.default_rng(1)
    idx = (rng.integers(1, 16, size=(5, 6)) * (rng.random((5, 6)) < 0.5)).astype(np.uint8)
    codebook = np.concatenate(([0.0], np.linspace(-1, 1, 15)))
    layer = QuantLayer("fc0", idx, codebook, np.zeros(5), False)
    return pack([layer], config)


def test_driver_needs_the_core_id(devmem):
    with DevMem(0, 0x2000, path=str(devmem)) as mem:
        with pytest.raises(DriverError, match="ID register reads 0x00000000"):
            Driver(mem)


def test_driver_checks_config_id_before_writing(devmem):
    config = EIEConfig(n_pes=2)
    image = _eie_image(config)
    mem = _device(devmem, config.config_id ^ 1, 2)
    driver = Driver(mem)
    before = devmem.read_bytes()
    with pytest.raises(ConfigError, match=f"CONFIG_ID is {config.config_id ^ 1:#010x}, the "
                                          f"EIE image's config_id {config.config_id:#010x}"):
        driver.load(image)
    assert devmem.read_bytes() == before    # nothing written
    with pytest.raises(DriverError, match="load an image first"):
        driver.run(np.zeros(6, np.int64))
    mem.close()


def test_driver_attaches_a_baked_image_and_checks_shapes(devmem):
    config = EIEConfig(n_pes=2)
    image = _eie_image(config)
    mem = _device(devmem, config.config_id, 2)
    driver = Driver(mem)
    driver.load(image, write=False)
    with pytest.raises(ValueError, match=r"inputs must have shape \[batch, 6\]"):
        driver.run(np.zeros(5, np.int64))
    mem.close()


def test_default_slot_words_is_the_builds():
    logging.getLogger("compiler.pack").setLevel(logging.ERROR)
    cfg = ESEConfig(channel=EIEConfig(n_pes=2, act_frac=11, acc_depth=8, act_depth=32,
                                      spmat_depth=64, ptr_depth=64, bias_depth=32,
                                      max_tiles=16), channels=1, cell_depth=16)
    for n_in, hidden in ((3, 4), (9, 5)):
        model = lstm_model(n_in, hidden, 1, 0, ())
        image = pack_lstm(compress_lstm(model, cfg, density=0.5, bits=4), cfg)
        assert default_slot_words(image) == slot_words_for(image)

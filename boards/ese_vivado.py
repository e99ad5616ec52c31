"""Write (and optionally run) a Vivado project for an ESE engine (``rtl/ese.py``) on the
KU060, in the layout of :mod:`boards.vivado`::

    BUILD_DIR/
      build.tcl, synth_ooc.tcl, build.sh    as for EIE (project mode; OOC core alone)
      src/ese_ku060.v      board top: clocking, reset, JTAG-to-AXI, AXI4-Lite host, ESE
      src/ese_core.v       the ESE top alone (out-of-context top ``ese_core``, host port)
      src/*.mem            $readmemh images of every initialised memory (the baked image)
      src/image/           the image directory's files, copied
      constraints/ese_ku060.xdc, constraints/ese_core_ooc.xdc
      project.json         what was written (part, clock, ESE config, frame rings, files)
      sw/                  C header, C99 driver and the frame program (boards/sw.py)

The AXI4-Lite host (:class:`rtl.axi_host.AxiHost`, docs/register-map.md) drives the
engine's host port through its address/data register pair; the ESE top has the same
port (:class:`rtl.host_map.HostSignature`) and map layout (docs/ese.md, "Host port"), so
the wrapper is EIE's with the ESE top in place of the EIE array (its AXI registers
``ID``, ``CONFIG_ID`` and ``N_PES`` read as for EIE, ``CONFIG_ID`` being the
``ESEConfig``'s; the AXI4-Stream activation ports are EIE's and are left out).
"""

from __future__ import annotations

from pathlib import Path

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from contract.lstm_config import ESEConfig
from contract.lstm_image import read_lstm_image
from rtl.axi import AXI4LiteSignature
from rtl.axi_host import AxiHost
from rtl.common import validating
from rtl.ese import ESE
from rtl.ese_verilog import generate_ese

from .ese_resources import slot_words_for
from .ku060 import KU060Platform
from .sw import write_sw
from .vivado import _image_files, _write_files, run_vivado

__all__ = ["ESEAxiHost", "write_ese_project", "BOARD_TOP", "CORE_TOP", "IP_TOP"]

BOARD_TOP = "ese_ku060"
CORE_TOP = "ese_core"
IP_TOP = "ese_axi"


class ESEAxiHost(AxiHost):
    """:class:`rtl.axi_host.AxiHost` (AXI4-Lite only) around the ESE top.

    Parameters
    ----------
    config : ESEConfig
    image : LSTMImage, optional
        Baked into the engine's memories (see :class:`rtl.ese.ESE`).
    frame_slots, slot_words : the engine's frame rings.
    addr_width : AXI address width (default 16).

    Members
    -------
    s_axil : In(AXI4LiteSignature(addr_width))
    busy, done : Out(1)

    Raises
    ------
    TypeError
        If ``config`` is not an :class:`ESEConfig`.
    """

    def __init__(self, config: ESEConfig, *, image=None, frame_slots: int = 2,
                 slot_words: int = 16, addr_width: int = 16):
        with validating(self):
            if not isinstance(config, ESEConfig):
                raise TypeError(f"Config must be an ESEConfig, not {config!r}")
            # AxiHost.__init__ checks for an EIEConfig; its members are set here instead.
            self._config, self._image = config, image
            self._pe_class, self._streams = None, False
            self._rings = {"frame_slots": frame_slots, "slot_words": slot_words}
            wiring.Component.__init__(self, {"s_axil": In(AXI4LiteSignature(addr_width)),
                                             "busy": Out(1), "done": Out(1)})

    def _core(self):
        return ESE(self._config, image=self._image, **self._rings)


def write_ese_project(out_dir, image_dir, run: bool = False, *, frame_slots: int = 2,
                      slot_words: int | None = None, pin_file=None,
                      clock_hz: float | None = None) -> Path:
    """Write a Vivado project for the ESE engine that runs the image in ``image_dir``.

    Parameters
    ----------
    out_dir : build directory (created; existing files are overwritten).
    image_dir : a packed ESE (LSTM) image directory; the design takes its config, its
        memories become the block RAMs' initial contents and its files are copied.
    run : run ``vivado -mode batch -source build.tcl`` when ``vivado`` is on PATH.
    frame_slots : frame slots of the engine's rings (default 2).
    slot_words : words per PE per slot (default: :func:`boards.ese_resources.slot_words_for`
        the image).
    pin_file, clock_hz : as :func:`boards.vivado.write_project`.

    Returns
    -------
    Path of ``build.tcl``.

    Raises
    ------
    contract.errors.ImageError
        If ``image_dir`` is not a readable ESE image.
    FileNotFoundError
        If ``run`` is set and ``vivado`` is not on PATH (the project is still written).
    """
    image = read_lstm_image(image_dir)
    config = image.config
    if slot_words is None:
        slot_words = slot_words_for(image)
    rings = {"frame_slots": frame_slots, "slot_words": slot_words}
    listed = _image_files(Path(image_dir))
    platform = KU060Platform(pin_file=pin_file, clock_hz=clock_hz)
    out = Path(out_dir)

    def write_core(src: Path) -> list[str]:
        paths = generate_ese(config, src, image=image, name=CORE_TOP, waivers=False, **rings)
        return [p.name for p in paths[1:]]

    _write_files(out, platform, board=ESEAxiHost(config, image=image, **rings),
                 write_core=write_core,
                 ip_core=ESEAxiHost(config, image=image, **rings), ip_top=IP_TOP,
                 streams=False, hw_txn=None, baked=True, image_dir=image_dir, listed=listed,
                 manifest={"pin_file": None if pin_file is None else str(pin_file),
                           "engine": "ese", "config": config.to_dict(),
                           "config_id": config.config_id, **rings},
                 board_top=BOARD_TOP, core_top=CORE_TOP, engine="ESE",
                 generator="boards/ese_vivado.py")
    write_sw(out, config, image, **rings)   # sw/: C header, C driver, the frame program
    if run:
        run_vivado(out)
    return out / "build.tcl"

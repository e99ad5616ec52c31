"""Host driver of the AXI4-Lite wrapper (``rtl/axi_host.py``, docs/register-map.md) for both
engines: EIE (an MLP :class:`~contract.image.PackedImage`) and ESE (an
:class:`~contract.lstm_image.LSTMImage`, the ESE top behind the same wrapper,
``boards/ese_vivado.py``). docs/board-run.md shows it on a board.

The driver needs only an MMIO object with ``read(offset) -> int`` and
``write(offset, value)`` on 32-bit words at AXI byte offsets, which is the shape of PYNQ's
``MMIO``; :class:`DevMem` is one over Linux ``/dev/mem``, and ``eie.axi_sim`` one over the
simulated AXI4-Lite port (cocotb), so the same code drives the board and the RTL. It
imports nothing but the contract layer and NumPy, so it runs on a board's CPU.

The core's host address space is reached through ``HOST_ADDR``/``DATA_LO``
(``WDATA_HI``/``RDATA_HI`` for the upper halves of 64-bit words); registers go through
the window at ``REGS_WINDOW``. The driver mirrors ``HOST_ADDR`` (it increments after every
``DATA_LO`` access) and ``WDATA_HI`` (sticky) to skip writes that would not change them;
:meth:`Driver.reset_state` forgets the mirrors after a reset of the core.
"""

from __future__ import annotations

import mmap
import os
import time

import numpy as np

from contract.errors import ConfigError
from contract.host_map import (
    AXI_ID,
    REGS_WINDOW,
    AxiReg,
    MemSel,
    Reg,
    Region,
    host_address,
)
from contract.image import PackedImage
from contract.lstm_image import LSTMImage
from contract.lstm_program import (
    PEEPHOLE_SEL,
    ChanSel,
    ESEReg,
    ESERegion,
    encode_op,
    ese_address,
    frame_io,
    frame_program,
    op_bits,
)

__all__ = ["Driver", "DevMem", "DriverError", "default_slot_words"]

_MASK32 = (1 << 32) - 1
_MASK64 = (1 << 64) - 1
_BUSY, _DONE = 1, 2


class DriverError(RuntimeError):
    """The device does not answer as the register map says (no core at the address,
    a run that does not finish, a wrong design for the image)."""


def default_slot_words(image: LSTMImage) -> int:
    """Words per PE per frame slot that ``eie build`` gives an ESE design for ``image``:
    the smallest power of two >= 2 holding its input and output words per PE (the rule of
    ``boards.ese_resources.slot_words_for``; a test keeps the two equal)."""
    io = frame_io(image)
    need = max(2, io.x_words, io.out_words)
    return 1 << (need - 1).bit_length()


def _signed32(value: int) -> int:
    value &= _MASK32
    return value - (1 << 32) if value >> 31 else value


class DevMem:
    """MMIO over a physical address range by ``mmap`` of ``/dev/mem`` (Linux, root).

    Parameters
    ----------
    base : int
        Physical byte address of the AXI4-Lite slave (a multiple of the page size).
    size : int
        Bytes mapped (default 0x2000: the register page and the register window).
    path : str
        The file to map (default ``/dev/mem``; a test passes an ordinary file).

    Raises
    ------
    ValueError
        ``base`` is not page aligned or ``size`` is not positive.
    OSError
        The file cannot be opened or mapped (``/dev/mem`` needs root).
    """

    def __init__(self, base: int, size: int = 0x2000, *, path: str = "/dev/mem"):
        if base < 0 or base % mmap.PAGESIZE:
            raise ValueError(f"base must be a multiple of the page size {mmap.PAGESIZE:#x}, "
                             f"not {base:#x}")
        if size <= 0:
            raise ValueError(f"size must be positive, not {size!r}")
        self.base, self.size, self.path = int(base), int(size), str(path)
        fd = os.open(self.path, os.O_RDWR | os.O_SYNC)
        try:
            self._map = mmap.mmap(fd, self.size, mmap.MAP_SHARED,
                                  mmap.PROT_READ | mmap.PROT_WRITE, offset=self.base)
        finally:
            os.close(fd)
        # 32-bit accesses: a memoryview cast to 'I' reads and writes whole words, as an
        # AXI4-Lite slave that ignores wstrb needs (a byte copy could split a word).
        self._words = memoryview(self._map).cast("I")

    def _index(self, offset: int) -> int:
        if offset % 4 or not 0 <= offset < self.size:
            raise ValueError(f"offset must be a word offset in [0, {self.size:#x}), "
                             f"not {offset:#x}")
        return offset // 4

    def read(self, offset: int) -> int:
        return int(self._words[self._index(offset)])

    def write(self, offset: int, value: int) -> None:
        self._words[self._index(offset)] = int(value) & _MASK32

    def close(self) -> None:
        self._words.release()
        self._map.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Driver:
    """Load an image into the core behind ``mmio``, run inputs, read outputs and counters.

    Parameters
    ----------
    mmio : object with ``read(offset) -> int`` and ``write(offset, value)``
        32-bit accesses at AXI byte offsets of the wrapper (PYNQ ``MMIO``, :class:`DevMem`,
        ``eie.axi_sim``'s simulated port).
    slot_words : int, optional
        ESE only: words per PE per frame slot of the design (default
        :func:`default_slot_words` of the image, what ``eie build`` uses).
    timeout : float
        Seconds a run may take before :class:`DriverError` (wall clock; polls are counted
        instead when ``poll_limit`` is given).
    poll_limit : int, optional
        Most status polls per run (a simulation backend counts polls, not seconds).

    Raises
    ------
    DriverError
        The ``ID`` register does not read ``AXI_ID`` (no core at this address).
    """

    def __init__(self, mmio, *, slot_words: int | None = None, timeout: float = 10.0,
                 poll_limit: int | None = None):
        self.mmio = mmio
        self.timeout, self.poll_limit = float(timeout), poll_limit
        self._slot_words = slot_words
        self.image = None
        self._host_addr = None      # mirror of HOST_ADDR (None: unknown)
        self._wdata_hi = None       # mirror of WDATA_HI (None: unknown)
        ident = self.mmio.read(AxiReg.ID)
        if ident != AXI_ID:
            raise DriverError(f"ID register reads {ident:#010x}, expected {AXI_ID:#010x} "
                              f"(no EIE/ESE core at this address?)")
        self.config_id = self.mmio.read(AxiReg.CONFIG_ID)
        self.n_pes = self.mmio.read(AxiReg.N_PES)
        self._last = None

    # ---- register and host-word access ------------------------------------------------
    def reg_read(self, number: int) -> int:
        """Core register ``number`` (``Reg``/``ESEReg``) through the register window."""
        return self.mmio.read(REGS_WINDOW + 4 * int(number))

    def reg_write(self, number: int, value: int) -> None:
        self.mmio.write(REGS_WINDOW + 4 * int(number), int(value) & _MASK32)

    def _set_addr(self, addr: int) -> None:
        if self._host_addr != addr:
            self.mmio.write(AxiReg.HOST_ADDR, addr)
        self._host_addr = (addr + 1) & _MASK32

    def host_write(self, addr: int, value: int, *, wide: bool = True) -> None:
        """Write host word ``addr``; ``wide=False`` for memories up to 32 bits wide, whose
        upper half is never used (``WDATA_HI`` is then left as it is)."""
        value = int(value) & _MASK64
        if wide and self._wdata_hi != value >> 32:
            self.mmio.write(AxiReg.WDATA_HI, value >> 32)
            self._wdata_hi = value >> 32
        self._set_addr(addr)
        self.mmio.write(AxiReg.DATA_LO, value & _MASK32)

    def host_read32(self, addr: int) -> int:
        """Bits 31..0 of host word ``addr``, as a signed value (activations and outputs
        are sign-extended and at most 32 bits wide, so ``RDATA_HI`` is not needed)."""
        self._set_addr(addr)
        return _signed32(self.mmio.read(AxiReg.DATA_LO))

    def _write_words(self, addr_of, words, previous=None, *, wide=False) -> None:
        words = np.asarray(words)
        old = np.zeros_like(words) if previous is None else np.asarray(previous)
        for a in np.flatnonzero(words != old):
            self.host_write(addr_of(int(a)), int(words[a]), wide=wide)

    # ---- images ---------------------------------------------------------------------------
    def _check(self, image) -> None:
        if not isinstance(image, PackedImage | LSTMImage):
            raise TypeError(f"image must be a PackedImage or an LSTMImage, not "
                            f"{type(image).__name__}")
        cfg = image.config
        if cfg.config_id != self.config_id:
            kind = "ESE" if isinstance(image, LSTMImage) else "EIE"
            raise ConfigError(f"the design's CONFIG_ID is {self.config_id:#010x}, the {kind} "
                              f"image's config_id {cfg.config_id:#010x}: the image was packed "
                              f"for another configuration (rebuild the bitstream for it, or "
                              f"repack the model with the design's config)")
        if cfg.n_pes != self.n_pes:
            raise ConfigError(f"the design has {self.n_pes} PEs, the image {cfg.n_pes}")

    def load(self, image, *, previous=None, write: bool = True) -> None:
        """Load ``image`` (a PackedImage, an LSTMImage or an image directory).

        Words equal to ``previous`` (the image loaded before; default all zero, as after
        power-up without a baked image) are not written. ``write=False`` only checks and
        attaches the image: the bitstream already holds it (``eie build`` bakes it in).
        The ESE frame registers (``X_WORDS``, ``OUT_BASE``, ``OUT_WORDS``) are always set.

        Raises
        ------
        ConfigError
            The image's ``config_id`` (or PE count) is not the design's.
        """
        image = _as_image(image)
        previous = None if previous is None else _as_image(previous)
        self._check(image)
        if previous is not None and type(previous) is not type(image):
            raise TypeError("previous must be an image of the same engine")
        if isinstance(image, LSTMImage):
            if write:
                self._load_ese(image, previous)
            io = frame_io(image)
            self.reg_write(ESEReg.X_WORDS, io.x_words)
            self.reg_write(ESEReg.OUT_BASE, io.out_base)
            self.reg_write(ESEReg.OUT_WORDS, io.out_words)
            self.channels = self.reg_read(ESEReg.CHANNELS)
            self.frame_slots = self.reg_read(ESEReg.FRAME_SLOTS)
            self.slot_words = self._slot_words or default_slot_words(image)
            if max(io.x_words, io.out_words) > self.slot_words:
                raise ConfigError(f"the image needs {max(io.x_words, io.out_words)} words per "
                                  f"frame slot, slot_words is {self.slot_words}")
        elif write:
            self._load_eie(image, previous)
        self.image = image

    def _matrices(self, mats, previous, region_pe, codebook_addr):
        for p in range(self.n_pes):
            for name, sel in (("spmat", MemSel.SPMAT), ("ptr_even", MemSel.PTR_EVEN),
                              ("ptr_odd", MemSel.PTR_ODD), ("bias", MemSel.BIAS)):
                old = None if previous is None else getattr(previous, name)[p]
                self._write_words(lambda a, p=p, sel=sel: region_pe(a, p, sel),
                                  getattr(mats, name)[p], old, wide=name == "spmat")
        old = None if previous is None else previous.codebook
        self._write_words(codebook_addr, mats.codebook, old)

    def _program(self, words, old_words, bits, high_reg, addr_of):
        for t, word in enumerate(words):
            if t < len(old_words) and old_words[t] == word:
                continue
            if bits > 64:
                if word >> 96:
                    raise ValueError(f"program word {t} has more than 96 bits")
                self.reg_write(high_reg, word >> 64)
            self.host_write(addr_of(t), word & _MASK64)

    def _load_eie(self, image: PackedImage, previous) -> None:
        cfg = image.config
        self._matrices(image, previous,
                       lambda a, p, sel: host_address(Region.PE, a, pe=p, sel=sel),
                       lambda a: host_address(Region.CODEBOOK, a))
        old = [] if previous is None else [d.encode(cfg) for d in previous.program]
        self._program([d.encode(cfg) for d in image.program], old, cfg.descriptor_bits,
                      Reg.WDATA_HIGH, lambda t: host_address(Region.PROGRAM, t))

    def _load_ese(self, image: LSTMImage, previous) -> None:
        cfg = image.config
        self._matrices(image.matrices, None if previous is None else previous.matrices,
                       lambda a, p, sel: ese_address(ESERegion.PE, a, pe=p, sel=sel),
                       lambda a: ese_address(ESERegion.CODEBOOK, a))
        for p in range(self.n_pes):
            old = None if previous is None else previous.peephole[p]
            self._write_words(lambda a, p=p: ese_address(ESERegion.PE, a, pe=p,
                                                         sel=PEEPHOLE_SEL),
                              image.peephole[p], old)
        tables = np.concatenate([image.sigmoid, image.tanh])
        old = None if previous is None else np.concatenate([previous.sigmoid, previous.tanh])
        self._write_words(lambda a: ese_address(ESERegion.TABLES, a), tables, old)
        old = [] if previous is None else [encode_op(op, cfg) for op in frame_program(previous)]
        self._program([encode_op(op, cfg) for op in frame_program(image)], old, op_bits(cfg),
                      ESEReg.WDATA_HIGH, lambda t: ese_address(ESERegion.PROGRAM, t))

    # ---- runs -----------------------------------------------------------------------------
    def _wait(self, done) -> None:
        """Poll until ``done()`` is true (or the timeout / poll limit)."""
        start, polls = time.monotonic(), 0
        while not done():
            polls += 1
            if self.poll_limit is not None:
                if polls > self.poll_limit:
                    raise DriverError(f"the run did not finish in {self.poll_limit} polls")
            elif time.monotonic() - start > self.timeout:
                raise DriverError(f"the run did not finish in {self.timeout} s "
                                  f"(CTRL_STATUS {self.reg_read(Reg.CTRL_STATUS):#x})")

    def _finished(self) -> bool:
        # Polled through the window: the read takes the core's host port after the start
        # strobe, so it cannot see the previous run's done bit.
        return self.reg_read(Reg.CTRL_STATUS) & (_BUSY | _DONE) == _DONE

    def run(self, x_q) -> dict:
        """Run raw quantized inputs; return outputs and measured cycles.

        EIE: ``x_q`` [n_in] or [batch, n_in]; returns ``q`` [batch, n_out] (or [n_out]),
        ``cycles`` per vector and ``cycles_per_layer``. ESE: ``x_q`` [T, n_in] or
        [batch, T, n_in]; sequences run in groups of ``CHANNELS`` (one run per group,
        streaming through the frame rings when T exceeds ``FRAME_SLOTS``); returns ``q``
        [batch, T, n_out], ``cycles`` [batch, T] per frame and ``totals`` per group.

        Raises
        ------
        DriverError
            No image loaded, or a run that does not finish.
        ValueError
            Inputs of the wrong shape.
        """
        if self.image is None:
            raise DriverError("load an image first (Driver.load)")
        if isinstance(self.image, LSTMImage):
            return self._run_ese(np.asarray(x_q, np.int64))
        return self._run_eie(np.asarray(x_q, np.int64))

    def _run_eie(self, q) -> dict:
        image = self.image
        single = q.ndim == 1
        q2 = np.atleast_2d(q)
        if q2.ndim != 2 or q2.shape[1] != image.n_in:
            raise ValueError(f"inputs must have shape [batch, {image.n_in}], not {q.shape}")
        n, in_local = self.n_pes, image.program[0].in_local
        sel = MemSel.ACT1 if image.output_bank else MemSel.ACT0
        outs, totals, per_layer = [], [], []
        for x in q2:
            padded = np.zeros(in_local * n, np.int64)
            padded[:image.n_in] = x
            for p in range(n):      # PE-major: HOST_ADDR auto-increments within a PE
                for row in range(in_local):
                    self.host_write(host_address(Region.PE, row, pe=p, sel=MemSel.ACT0),
                                    int(padded[row * n + p]), wide=False)
            self.reg_write(Reg.CTRL_STATUS, 1)
            self._wait(self._finished)
            out = [0] * image.n_out
            for p in range(n):
                for row in range((image.n_out - p + n - 1) // n):
                    out[row * n + p] = self.host_read32(host_address(Region.PE, row, pe=p,
                                                                     sel=sel))
            outs.append(out)
            counters = self.counters()
            totals.append(counters["total"])
            per_layer.append(counters["layers"])
        result = {"q": np.array(outs, np.int64), "cycles": np.array(totals, np.int64),
                  "cycles_per_layer": np.array(per_layer, np.int64).reshape(
                      len(q2), len(image.layers))}
        if single:
            result = {k: v[0] for k, v in result.items()}
        return result

    def _ese_frames(self, seqs, frames) -> None:
        """Write frames ``frames`` of every sequence into their ring slots (every word, so
        nothing of an earlier frame is left behind)."""
        n, x_words = self.n_pes, self.image.memory.x_words
        for c, seq in enumerate(seqs):
            self.reg_write(ESEReg.CHANNEL_SEL, c)
            for t in frames:
                padded = np.zeros(x_words * n, np.int64)
                padded[:seq.shape[1]] = seq[t]
                base = (t % self.frame_slots) * self.slot_words
                for p in range(n):
                    for w in range(x_words):
                        self.host_write(ese_address(ESERegion.CHANNEL, base + w, pe=p,
                                                    sel=ChanSel.IN_RING),
                                        int(padded[w * n + p]), wide=False)

    def _ese_outputs(self, channels: int, t: int) -> np.ndarray:
        n, n_out = self.n_pes, self.image.n_out
        base = (t % self.frame_slots) * self.slot_words
        out = np.zeros((channels, n_out), np.int64)
        for c in range(channels):
            self.reg_write(ESEReg.CHANNEL_SEL, c)
            for p in range(n):
                for w in range((n_out - p + n - 1) // n):
                    out[c, w * n + p] = self.host_read32(
                        ese_address(ESERegion.CHANNEL, base + w, pe=p, sel=ChanSel.OUT_RING))
        return out

    def _run_ese(self, q) -> dict:
        image = self.image
        single = q.ndim == 2
        q3 = q[None] if single else q
        if q3.ndim != 3 or q3.shape[2] != image.n_in:
            raise ValueError(f"inputs must have shape [batch, T, {image.n_in}], not {q.shape}")
        batch, steps, _ = q3.shape
        slots, chans = self.frame_slots, self.channels
        outputs = np.zeros((batch, steps, image.n_out), np.int64)
        cycles = np.zeros((batch, steps), np.int64)
        totals = []
        for g0 in range(0, batch, chans):
            group = q3[g0:g0 + chans]
            ready = min(steps, slots)
            self._ese_frames(group, range(ready))
            self.reg_write(ESEReg.ACTIVE_CHANNELS, len(group))
            self.reg_write(ESEReg.FRAMES, steps)
            self.reg_write(ESEReg.FRAMES_READY, ready)
            self.reg_write(ESEReg.CTRL_STATUS, 1)
            for t in range(steps):
                # Frame t is complete once FRAME_COUNT passes it; its slot is then free for
                # frame t + slots (double buffering: the engine waits for it, uncounted).
                self._wait(lambda t=t: self.reg_read(ESEReg.FRAME_COUNT) > t)
                outputs[g0:g0 + len(group), t] = self._ese_outputs(len(group), t)
                cycles[g0:g0 + len(group), t] = self.reg_read(ESEReg.FRAME_CYCLES + t % slots)
                if t + slots < steps:
                    self._ese_frames(group, [t + slots])
                    self.reg_write(ESEReg.FRAMES_READY, t + slots + 1)
            self._wait(self._finished)
            totals.append(self.reg_read(ESEReg.TOTAL_CYCLES))
        result = {"q": outputs, "cycles": cycles, "totals": np.array(totals, np.int64)}
        if single:
            result["q"], result["cycles"] = outputs[0], cycles[0]
        return result

    def counters(self) -> dict:
        """Cycle counters of the last run: EIE ``total`` and ``layers`` (per layer of the
        loaded image); ESE ``total``, ``frames`` (completed) and ``frame_cycles`` per slot."""
        if isinstance(self.image, LSTMImage):
            return {"total": self.reg_read(ESEReg.TOTAL_CYCLES),
                    "frames": self.reg_read(ESEReg.FRAME_COUNT),
                    "frame_cycles": [self.reg_read(ESEReg.FRAME_CYCLES + s)
                                     for s in range(self.frame_slots)]}
        layers = 0 if self.image is None else len(self.image.layers)
        return {"total": self.reg_read(Reg.TOTAL_CYCLES),
                "layers": [self.reg_read(Reg.LAYER_CYCLES + k) for k in range(layers)]}

    def reset_state(self) -> None:
        """Forget what the driver assumed about the device (after the core's reset or
        another program's accesses) and zero the input memories: EIE's activation buffer
        0, ESE's input rings of every channel. Weights and the program are kept (reset
        does not clear memories); ESE clears its activations and cell state itself at the
        start of every run."""
        self._host_addr = self._wdata_hi = None
        if self.reg_read(Reg.CTRL_STATUS) & _BUSY:
            raise DriverError("the core is running; wait for it (or reset it) first")
        if self.image is None:
            return
        n = self.n_pes
        if isinstance(self.image, LSTMImage):
            for c in range(self.channels):
                self.reg_write(ESEReg.CHANNEL_SEL, c)
                for p in range(n):
                    for a in range(self.frame_slots * self.slot_words):
                        self.host_write(ese_address(ESERegion.CHANNEL, a, pe=p,
                                                    sel=ChanSel.IN_RING), 0, wide=False)
        else:
            depth = self.image.config.act_depth
            for p in range(n):
                for a in range(depth):
                    self.host_write(host_address(Region.PE, a, pe=p, sel=MemSel.ACT0), 0,
                                    wide=False)


def _as_image(image):
    if isinstance(image, PackedImage | LSTMImage):
        return image
    from contract.image_read import image_kind, read_image
    from contract.lstm_image import read_lstm_image

    return read_lstm_image(image) if image_kind(image) == "lstm" else read_image(image)

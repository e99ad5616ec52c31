"""Hand-off of a simulation job and its result between the test process and the simulator.

cocotb runs the testbench inside the Verilator process, so inputs and results cross a
process boundary through files. They use data formats only (no pickle): JSON for the
structure, one ``.npz`` (loaded with ``allow_pickle=False``) for arrays, and packed images
as image directories (docs/image-format.md), re-read and checked with ``read_image``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from contract.config import EIEConfig
from contract.image import PackedImage
from contract.image_read import read_image
from contract.image_write import write_image

__all__ = ["save", "load"]


def save(directory, obj: dict) -> Path:
    """Write ``obj`` (dicts, lists, scalars, strings, None, numpy arrays, EIEConfig,
    PackedImage) into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    images: list[PackedImage] = []

    def encode(value):
        if isinstance(value, dict):
            return {str(k): encode(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [encode(v) for v in value]
        if isinstance(value, np.ndarray):
            key = f"a{len(arrays)}"
            arrays[key] = value
            return {"__array__": key}
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, EIEConfig):
            return {"__config__": value.to_dict()}
        if isinstance(value, PackedImage):
            images.append(value)
            return {"__image__": f"image{len(images) - 1}"}
        if isinstance(value, Path):
            return str(value)
        if value is None or isinstance(value, bool | int | float | str):
            return value
        raise TypeError(f"cannot hand {type(value).__name__} to the simulator")

    structure = encode(obj)
    for k, image in enumerate(images):
        write_image(image, directory / f"image{k}", formats=("bin",))
    np.savez(directory / "arrays.npz", **arrays)
    (directory / "job.json").write_text(json.dumps(structure))
    return directory


def load(directory) -> dict:
    """Read what :func:`save` wrote."""
    directory = Path(directory)
    structure = json.loads((directory / "job.json").read_text())
    with np.load(directory / "arrays.npz", allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}

    def decode(value):
        if isinstance(value, list):
            return [decode(v) for v in value]
        if isinstance(value, dict):
            if set(value) == {"__array__"}:
                return arrays[value["__array__"]]
            if set(value) == {"__config__"}:
                return EIEConfig.from_dict(value["__config__"])
            if set(value) == {"__image__"}:
                return read_image(directory / value["__image__"])
            return {k: decode(v) for k, v in value.items()}
        return value

    return decode(structure)

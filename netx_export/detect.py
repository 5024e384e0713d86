"""Which kind of ``.net`` file this is: this toolchain's format or a stock lava-dl netx file.

This toolchain's files carry ``format`` / ``formatVersion`` / ``meta`` (:mod:`netx_export.schema`); a stock
netx file (as slayer writes it, as lava-dl's tests ship it) has only ``layer`` (and ``simulation``). A file
with any of our keys is read (and checked) as ours, so a damaged file of ours is never taken for a stock one.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import h5py

from netx_export.fields import one_line
from netx_export.reader import read_network
from netx_export.stock import read_netx
from toolchain.errors import NetFileError
from toolchain.ir import QuantizedNetwork, StockNetwork

NetFormat = Literal["spiking-unet", "stock"]
OURS = ("format", "formatVersion", "meta")


def netx_format(path: str | os.PathLike[str]) -> NetFormat:
    """``spiking-unet`` or ``stock`` (NetFileError for a missing or unreadable file)."""
    path = Path(path)
    if not path.is_file():
        raise NetFileError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    try:
        with h5py.File(path, "r") as f:
            keys = set(f.keys())
    except (OSError, ValueError, KeyError) as exc:
        raise NetFileError(one_line(f"{path}: not a readable HDF5 file ({exc})")) from exc
    if keys & set(OURS) or "layer" not in keys:
        return "spiking-unet"
    return "stock"


def read_any(path: str | os.PathLike[str]) -> QuantizedNetwork | StockNetwork:
    """This toolchain's file as a QuantizedNetwork, a stock netx file as a StockNetwork (physical time)."""
    return read_network(path) if netx_format(path) == "spiking-unet" else read_netx(path)

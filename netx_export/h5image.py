"""HDF5 files built in memory and written with Python I/O.

HDF5 writing straight to disk crashes the interpreter (SIGSEGV) or raises from a destructor when the
disk fills up or a file size limit is hit, and leaves its temporary file behind. The writers therefore
build the complete file image in memory (h5py's file-object driver on a ``BytesIO``: HDF5 does no I/O
of its own), check it by reading it back from memory, and only then write the bytes with ordinary
Python I/O through :func:`toolchain.files.atomic_path`, where a full disk is an ``OSError`` like any
other. The bytes are those HDF5 writes to disk (same layout, byte-stable).
"""
from __future__ import annotations

import io
import os
from collections.abc import Callable

import h5py
import numpy as np

from toolchain.errors import ExportError, NetFileError
from toolchain.files import write_bytes


def create_group(parent: h5py.Group, name: str) -> h5py.Group:
    """A group with creation-order tracking and no timestamps (h5py's create_group cannot drop them)."""
    gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
    gcpl.set_obj_track_times(False)
    gcpl.set_link_creation_order(h5py.h5p.CRT_ORDER_TRACKED | h5py.h5p.CRT_ORDER_INDEXED)
    return h5py.Group(h5py.h5g.create(parent.id, name.encode("utf-8"), gcpl=gcpl))


def put(group: h5py.Group, key: str, array: np.ndarray) -> None:
    """A dataset of exactly ``array``'s dtype, without timestamps."""
    group.create_dataset(key, data=array, dtype=array.dtype, track_times=False)


def build_image(fill: Callable[[h5py.File], None]) -> bytes:
    """The bytes of the HDF5 file ``fill`` writes into the (root-group creation-ordered, untimestamped)
    file it is given."""
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_obj_track_times(False)
    fcpl.set_link_creation_order(h5py.h5p.CRT_ORDER_TRACKED | h5py.h5p.CRT_ORDER_INDEXED)
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    buffer = io.BytesIO()
    fapl.set_fileobj_driver(h5py.h5fd.fileobj_driver, buffer)
    with h5py.File(h5py.h5f.create(b"in-memory", h5py.h5f.ACC_TRUNC, fcpl=fcpl, fapl=fapl)) as f:
        fill(f)
    return buffer.getvalue()


def open_image(image: bytes) -> h5py.File:
    """A file image opened read-only from memory."""
    return h5py.File(io.BytesIO(image), "r")


def commit(target: str | os.PathLike[str], image: bytes) -> None:
    """Write the image to ``target`` atomically (a full disk is an OSError; nothing half-written remains)."""
    write_bytes(target, image)


def write_checked(target: str | os.PathLike[str], fill: Callable[[h5py.File], None],
                  check: Callable[[h5py.File], object], refusal: str) -> None:
    """Build the file in memory, read it back with ``check`` (a reader) and only then write it to
    ``target``: a file the reader would refuse is never written; its error becomes an ExportError
    ``cannot write <target>: <refusal><reader's message>``."""
    image = build_image(fill)
    try:
        with open_image(image) as f:
            check(f)
    except NetFileError as exc:
        raise ExportError(f"cannot write {target}: {refusal}{exc}") from exc
    commit(target, image)

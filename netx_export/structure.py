"""What an HDF5 ``.net`` file may hold, checked before any value is read; and its content checksum.

HDF5 can make a file read other files: an *external link* opens another HDF5 file (or blocks for ever
on a FIFO), a dataset with *external storage* keeps its bytes in any file (``/etc/passwd``,
``/dev/zero``), a *virtual dataset* maps other files' datasets. A dataset can also declare far more
data than the file holds (a chunked, compressed or never-written dataset reads as gigabytes).
:func:`inspect_file` walks every link of the file without resolving any (``visititems_links``) and
refuses, naming the HDF5 path, anything a ``.net`` file does not need: links other than hard links,
objects other than groups and datasets (e.g. named datatypes), external or virtual storage, filters
other than HDF5's built-in ones (an unknown filter makes HDF5 look for a plugin library), data types
other than the rules' (:class:`Rules`), and datasets larger than the limits. Only then is a value read.
:data:`OURS` is this toolchain's format (little-endian int8..int64, float64 and fixed-length strings;
deflate and shuffle only; every declared byte stored in the file, or compressed at most
:data:`MAX_RATIO`:1, which deflate cannot exceed: an unwritten or fill-only dataset is refused);
:data:`STOCK` is lava-dl's netx files (any integer or float, variable-length strings, bool, any built-in
filter, within the size limits).

:func:`content_digest` is a SHA-256 over (path, dtype, shape, bytes) of every dataset but the checksum
itself, in path order; the writers store it as the root dataset :data:`CHECKSUM_KEY` and the readers
compare it, so a damaged file is refused instead of being read as another network.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import h5py
import numpy as np

from toolchain.checks import short_repr
from toolchain.errors import NetFileError

CHECKSUM_KEY = "contentSha256"
MAX_LINKS = 200_000                 # a U-Net of 100 layers has about 3,000
MAX_DEPTH = 4                       # layer/<i>/neuron/<key>
MAX_TOTAL_BYTES = 1 << 30           # every dataset of a file together (a paper-size U-Net's file: ~40 MB)
MAX_ELEMENTS = 1 << 26              # one dataset (the largest conv weight of a paper-size U-Net: ~10**7)
MAX_STRING_BYTES = 1 << 24
MAX_RATIO = 1100                    # declared / stored bytes of a deflated dataset (deflate's bound: ~1032)
DEFLATE, SHUFFLE = 1, 2             # HDF5's filter ids; 3..6 (fletcher32, szip, nbit, scaleoffset) built in too
BUILT_IN_FILTERS = (1, 2, 3, 4, 5, 6)
_STRING, _INTEGER, _FLOAT, _ENUM = h5py.h5t.STRING, h5py.h5t.INTEGER, h5py.h5t.FLOAT, h5py.h5t.ENUM
_LAYOUT_NAMES = {h5py.h5d.COMPACT: "compact", h5py.h5d.CONTIGUOUS: "contiguous", h5py.h5d.CHUNKED: "chunked",
                 h5py.h5d.VIRTUAL: "virtual"}


@dataclass(frozen=True)
class Rules:
    """What one kind of ``.net`` file may hold (see the module docstring)."""

    name: str
    numbers: tuple[str, ...] | None          # allowed numpy dtype strings of numbers (None: any int / float)
    variable_strings: bool                   # variable-length strings (h5py's str datasets)
    booleans: bool                           # h5py's bool (an HDF5 enum of int8)
    filters: tuple[int, ...]                 # HDF5 filter ids a (chunked) dataset may use
    all_stored: bool                         # every declared byte is in the file (deflated: MAX_RATIO:1)
    elements: Mapping[str, int] = field(default_factory=dict)   # per key (the path's last part)
    default_elements: int = MAX_ELEMENTS


# Per key of this toolchain's format (netx_export.schema): scalars hold one value, pairs two.
_PARTS = 4096
OURS = Rules("spiking-unet-netx", ("|i1", "<i2", "<i4", "<i8", "<f8"), variable_strings=False, booleans=False,
             filters=(DEFLATE, SHUFFLE), all_stored=True, elements={
                 "shape": 3, "inputs": _PARTS, "layers": _PARTS, "delays": _PARTS, "offsets": _PARTS,
                 "weightExp": _PARTS, "thresholds": 64, "spikeWeights": 64, "bias": 1 << 20, "biasExp": 1 << 20,
                 "kernelSize": 2, "stride": 2, "padding": 2, "dilation": 2, "outputPadding": 2, "weight": MAX_ELEMENTS},
             default_elements=1)
STOCK = Rules("stock netx", None, variable_strings=True, booleans=True, filters=BUILT_IN_FILTERS, all_stored=False)


def _fail(path: str, message: str) -> NetFileError:
    return NetFileError(f"'{path}': {message}")


def _check_type(path: str, ds: h5py.Dataset, rules: Rules) -> int:
    """The dataset's data type against the rules; returns the bytes of one element (vlen: 0)."""
    tid = ds.id.get_type()
    kind = tid.get_class()
    if kind == _STRING:
        if tid.is_variable_str():
            if not rules.variable_strings:
                raise _fail(path, "a variable-length string (this format stores fixed-length strings)")
            return 0
        if ds.dtype.itemsize > MAX_STRING_BYTES:
            raise _fail(path, f"a string of {ds.dtype.itemsize} bytes (at most {MAX_STRING_BYTES})")
        return int(ds.dtype.itemsize)
    if kind == _ENUM and rules.booleans and ds.dtype == np.dtype(bool):
        return 1
    if kind not in (_INTEGER, _FLOAT):
        names = {h5py.h5t.ENUM: "an enum", h5py.h5t.COMPOUND: "a compound", h5py.h5t.REFERENCE: "a reference",
                 h5py.h5t.OPAQUE: "an opaque", h5py.h5t.VLEN: "a variable-length", h5py.h5t.ARRAY: "an array",
                 h5py.h5t.BITFIELD: "a bitfield", h5py.h5t.TIME: "a time"}
        raise _fail(path, f"{names.get(kind, f'an HDF5 class {kind}')} data type, not part of the format")
    if rules.numbers is not None and ds.dtype.str not in rules.numbers:
        raise _fail(path, f"data type {ds.dtype} (this format stores {' and '.join(rules.numbers)} numbers)")
    return int(ds.dtype.itemsize)


def _check_dataset(path: str, ds: h5py.Dataset, rules: Rules) -> int:
    """Refuse a dataset that is not plain data of this file within the limits; returns its declared bytes."""
    dcpl = ds.id.get_create_plist()
    layout = dcpl.get_layout()
    if layout == h5py.h5d.VIRTUAL:
        source = dcpl.get_virtual_filename(0) if dcpl.get_virtual_count() else "?"
        raise _fail(path, f"a virtual dataset (its data would come from {short_repr(source)}; not followed)")
    if dcpl.get_external_count():
        raise _fail(path, f"external storage (its bytes would be read from {short_repr(dcpl.get_external(0)[0])}; "
                          f"not read)")
    if layout not in _LAYOUT_NAMES:
        raise _fail(path, f"an unknown dataset layout ({layout})")
    for index in range(dcpl.get_nfilters()):
        code = int(dcpl.get_filter(index)[0])
        if code not in rules.filters:
            raise _fail(path, f"HDF5 filter {code} (this format uses only {', '.join(map(str, rules.filters))}: "
                              f"{'deflate and shuffle' if rules.filters == (DEFLATE, SHUFFLE) else 'built-in ones'})")
    itemsize = _check_type(path, ds, rules)
    shape = ds.shape
    if shape is None:
        raise _fail(path, "a dataset without a shape (HDF5 null dataspace)")
    if len(shape) > 5:
        raise _fail(path, f"{len(shape)} dimensions")
    count = int(np.prod(shape, dtype=object)) if shape else 1
    limit = rules.elements.get(path.rsplit("/", 1)[-1], rules.default_elements)
    if count > limit:
        raise _fail(path, f"declares {count} elements (shape {shape}), at most {limit} for this key")
    if itemsize == 0 and count > 1 << 16:
        raise _fail(path, f"declares {count} variable-length strings")
    declared = count * itemsize
    if rules.all_stored and declared:
        stored = ds.id.get_storage_size()
        if (stored != declared) if layout == h5py.h5d.CONTIGUOUS else (stored * MAX_RATIO < declared):
            raise _fail(path, f"declares {declared} bytes but the file stores {stored} for it (unwritten, or "
                              f"compressed beyond what deflate can)")
    return declared


def inspect_file(f: h5py.File, rules: Rules = OURS) -> list[str]:
    """Check the structure of an open file (nothing resolved, no value read); returns its dataset paths.

    Raises :class:`NetFileError` naming the HDF5 path of the first thing the rules refuse."""
    if f.userblock_size:
        raise NetFileError(f"has a {f.userblock_size}-byte user block (not part of the format)")
    links: list[tuple[str, Any]] = []

    def visit(name: str, link: Any) -> None:
        links.append((name, link))
        if len(links) > MAX_LINKS:
            raise NetFileError(f"holds more than {MAX_LINKS} HDF5 links")
    f.visititems_links(visit)     # hard links to groups are descended; other links are reported, never followed
    datasets: list[str] = []
    total = 0
    for name, link in links:
        if isinstance(link, h5py.ExternalLink):
            raise _fail(name, f"an external link to {short_repr(link.filename)}:{short_repr(link.path)} "
                              f"(another file: not followed)")
        if isinstance(link, h5py.SoftLink):
            raise _fail(name, f"a soft link to {short_repr(link.path)} (not followed)")
        if not isinstance(link, h5py.HardLink):
            raise _fail(name, "a user-defined link (not followed)")
        if name.count("/") >= MAX_DEPTH:
            raise _fail(name, "nested deeper than the format's layer/<i>/neuron/<key>")
        parent, _, base = name.rpartition("/")
        kind = h5py.h5o.get_info(f[parent].id if parent else f.id, base.encode()).type   # a hard link: safe
        if kind == h5py.h5o.TYPE_DATASET:
            total += _check_dataset(name, f[name], rules)
            datasets.append(name)
            if total > MAX_TOTAL_BYTES:
                raise _fail(name, f"the file's datasets declare more than {MAX_TOTAL_BYTES >> 20} MiB")
        elif kind == h5py.h5o.TYPE_NAMED_DATATYPE:
            raise _fail(name, "a named (committed) datatype, not part of the format")
        elif kind != h5py.h5o.TYPE_GROUP:
            raise _fail(name, f"an HDF5 object of type {kind}, not part of the format")
    return datasets


def content_digest(f: h5py.File, datasets: list[str]) -> str:
    """SHA-256 (hex) over every dataset but the checksum, in path order (after :func:`inspect_file`)."""
    digest = hashlib.sha256()
    for name in sorted(datasets):
        if name == CHECKSUM_KEY:
            continue
        ds = f[name]
        value = np.ascontiguousarray(ds[()])
        if value.dtype.kind == "O":             # variable-length strings (stock files)
            value = np.array([v if isinstance(v, bytes) else str(v).encode() for v in value.reshape(-1)], dtype=bytes)
        digest.update(f"{name}\0{ds.dtype.str}\0{ds.shape}\0{value.nbytes}\0".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def stored_digest(f: h5py.File) -> str | None:
    """The checksum the file records (None if it has none); NetFileError if it is not a 64-digit hex string."""
    if CHECKSUM_KEY not in f:
        return None
    ds = f[CHECKSUM_KEY]
    if not isinstance(ds, h5py.Dataset) or ds.dtype.kind != "S" or ds.shape != (1,) or ds.dtype.itemsize != 64:
        raise _fail(CHECKSUM_KEY, "must be one 64-character hex string")
    return bytes(ds[0]).decode("ascii", "replace")


def verify_digest(f: h5py.File, datasets: list[str], required: bool) -> None:
    """Compare the recorded checksum with the content (``required``: a file without one is refused)."""
    stored = stored_digest(f)
    if stored is None:
        if required:
            raise _fail(CHECKSUM_KEY, "missing: the file has no content checksum (damaged, or not written by "
                                      "this toolchain)")
        return
    actual = content_digest(f, datasets)
    if stored != actual:
        raise _fail(CHECKSUM_KEY, f"the content does not match the file's checksum (a damaged file): stored "
                                  f"{short_repr(stored[:16])}..., content {actual[:16]}...")


def add_digest(f: h5py.File) -> str:
    """Store the checksum of everything written so far as the root dataset :data:`CHECKSUM_KEY`."""
    digest = content_digest(f, inspect_file(f, STOCK))
    f.create_dataset(CHECKSUM_KEY, data=np.array([digest.encode("ascii")]), track_times=False)
    return digest

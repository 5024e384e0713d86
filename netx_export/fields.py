"""Typed, validated access to the datasets of one HDF5 group of a ``.net`` file (used by the reader).

Every accessor checks the dataset's kind (integer / float / byte string), shape and range before
returning a plain Python or int64 numpy value, and fails with a one-line
:class:`~toolchain.errors.NetFileError` naming the place (``where``) and the key.
"""
from __future__ import annotations

import builtins
import json
import math
from typing import Any, NoReturn

import h5py
import numpy as np

from netx_export import schema
from toolchain.errors import NetFileError


def one_line(text: str) -> str:
    """Collapse whitespace (newlines included) so that every error message is one line."""
    return " ".join(str(text).split())


class FieldGroup:
    """Typed, validated access to the datasets of one HDF5 group; failures name ``where`` and the key."""

    def __init__(self, group: Any, where: str) -> None:
        if not isinstance(group, h5py.Group):
            raise NetFileError(f"{where}: is not a readable HDF5 group")
        self.group, self.where = group, where
        self.members = dict(group.items())          # one pass over the links; values read lazily
        self._values: dict[str, Any] = {}

    def fail(self, key: str, message: str) -> NoReturn:
        raise NetFileError(one_line(f"{self.where}: '{key}': {message}"))

    def has(self, key: str) -> bool:
        return key in self.members

    def sub(self, key: str, where: str) -> FieldGroup:
        if key not in self.members:
            self.fail(key, "missing")
        return FieldGroup(self.members[key], where)

    def dataset(self, key: str) -> h5py.Dataset:
        if key not in self.members:
            self.fail(key, "missing")
        ds = self.members[key]
        if ds is None:
            self.fail(key, "cannot be opened (damaged object)")
        if not isinstance(ds, h5py.Dataset):
            self.fail(key, "is not a dataset")
        if ds.size is None or ds.size > schema.MAX_ELEMENTS:
            self.fail(key, f"implausible size {ds.shape}")
        return ds

    def value(self, key: str) -> Any:
        """The dataset's contents, read once."""
        if key not in self._values:
            self._values[key] = self.members[key][()]
        return self._values[key]

    def string(self, key: str) -> str:
        ds = self.dataset(key)
        if ds.dtype.kind != "S":
            self.fail(key, f"must be a byte string, got dtype {ds.dtype}")
        if ds.shape not in ((), (1,)) or ds.dtype.itemsize > schema.MAX_STRING_BYTES:
            self.fail(key, f"must be one string, got shape {ds.shape}")
        raw = self.value(key)
        value = raw if ds.shape == () else raw[0]
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            self.fail(key, "is not valid UTF-8")

    def json(self, key: str) -> dict[str, Any]:
        try:
            value = json.loads(self.string(key))
        except (ValueError, RecursionError) as exc:
            self.fail(key, f"is not valid JSON ({exc})")
        if not isinstance(value, dict):
            self.fail(key, f"must be a JSON object, got {type(value).__name__}")
        return value

    def ints(self, key: str, shape: tuple[int, ...] | None = None, ndim: int | None = None,
             lo: int | None = None, hi: int | None = None, what: str = "value") -> np.ndarray:
        """An integer array (int64) of the given shape / rank with every entry in lo..hi."""
        ds = self.dataset(key)
        if ds.dtype.kind not in "iu":
            self.fail(key, f"must hold integers, got dtype {ds.dtype}")
        if shape is not None and ds.shape != shape:
            self.fail(key, f"has shape {ds.shape}, expected {shape}")
        if ndim is not None and ds.ndim != ndim:
            self.fail(key, f"must have {ndim} dimension(s), got shape {ds.shape}")
        array = np.asarray(self.value(key))
        if array.size and array.dtype.kind == "u" and int(array.max()) > np.iinfo(np.int64).max:
            self.fail(key, f"{what} {int(array.max())} does not fit int64")
        array = array.astype(np.int64)
        low, high = (int(array.min()), int(array.max())) if array.size else (None, None)
        bounds = f"{lo}..{hi}" if lo is not None and hi is not None else (f">= {lo}" if hi is None else f"<= {hi}")
        if low is not None and lo is not None and low < lo:
            self.fail(key, f"{what} {low} is outside the range {bounds}")
        if high is not None and hi is not None and high > hi:
            self.fail(key, f"{what} {high} is outside the range {bounds}")
        return array

    def int(self, key: str, lo: int | None = None, hi: int | None = None) -> int:
        ds = self.dataset(key)
        if ds.shape not in ((), (1,)):
            self.fail(key, f"must be a scalar, got shape {ds.shape}")
        return int(self.ints(key, lo=lo, hi=hi).reshape(-1)[0])

    def expect(self, key: str, expected: builtins.int, why: str) -> builtins.int:
        value = self.int(key)
        if value != expected:
            self.fail(key, f"is {value}, expected {expected} ({why})")
        return value

    def pair(self, key: str, lo: builtins.int) -> builtins.int:
        """A square kernel parameter: a scalar or an (a, a) pair."""
        ds = self.dataset(key)
        if ds.shape not in ((), (1,), (2,)):
            self.fail(key, f"must be a scalar or a pair, got shape {ds.shape}")
        values = self.ints(key, lo=lo).reshape(-1)
        if len(set(values.tolist())) != 1:
            self.fail(key, f"must be square (equal entries), got {values.tolist()}")
        return int(values[0])

    def float(self, key: str) -> float:
        ds = self.dataset(key)
        if ds.dtype.kind != "f" or ds.shape not in ((), (1,)):
            self.fail(key, f"must be a float scalar, got dtype {ds.dtype} shape {ds.shape}")
        value = float(np.asarray(self.value(key)).reshape(-1)[0])
        if not math.isfinite(value):
            self.fail(key, f"must be finite, got {value}")
        return value

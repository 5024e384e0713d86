"""A checkpoint file read safely: its zip container first, then the layout of every tensor, before any value.

``torch.load(weights_only=True)`` runs no code, but it trusts the file in three ways this module does not:

* **the container**: a deflated member decompresses to ~1000x its size, and damaged bytes load silently
  (torch does not check the zip CRC). :func:`check_container` accepts only what ``torch.save`` writes:
  stored (uncompressed), unencrypted members of unique names, file attributes 0, sizes inside the file,
  and every member's CRC-32 correct (the file's content checksum);
* **tensor views**: a tensor is (storage, offset, size, stride); a stride-0 view of a 4-byte storage
  declares 2**34 elements, and the first operation on its values (a NaN check) allocates them.
  :func:`check_tensors` refuses any tensor that is not a dense, non-overlapping view inside its storage,
  wherever it is in the payload, before any value is touched;
* **plain data**: metadata may nest 100,000 lists deep (saving it again overflows the stack) or be huge.
  :func:`check_plain` bounds the depth and size of every container and refuses types other than
  str, int, float, bool, None, lists, tuples, dicts (and tensors where the layout allows them).

Every failure is a one-line :class:`~toolchain.errors.CheckpointError` naming the file and the member,
key or tensor at fault.
"""
from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from toolchain.errors import CheckpointError

MAX_MEMBERS = 1 << 16
MAX_DEPTH = 32                   # containers inside containers (a training state is 5 deep)
MAX_ITEMS = 1 << 22              # values in all containers of the payload together
MAX_STRING = 1 << 20             # characters of one string
ZIP_DIRECTORY = 0x10             # the MS-DOS directory attribute: miniz (torch) reads such a member as a folder


def check_container(path: Path) -> None:
    """The zip container as ``torch.save`` writes it, every member's CRC-32 correct (module docstring)."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            if not infos or len(infos) > MAX_MEMBERS:
                raise CheckpointError(f"{path}: a zip of {len(infos)} members is not a torch checkpoint")
            names = [info.filename for info in infos]
            if len(set(names)) != len(names):
                raise CheckpointError(f"{path}: duplicate zip member names (not written by torch.save)")
            total = 0
            for info in infos:
                member = f"{path}: zip member {info.filename!r}"
                if info.flag_bits & 0x1:
                    raise CheckpointError(f"{member} is encrypted")
                if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
                    raise CheckpointError(f"{member} is compressed (method {info.compress_type}); torch.save "
                                          f"never compresses, and a compressed member can expand without bound")
                if info.external_attr & ZIP_DIRECTORY or info.filename.endswith("/"):
                    raise CheckpointError(f"{member} is marked as a folder")
                total += info.file_size
            if total > path.stat().st_size:
                raise CheckpointError(f"{path}: its zip members claim {total} bytes, more than the file's "
                                      f"{path.stat().st_size}")
            damaged = archive.testzip()         # reads every member in blocks and compares its CRC-32
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError,
            RuntimeError, OverflowError) as exc:
        if not zipfile.is_zipfile(path):
            raise CheckpointError(f"{path}: not a torch checkpoint (not a zip archive; legacy pickle files are "
                                  f"not read)") from exc
        raise CheckpointError(f"{path}: damaged zip container ({type(exc).__name__}: "
                              f"{' '.join(str(exc).split())[:80]})") from exc
    if damaged is not None:
        raise CheckpointError(f"{path}: zip member {damaged!r} is damaged (its CRC-32 checksum does not match)")


def layout_problem(tensor: torch.Tensor) -> str | None:
    """None if ``tensor`` is a dense, non-overlapping view inside its storage; else what is wrong."""
    if tensor.layout != torch.strided:
        return f"has layout {tensor.layout} (only dense tensors are read)"
    if tensor.is_quantized or tensor.is_complex() or tensor.dtype == torch.bool:
        return f"has dtype {tensor.dtype} (only real numbers are read)"
    size, stride = list(tensor.shape), list(tensor.stride())
    if any(s < 0 for s in stride):
        return f"has a negative stride {tuple(stride)}"
    expected = 1
    for step, extent in sorted((st, sz) for st, sz in zip(stride, size) if sz != 1):
        if step != expected:          # dense and non-overlapping: the strides are a permutation of contiguous ones
            return (f"is a view with strides {tuple(stride)} for size {tuple(size)}: overlapping or gapped "
                    f"(it would claim more elements than its storage holds)")
        expected *= extent
    need = (tensor.storage_offset() + tensor.numel()) * tensor.element_size()
    if tensor.numel() and need > tensor.untyped_storage().nbytes():
        return f"needs {need} bytes of a storage of {tensor.untyped_storage().nbytes()}"
    return None


def _walk(value: Any, where: str) -> Iterator[tuple[str, Any]]:
    """Every (key path, value) of nested containers, depth-first, iteratively (no recursion), bounded."""
    stack: list[tuple[str, Any, int]] = [(where, value, 0)]
    seen = 0
    while stack:
        key, item, depth = stack.pop()
        seen += 1
        if seen > MAX_ITEMS:
            raise CheckpointError(f"more than {MAX_ITEMS} values in {where}")
        yield key, item
        if isinstance(item, (dict, list, tuple)):
            if depth >= MAX_DEPTH:
                raise CheckpointError(f"{key}: containers nested more than {MAX_DEPTH} deep")
            entries = item.items() if isinstance(item, dict) else enumerate(item)
            for k, v in entries:
                stack.append((f"{key}.{k}" if isinstance(k, (str, int)) else f"{key}[?]", v, depth + 1))


def check_tensors(path: Path, payload: Any) -> None:
    """Every tensor anywhere in the payload a dense, non-overlapping view inside its storage."""
    try:
        for key, value in _walk(payload, "checkpoint"):
            if isinstance(value, torch.Tensor):
                problem = layout_problem(value)
                if problem is not None:
                    raise CheckpointError(f"tensor {key.removeprefix('checkpoint.')} {problem}")
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc


def check_plain(path: Path, value: Any, where: str, tensors: bool = False) -> None:
    """``value`` is plain data: str, int, float, bool, None, lists, tuples, dicts with str / int keys
    (and tensors if ``tensors``), nested at most MAX_DEPTH deep."""
    try:
        for key, item in _walk(value, where):
            if isinstance(item, dict):
                bad = next((k for k in item if not isinstance(k, (str, int))), None)
                if bad is not None:
                    raise CheckpointError(f"{key}: key of type {type(bad).__name__}")
            elif isinstance(item, str):
                if len(item) > MAX_STRING:
                    raise CheckpointError(f"{key}: a string of {len(item)} characters")
            elif not (item is None or isinstance(item, (bool, int, float, list, tuple))
                      or (tensors and isinstance(item, torch.Tensor))):
                raise CheckpointError(f"{key}: a value of type {type(item).__name__} is not plain data")
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc


def load_payload(path: str | os.PathLike[str]) -> Any:
    """The container checked, then ``torch.load(weights_only=True)``, then every tensor's layout."""
    import pickle
    import re
    import warnings
    path = Path(path)
    check_container(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")       # e.g. "storage is not writable": noise for a user
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"unsupported GLOBAL [\w.]+|Unsupported global: [\w. ]+|Unsupported operand \d+", str(exc))
        reason = found.group(0).strip() if found else "not a plain dictionary of tensors"
        raise CheckpointError(f"{path}: refused to load: it is not a plain weights file and would run code "
                              f"or build objects ({reason[:120]})") from exc
    except Exception as exc:   # torch.load on foreign or damaged bytes raises many types; none is ours
        detail = " ".join(str(exc).split())[:80]
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({type(exc).__name__}: {detail})") from exc
    check_tensors(path, payload)
    return payload


def check_spiking(path: Path, spiking: dict[str, Any]) -> None:
    """The conversion record's fields that later verbs use, typed: thresholds, finetuned_steps, ..."""
    import math

    def number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    check_plain(path, spiking, "spiking")
    rules = {"thresholds": (lambda v: isinstance(v, (list, tuple)) and all(number(t) for t in v),
                            "a list of numbers"),
             "finetuned_steps": (lambda v: isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 1_000_000,
                                 "an integer in 1..1000000"),
             "output_abs_max": (lambda v: number(v) and v > 0, "a positive number"),
             "percentile": (lambda v: number(v) and 0 < v <= 100, "a number in (0, 100]"),
             "normalization": (lambda v: v in ("layer", "connection"), "layer or connection"),
             "lambdas": (lambda v: isinstance(v, dict) and all(number(x) and x > 0 for x in v.values()),
                         "a mapping of positive numbers")}
    for key, (valid, expected) in rules.items():
        value = spiking.get(key)
        if value is not None and not valid(value):
            shown = " ".join(repr(value).split())
            raise CheckpointError(f"{path}: spiking.{key} must be {expected}, got "
                                  f"{shown if len(shown) <= 40 else shown[:37] + '...'}")

"""Checkpoints: a state_dict plus JSON-compatible metadata, loaded only with ``weights_only=True``.

Layout (a plain dict)::

    {"format": "spiking-unet-checkpoint", "version": 1,
     "kind": "ann" | "snn",
     "config": UNetConfig.to_dict(),
     "state_dict": {...tensors...},
     "spiking": {...}  (snn only: thresholds, normalization, lambdas, steps),
     "meta": {...}     (free JSON-compatible provenance: seed, epochs, metrics)}
"""
from __future__ import annotations

import hashlib
import os
import pickle
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .atomic import atomic_path
from .errors import CheckpointError
from .unet import UNetConfig

FORMAT = "spiking-unet-checkpoint"
VERSION = 1
KINDS = ("ann", "snn")


@dataclass
class Checkpoint:
    """What a checkpoint file holds, validated."""

    kind: str
    config: UNetConfig
    state_dict: dict[str, torch.Tensor]
    spiking: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_payload(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "kind": self.kind, "config": self.config.to_dict(),
                "state_dict": {k: v.detach().cpu().clone() for k, v in self.state_dict.items()},
                "spiking": self.spiking, "meta": self.meta}


def save_checkpoint(path: str | os.PathLike[str], checkpoint: Checkpoint) -> None:
    """Write a checkpoint atomically."""
    with atomic_path(path) as tmp:
        torch.save(checkpoint.to_payload(), tmp)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes (provenance of exports)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_checkpoint(path: str | os.PathLike[str], expect_kind: str | None = None) -> Checkpoint:
    """Load and validate a checkpoint; every failure is a one-line :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"unsupported GLOBAL [\w.]+|Unsupported global: [\w. ]+|Unsupported operand \d+", str(exc))
        reason = found.group(0).strip() if found else "not a plain dictionary of tensors"
        raise CheckpointError(f"{path}: refused to load: it is not a plain weights file and would run code "
                              f"or build objects ({reason[:120]})") from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError, AttributeError,
            TypeError, IndexError) as exc:
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({type(exc).__name__})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a {FORMAT} file")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {payload.get('version')!r} is not supported "
                              f"(this toolchain reads version {VERSION})")
    kind = payload.get("kind")
    if kind not in KINDS:
        raise CheckpointError(f"{path}: unknown checkpoint kind {kind!r}")
    if expect_kind is not None and kind != expect_kind:
        raise CheckpointError(f"{path}: expected an {expect_kind.upper()} checkpoint, got an {kind.upper()} one")
    try:
        config = UNetConfig.from_dict(payload.get("config"))
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    state = payload.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: state_dict is missing or not a mapping of tensors")
    for name, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"{path}: tensor {name} holds NaN or inf values")
    spiking = payload.get("spiking") or {}
    meta = payload.get("meta") or {}
    if not isinstance(spiking, dict) or not isinstance(meta, dict):
        raise CheckpointError(f"{path}: 'spiking' and 'meta' must be mappings")
    return Checkpoint(kind=kind, config=config, state_dict=state, spiking=spiking, meta=meta)


def load_state_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict(strict=True)`` with shape and key mismatches reported as one line."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise CheckpointError(f"{source}: weights do not match the architecture "
                              f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    for name, tensor in own.items():
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise CheckpointError(f"{source}: tensor {name} has shape {tuple(state[name].shape)}, "
                                  f"the architecture needs {tuple(tensor.shape)}")
    module.load_state_dict(state, strict=True)

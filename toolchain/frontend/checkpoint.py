"""Checkpoints: a state_dict plus JSON-compatible metadata, loaded only with ``weights_only=True``.

Layout (a plain dict)::

    {"format": "spiking-unet-checkpoint", "version": 1,
     "kind": "ann" | "snn",
     "config": UNetConfig.to_dict(),
     "state_dict": {...tensors...},
     "spiking": {...}  (snn only: thresholds, normalization, lambdas, steps),
     "meta": {...}     (free JSON-compatible provenance: seed, epochs, metrics),
     "training_state": {...}  (optional: what ``--resume`` needs to continue a training run exactly)}

``training_state`` (written by ``train`` / ``finetune`` after every epoch, absent in older files and
in converted checkpoints) holds only tensors and plain Python data, so it loads with
``weights_only=True`` too::

    {"epoch": completed epochs, "settings": {the run's settings, compared on resume},
     "optimizer": optimizer.state_dict(), "history": [loss per batch],
     "rng": {"numpy": Generator.bit_generator.state, "torch": Generator.get_state(),
             "torch_global": torch.get_rng_state()}}

Version 2 holds an SNN of any other architecture (a network converted with
:func:`toolchain.frontend.capture.from_model` or from a ``.pt2`` file): ``config`` is replaced by
``"spec": TaskSpec.to_dict()`` and ``"graph": {"multiple": m, "layers": [...]}``, the layer list of
:mod:`toolchain.ir.structure`; the state_dict's keys are the layer names (``<layer>.weight``,
``<layer>.bias``, ``<layer>.scale`` for pools). Files of this toolchain's U-Net stay version 1.

Loading never runs code (``weights_only=True``) and checks every field before anything is built:
the architecture's keys and shapes are compared on the meta device, so a file that claims a huge
architecture fails without allocating it.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import re
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from toolchain.checks import short_repr as _show
from toolchain.checks import strict_isinstance as _is
from toolchain.errors import CheckpointError, ConfigError
from toolchain.files import atomic_path
from toolchain.frontend.architecture import (
    GraphArchitecture,
    check_unet_state,
    compare_state,
    parse_config,
    parse_graph,
)
from toolchain.frontend.snn import SpikingNetwork, spiking_unet
from toolchain.frontend.unet import UNet, UNetConfig
from toolchain.ir import FloatNetwork, MultiThreshold
from toolchain.ir.structure import structure_json
from toolchain.neuron.mt import validate_thresholds
from toolchain.tasks.spec import TaskSpec

FORMAT = "spiking-unet-checkpoint"
VERSION = 1                     # this toolchain's U-Net (an architecture config)
GRAPH_VERSION = 2               # any other network (a layer graph)
KINDS = ("ann", "snn")
TRAINING_KEYS = ("epoch", "settings", "optimizer", "history", "rng")


@dataclass
class Checkpoint:
    """What a checkpoint file holds, validated: ``config`` for this toolchain's U-Net, else ``graph``."""

    kind: str
    config: UNetConfig | None
    state_dict: dict[str, torch.Tensor]
    spiking: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    training_state: dict[str, Any] | None = None
    graph: GraphArchitecture | None = None

    @property
    def spec(self) -> TaskSpec:
        if self.config is not None:
            return self.config.spec
        assert self.graph is not None
        return self.graph.spec

    def to_payload(self) -> dict[str, Any]:
        architecture: dict[str, Any]
        if self.config is not None:
            architecture = {"version": VERSION, "kind": self.kind, "config": self.config.to_dict()}
        else:
            assert self.graph is not None, "a checkpoint needs a config or a graph"
            architecture = {"version": GRAPH_VERSION, "kind": self.kind, "spec": self.graph.spec.to_dict(),
                            "graph": {"multiple": self.graph.multiple, "layers": structure_json(self.graph.network)}}
        payload = {"format": FORMAT, **architecture,
                   "state_dict": {k: v.detach().cpu().clone() for k, v in self.state_dict.items()},
                   "spiking": self.spiking, "meta": self.meta}
        if self.training_state is not None:
            payload["training_state"] = self.training_state
        return _canonical(payload)


def _canonical(value: Any) -> Any:
    """A fresh copy of the containers with every string interned.

    Pickle writes a repeated object once and refers back to it, so its bytes depend on which equal
    strings happen to be the same object (an optimizer restored from a file has its own copies of
    'lr', 'betas', ...). Interning makes identity follow equality: equal payloads, equal bytes.
    """
    if isinstance(value, str):
        return sys.intern(str(value))
    if isinstance(value, dict):
        return {_canonical(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_canonical(v) for v in value)
    return value


def save_checkpoint(path: str | os.PathLike[str], checkpoint: Checkpoint) -> None:
    """Write a checkpoint atomically and byte-reproducibly.

    torch.save names the archive's records after the file it is given a path to (here a random
    temporary name); given an open file it uses a fixed name, so equal payloads give equal bytes.
    """
    payload = checkpoint.to_payload()
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(payload, handle)


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
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")       # e.g. "storage is not writable": noise for a user
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"unsupported GLOBAL [\w.]+|Unsupported global: [\w. ]+|Unsupported operand \d+", str(exc))
        reason = found.group(0).strip() if found else "not a plain dictionary of tensors"
        raise CheckpointError(f"{path}: refused to load: it is not a plain weights file and would run code "
                              f"or build objects ({reason[:120]})") from exc
    except Exception as exc:   # torch.load on foreign or damaged bytes raises many types; none is ours
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({type(exc).__name__})") from exc
    if isinstance(payload, dict) and payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
        raise CheckpointError(f"{path}: a plain state_dict, not a {FORMAT} file: wrap it for this toolchain's "
                              f"U-Net with toolchain.frontend.checkpoint.wrap_state_dict, or save any other model "
                              f"with torch.export.save and convert the .pt2 file")
    if not isinstance(payload, dict) or not _is(payload.get("format"), str) or payload["format"] != FORMAT:
        raise CheckpointError(f"{path}: not a {FORMAT} file")
    version = payload.get("version")
    if not _is(version, int) or version not in (VERSION, GRAPH_VERSION):
        raise CheckpointError(f"{path}: checkpoint version {_show(version)} is not supported "
                              f"(this toolchain reads versions {VERSION} and {GRAPH_VERSION})")
    kind = payload.get("kind")
    if not _is(kind, str) or kind not in KINDS:
        raise CheckpointError(f"{path}: unknown checkpoint kind {_show(kind)}")
    if expect_kind is not None and kind != expect_kind:
        raise CheckpointError(f"{path}: expected an {expect_kind.upper()} checkpoint, got an {kind.upper()} one")
    state = payload.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise CheckpointError(f"{path}: state_dict is missing or not a mapping of tensors")
    for name, tensor in state.items():
        _check_tensor(path, name, tensor)
    config: UNetConfig | None = None
    graph: GraphArchitecture | None = None
    if version == VERSION:
        config = parse_config(path, payload.get("config"))
        check_unet_state(path, config, state)
    elif kind != "snn":
        raise CheckpointError(f"{path}: a version {GRAPH_VERSION} (layer graph) checkpoint holds an SNN, not {kind}")
    else:
        graph = parse_graph(path, payload.get("spec"), payload.get("graph"), state)
    spiking = payload.get("spiking") or {}
    meta = payload.get("meta") or {}
    if not isinstance(spiking, dict) or not isinstance(meta, dict):
        raise CheckpointError(f"{path}: 'spiking' and 'meta' must be mappings")
    thresholds = spiking.get("thresholds")
    if thresholds is not None and (not isinstance(thresholds, (list, tuple))
                                   or not all(_is(t, int) or _is(t, float) for t in thresholds)):
        raise CheckpointError(f"{path}: spiking thresholds must be a list of numbers, got {_show(thresholds)}")
    training_state = payload.get("training_state")
    if training_state is not None:
        check_training_state(path, training_state)
    return Checkpoint(kind=kind, config=config, state_dict=state, spiking=spiking, meta=meta,
                      training_state=training_state, graph=graph)


def _check_tensor(path: Path, name: str, tensor: torch.Tensor) -> None:
    if tensor.layout != torch.strided or tensor.is_quantized or tensor.is_complex() or tensor.dtype == torch.bool:
        raise CheckpointError(f"{path}: tensor {name} is not a dense real tensor ({tensor.dtype}, {tensor.layout})")
    if tensor.is_floating_point():
        try:
            finite = bool(torch.isfinite(tensor).all())
        except (RuntimeError, NotImplementedError, TypeError) as exc:
            raise CheckpointError(f"{path}: tensor {name} cannot be read ({type(exc).__name__})") from exc
        if not finite:
            raise CheckpointError(f"{path}: tensor {name} holds NaN or inf values")


def check_training_state(path: str | os.PathLike[str], state: Any) -> None:
    """The structure of a ``training_state`` (its values are checked against the run on resume)."""
    def bad(what: str) -> CheckpointError:
        return CheckpointError(f"{path}: training_state {what}")

    if not isinstance(state, dict):
        raise bad("must be a mapping")
    missing = [k for k in TRAINING_KEYS if k not in state]
    if missing:
        raise bad(f"lacks keys {missing}")
    if not _is(state["epoch"], int) or state["epoch"] < 0:
        raise bad(f"epoch must be a non-negative integer, got {_show(state['epoch'])}")
    if not isinstance(state["settings"], dict) or not isinstance(state["optimizer"], dict):
        raise bad("settings and optimizer must be mappings")
    history = state["history"]
    if not isinstance(history, list) or not all(_is(v, float) for v in history):
        raise bad("history must be a list of floats")
    rng = state["rng"]
    if not isinstance(rng, dict) or not isinstance(rng.get("numpy"), dict):
        raise bad("rng must hold the numpy generator state")
    for key in ("torch", "torch_global"):
        value = rng.get(key)
        if not isinstance(value, torch.Tensor) or value.dtype != torch.uint8 or value.ndim != 1:
            raise bad(f"rng {key} must be a uint8 tensor (a torch generator state)")


def load_state_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict(strict=True)`` with shape and key mismatches reported as one line."""
    compare_state(module.state_dict(), state, source)
    module.load_state_dict(state, strict=True)


# ------------------------------------------------------------------------- modules from checkpoints

def load_ann(path: str | os.PathLike[str]) -> tuple[UNet, Checkpoint]:
    ckpt = load_checkpoint(path, expect_kind="ann")
    assert ckpt.config is not None        # ANN checkpoints are version 1
    ann = UNet(ckpt.config)
    load_state_strict(ann.core, ckpt.state_dict, str(path))
    ann.eval()
    return ann, ckpt


def load_snn(path: str | os.PathLike[str]) -> tuple[SpikingNetwork, Checkpoint]:
    ckpt = load_checkpoint(path, expect_kind="snn")
    try:
        thresholds = validate_thresholds(ckpt.spiking.get("thresholds") or ())
    except ConfigError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    if ckpt.graph is not None:
        snn = SpikingNetwork(_with_thresholds(path, ckpt.graph.network, thresholds), ckpt.graph.multiple,
                             spec=ckpt.graph.spec)
    else:
        assert ckpt.config is not None
        snn = spiking_unet(ckpt.config, thresholds)
    load_state_strict(snn.core, ckpt.state_dict, str(path))
    snn.eval()
    return snn, ckpt


def load_any(path: str | os.PathLike[str]) -> tuple[UNet | SpikingNetwork, Checkpoint]:
    """An ANN or an SNN, whichever the checkpoint holds."""
    kind = load_checkpoint(path).kind
    return load_ann(path) if kind == "ann" else load_snn(path)


def ann_checkpoint(ann: UNet, meta: dict[str, Any]) -> Checkpoint:
    return Checkpoint("ann", ann.config, ann.core.state_dict(), meta=meta)


def wrap_state_dict(state_dict: Mapping[str, torch.Tensor], config: UNetConfig,
                    meta: dict[str, Any] | None = None) -> Checkpoint:
    """An ANN checkpoint of this toolchain's U-Net from a plain ``state_dict`` (of a :class:`UNet`,
    whose keys start with ``core.``, or of its :class:`UNetCore`), its keys and shapes checked
    against ``config``; save it with :func:`save_checkpoint`. Other architectures: convert the model
    itself (:func:`toolchain.frontend.capture.from_model`, or a ``.pt2`` file with ``convert``)."""
    state = {(k[len("core."):] if k.startswith("core.") else k): v.detach().cpu()
             for k, v in state_dict.items()}
    for name, tensor in state.items():
        _check_tensor(Path("state_dict"), name, tensor)
    check_unet_state(Path("state_dict"), config, state)
    return Checkpoint("ann", config, state, meta=dict(meta or {}))


def _with_thresholds(path: str | os.PathLike[str], network: FloatNetwork,
                     thresholds: tuple[float, ...]) -> FloatNetwork:
    """The graph's MT layers must have the checkpoint's thresholds (every layer of a converted SNN has them)."""
    for layer in network.synaptic_layers:
        if isinstance(layer.neuron, MultiThreshold) and tuple(layer.neuron.thresholds) != tuple(thresholds):
            raise CheckpointError(f"{path}: graph layer {layer.name} has thresholds {list(layer.neuron.thresholds)}, "
                                  f"the checkpoint {list(thresholds)}")
    return network


def snn_checkpoint(snn: SpikingNetwork, spiking: dict[str, Any], meta: dict[str, Any]) -> Checkpoint:
    """This toolchain's U-Net by its config (version 1); any other network by its graph (version 2)."""
    if snn.config is not None:
        return Checkpoint("snn", snn.config, snn.core.state_dict(), spiking=spiking, meta=meta)
    if snn.spec is None:
        raise CheckpointError("an SNN without a task spec cannot be saved (convert it with a task)")
    graph = GraphArchitecture(snn.spec, snn.multiple, snn.to_network())
    return Checkpoint("snn", None, snn.core.state_dict(), spiking=spiking, meta=meta, graph=graph)

"""The architecture record of a checkpoint, checked against its weights before anything is built.

This toolchain's U-Net is recorded by its :class:`~toolchain.frontend.unet.UNetConfig` (the
state_dict's keys and shapes are compared with the architecture built on the meta device); any
other network by its task spec and layer graph (:class:`GraphArchitecture`, the layer list of
:mod:`toolchain.ir.structure`, whose weights are the state_dict's ``<layer>.weight``,
``<layer>.bias`` and ``<layer>.scale`` tensors).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checks import short_repr as _show
from ..checks import strict_isinstance as _is
from ..errors import CheckpointError
from ..ir import FloatNetwork, FloatSynapses, SumPool, SynapticLayer
from ..ir.structure import structure_from_json
from ..tasks.spec import MAX_CHANNELS, TaskSpec
from .unet import UNetConfig, UNetCore

MAX_MULTIPLE = 1 << 12


@dataclass(frozen=True)
class GraphArchitecture:
    """The architecture record of a network that is not this toolchain's U-Net: its task, the side
    multiple its inputs are padded to and its layer graph (the weights as loaded or converted)."""

    spec: TaskSpec
    multiple: int
    network: FloatNetwork


def parse_config(path: Path, data: Any) -> UNetConfig:
    try:
        config = UNetConfig.from_dict(data)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    for name in ("in_channels", "out_channels", "width"):
        if getattr(config, name) > MAX_CHANNELS:
            raise CheckpointError(f"{path}: bad architecture config: {name} {getattr(config, name)} is beyond "
                                  f"what this toolchain supports (<= {MAX_CHANNELS})")
    return config


def parse_graph(path: Path, spec_data: Any, graph_data: Any, state: dict[str, torch.Tensor]) -> GraphArchitecture:
    """The layer graph with its weights taken from ``state``: every key and shape checked, nothing allocated."""
    try:
        spec = TaskSpec.from_dict(spec_data)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    if not isinstance(graph_data, dict) or set(graph_data) != {"multiple", "layers"}:
        raise CheckpointError(f"{path}: 'graph' must be a mapping with the keys 'multiple' and 'layers'")
    multiple = graph_data["multiple"]
    if not _is(multiple, int) or not 1 <= multiple <= MAX_MULTIPLE:
        raise CheckpointError(f"{path}: graph 'multiple' must be an integer in 1..{MAX_MULTIPLE}, "
                              f"got {_show(multiple)}")
    used: set[str] = set()

    def tensor(key: str, shape: tuple[int, ...]) -> torch.Tensor:
        if key not in state:
            raise CheckpointError(f"{path}: weights do not match the graph (missing {key})")
        if tuple(state[key].shape) != shape or not state[key].is_floating_point():
            raise CheckpointError(f"{path}: tensor {key} has shape {tuple(state[key].shape)} "
                                  f"({state[key].dtype}), the graph needs float {shape}")
        used.add(key)
        return state[key]

    def weights(layer: SynapticLayer, weight_shape: tuple[int, ...], bias: int | None) -> FloatSynapses:
        if isinstance(layer, SumPool):
            scale = float(tensor(f"{layer.name}.scale", ()))
            return FloatSynapses(np.array([scale / (layer.kernel[0] * layer.kernel[1])], np.float32))
        weight = tensor(f"{layer.name}.weight", weight_shape).detach().numpy().astype(np.float32)
        bias_array = None if bias is None else tensor(f"{layer.name}.bias", (bias,)).detach().numpy().astype(np.float32)
        return FloatSynapses(weight, bias_array)

    network = structure_from_json(graph_data["layers"], weights, f"{path}: graph")
    unexpected = sorted(set(state) - used)
    if unexpected:
        raise CheckpointError(f"{path}: weights do not match the graph "
                              f"(unexpected {', '.join(_show(k) for k in unexpected[:3])})")
    if spec.in_channels != network.input.shape[0] or spec.out_channels != network.layers[-1].shape[0]:
        raise CheckpointError(f"{path}: the task spec's channels ({spec.in_channels} in, {spec.out_channels} out) "
                              f"are not the graph's ({network.input.shape[0]} in, {network.layers[-1].shape[0]} out)")
    return GraphArchitecture(spec, multiple, network)


def check_unet_state(path: Path, config: UNetConfig, state: dict[str, torch.Tensor]) -> None:
    """Keys and shapes against the architecture, built on the meta device (nothing is allocated)."""
    try:
        with torch.device("meta"):
            own = UNetCore(config).state_dict()
    except (RuntimeError, ValueError, OverflowError, MemoryError) as exc:
        raise CheckpointError(f"{path}: bad architecture config ({type(exc).__name__})") from exc
    compare_state(own, state, str(path))


def compare_state(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor], where: str) -> None:
    """The same keys with the same shapes as ``own``, else one CheckpointError line naming the first difference."""
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise CheckpointError(f"{where}: weights do not match the architecture "
                              f"(missing {missing[:3]}, unexpected {[_show(k) for k in unexpected[:3]]})")
    for name, tensor in own.items():
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise CheckpointError(f"{where}: tensor {name} has shape {tuple(state[name].shape)}, "
                                  f"the architecture needs {tuple(tensor.shape)}")

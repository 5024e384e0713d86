"""A float network's structure as plain JSON data (no weights), and back, checked before anything is built.

Checkpoints of networks that are not this toolchain's own U-Net carry their graph this way (the
weights sit beside it in the state_dict, keyed ``<layer>.weight`` / ``<layer>.bias`` and
``<layer>.scale`` for pools). One object per layer, in topological order::

    {"kind": "input", "name": "input", "shape": [C, H, W]}
    {"kind": "conv" | "convT", "name", "shape", "inputs": [src], "kernel": [kh, kw], "stride", "padding",
     "groups", "bias": bool, "neuron": {"kind": "mt", "thresholds": [...]} | {"kind": "acc"},
     "static": bool (conv), "output_padding" (convT), "source": {...} (optional provenance)}
    {"kind": "pool", "name", "shape", "inputs", "kernel", "neuron"}   (its weight, 1/k^2 x scale, is a weight)
    {"kind": "concat", "name", "shape", "inputs": [part, ...]}

:func:`structure_from_json` checks every field's type and range, the names (unique, usable as
module paths), the wiring (sources defined earlier) and every shape against its sources, and
raises one :class:`~toolchain.errors.CheckpointError` line naming the layer and the field.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, NoReturn

import numpy as np

from ..errors import CheckpointError, ExportError
from .network import FloatNetwork
from .nodes import (
    Accumulator,
    Concat,
    Conv,
    ConvTranspose,
    FloatSynapses,
    Input,
    Layer,
    LayerSource,
    MultiThreshold,
    Neuron,
    SumPool,
    SynapticLayer,
    weight_shape,
)
from .shapes import assign_depths, derived_shape

MAX_LAYERS = 4096
MAX_SIDE = 1 << 16             # image sides, channels
MAX_KERNEL = 64                # kernel, stride and padding entries
NAME = re.compile(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*\Z")      # module paths, as in a state_dict
WeightsOf = Callable[[SynapticLayer, tuple[int, ...], int | None], FloatSynapses]
"""(layer, weight shape, bias length or None) -> the layer's synapses, checked against those shapes
(a pool's weight array holds its one pooling weight)."""


def _neuron_json(neuron: Neuron) -> dict[str, Any]:
    if isinstance(neuron, MultiThreshold):
        return {"kind": "mt", "thresholds": [float(t) for t in neuron.thresholds]}
    if isinstance(neuron, Accumulator):
        return {"kind": "acc"}
    raise ExportError(f"a {type(neuron).__name__} neuron has no place in a float network's structure")


def structure_json(network: FloatNetwork) -> list[dict[str, Any]]:
    """The structure of ``network`` as JSON-compatible data (weights left out)."""
    out: list[dict[str, Any]] = []
    for layer in network.layers:
        entry: dict[str, Any] = {"kind": layer.kind, "name": layer.name, "shape": list(layer.shape)}
        if layer.inputs:
            entry["inputs"] = list(layer.inputs)
        if isinstance(layer, SynapticLayer):
            entry["neuron"] = _neuron_json(layer.neuron)
        if isinstance(layer, (Conv, ConvTranspose)):
            assert isinstance(layer.synapses, FloatSynapses)
            entry.update(kernel=list(layer.kernel), stride=list(layer.stride), padding=list(layer.padding),
                         groups=layer.groups, bias=layer.synapses.bias is not None)
            if isinstance(layer, Conv):
                entry["static"] = layer.static
            else:
                entry["output_padding"] = list(layer.output_padding)
        elif isinstance(layer, SumPool):
            entry["kernel"] = list(layer.kernel)
        source = layer.source.to_dict()
        if source:
            entry["source"] = source
        out.append(entry)
    return out


class _Fields:
    """Typed access to one layer's JSON object; every failure names the layer and the key."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, Mapping):
            raise CheckpointError(f"{where}: must be a mapping, got {type(data).__name__}")
        self.data, self.where = data, where

    def fail(self, key: str, message: str) -> NoReturn:
        raise CheckpointError(f"{self.where}: '{key}': {message}")

    def get(self, key: str, default: Any = ...) -> Any:
        if key not in self.data:
            if default is ...:
                self.fail(key, "is missing")
            return default
        return self.data[key]

    def integer(self, key: str, lo: int, hi: int, default: Any = ...) -> int:
        value = self.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            self.fail(key, f"must be an integer in {lo}..{hi}, got {str(value)[:40]}")
        return value

    def integers(self, key: str, n: int, lo: int, hi: int, default: Any = ...) -> tuple[int, ...]:
        values = self.get(key, default)
        if (not isinstance(values, list | tuple) or len(values) != n
                or not all(isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi for v in values)):
            self.fail(key, f"must be {n} integers in {lo}..{hi}, got {str(values)[:60]}")
        return tuple(values)

    def pair(self, key: str, lo: int, hi: int) -> tuple[int, int]:
        a, b = self.integers(key, 2, lo, hi)
        return a, b

    def boolean(self, key: str, default: Any = ...) -> bool:
        value = self.get(key, default)
        if not isinstance(value, bool):
            self.fail(key, f"must be true or false, got {str(value)[:40]}")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        values = self.get(key, [])
        if not isinstance(values, list | tuple) or not all(isinstance(v, str) for v in values):
            self.fail(key, "must be a list of layer names")
        return tuple(values)

    def neuron(self) -> Neuron:
        data = _Fields(self.get("neuron"), f"{self.where} neuron")
        kind = data.get("kind")
        if kind == "acc":
            return Accumulator()
        if kind != "mt":
            data.fail("kind", f"must be 'mt' or 'acc', got {str(kind)[:20]}")
        thresholds = data.get("thresholds")
        if (not isinstance(thresholds, list) or not 1 <= len(thresholds) <= 16
                or not all(isinstance(t, int | float) and not isinstance(t, bool) and np.isfinite(t) and t > 0
                           for t in thresholds)):
            data.fail("thresholds", "must be 1..16 positive numbers")
        if any(a <= b for a, b in zip(thresholds, thresholds[1:])):
            data.fail("thresholds", f"must be strictly decreasing, got {thresholds}")
        return MultiThreshold(tuple(float(t) for t in thresholds))


def _layer(fields: _Fields, by_name: dict[str, Layer], weights: WeightsOf) -> Layer:
    kind, name = fields.get("kind"), fields.get("name")
    if not isinstance(name, str) or not NAME.match(name) or len(name) > 200:
        fields.fail("name", f"must be a dotted module path, got {str(name)[:40]}")
    if name in by_name or any(other.startswith(name + ".") or name.startswith(other + ".") for other in by_name):
        fields.fail("name", f"{name!r} repeats or nests in another layer's name")
    c, h, w = fields.integers("shape", 3, 1, MAX_SIDE)
    shape = (c, h, w)
    source = fields.get("source", {})
    if not isinstance(source, Mapping) or not all(isinstance(v, str | int | float) for v in source.values()):
        fields.fail("source", "must be a mapping of plain values")
    try:
        provenance = LayerSource.from_dict(source)
    except (TypeError, ValueError) as exc:
        fields.fail("source", str(exc))
    if kind == "input":
        if by_name:
            fields.fail("kind", "only the first layer is the input")
        return Input(name=name, shape=shape, source=provenance)
    if not by_name:
        fields.fail("kind", "the first layer must be the input")
    inputs = fields.strings("inputs")
    missing = [s for s in inputs if s not in by_name]
    if missing or not inputs:
        fields.fail("inputs", f"must name earlier layers, got {list(inputs)[:4]}")
    common: dict[str, Any] = {"name": name, "shape": shape, "inputs": inputs, "source": provenance}
    if kind == "concat":
        return Concat(**common)
    if len(inputs) != 1:
        fields.fail("inputs", f"a {kind} layer has one input, got {len(inputs)}")
    neuron = fields.neuron()
    geometry: dict[str, Any] = {"kernel": fields.pair("kernel", 1, MAX_KERNEL)}
    layer: SynapticLayer
    empty = FloatSynapses(np.zeros(0, np.float32))
    if kind == "pool":
        layer = SumPool(**common, neuron=neuron, synapses=empty, **geometry)
    elif kind in ("conv", "convT"):
        geometry.update(stride=fields.pair("stride", 1, MAX_KERNEL),
                        padding=fields.pair("padding", 0, MAX_KERNEL),
                        groups=fields.integer("groups", 1, MAX_SIDE))
        if kind == "conv":
            layer = Conv(**common, neuron=neuron, synapses=empty, static=fields.boolean("static"), **geometry)
        else:
            layer = ConvTranspose(**common, neuron=neuron, synapses=empty,
                                  output_padding=fields.pair("output_padding", 0, MAX_KERNEL), **geometry)
    else:
        fields.fail("kind", f"must be input, conv, convT, pool or concat, got {str(kind)[:20]}")
    reads_input = isinstance(by_name[inputs[0]], Input)
    if reads_input != (isinstance(layer, Conv) and layer.static):
        fields.fail("static", "the convolution of the input, and only it, is static (static coding)")
    try:
        expected = weight_shape(layer, by_name[inputs[0]].shape[0])
    except ExportError as exc:
        fields.fail("groups", str(exc))
    has_bias = isinstance(layer, Conv | ConvTranspose) and fields.boolean("bias")
    synapses = weights(layer, expected, layer.shape[0] if has_bias else None)
    if isinstance(layer, SumPool):
        return replace(layer, synapses=synapses, pool_weight=float(synapses.weight.reshape(-1)[0]))
    return replace(layer, synapses=synapses)


def structure_from_json(data: Any, weights: WeightsOf, where: str = "graph") -> FloatNetwork:
    """The float network a structure describes, its synapses from ``weights`` (see :data:`WeightsOf`),
    with every field, shape and the depths checked (see the module docstring)."""
    if not isinstance(data, list) or not 2 <= len(data) <= MAX_LAYERS:
        raise CheckpointError(f"{where}: must be a list of 2..{MAX_LAYERS} layers")
    by_name: dict[str, Layer] = {}
    layers: list[Layer] = []
    for i, entry in enumerate(data):
        fields = _Fields(entry, f"{where} layer {i}")
        layer = _layer(fields, by_name, weights)
        if not isinstance(layer, Input):
            try:
                shape = derived_shape(layer, [by_name[s].shape for s in layer.inputs])
            except (ExportError, ValueError) as exc:
                fields.fail("shape", str(exc))
            if shape != layer.shape:
                fields.fail("shape", f"is {list(layer.shape)}, its sources give {list(shape)}")
        by_name[layer.name] = layer
        layers.append(layer)
    last = layers[-1]
    if not isinstance(last, SynapticLayer) or not isinstance(last.neuron, Accumulator):
        raise CheckpointError(f"{where}: the last layer must be the output accumulator")
    try:
        return assign_depths(FloatNetwork(tuple(layers)))
    except ExportError as exc:
        raise CheckpointError(f"{where}: {exc}") from exc

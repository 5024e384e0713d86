"""The lowering's state: layers being built from graph nodes, and the helpers every operation uses.

A synaptic layer starts as a :class:`Synapse` (geometry and float64 weights) when its node is met;
its neuron is decided by its consumer (:meth:`GraphBuilder.settle`), and only then does it become an
IR layer (:meth:`GraphBuilder.add`). See :mod:`.lower` for the rules.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal

import numpy as np
import torch
import torch.fx as fx

from ...ir import (
    Accumulator,
    Concat,
    Conv,
    ConvTranspose,
    FloatSynapses,
    Input,
    Layer,
    LayerSource,
    MultiThreshold,
    SumPool,
    SynapticLayer,
)
from .aten import Owner, op_name, refusal, shape_of
from .options import CaptureOptions
from .rewrites import Rewrite, signed_pair

PLACEHOLDER = MultiThreshold((1.0,))      # an ANN neuron layer: conversion gives it its thresholds


@dataclass
class Synapse:
    """A synaptic layer being built: geometry and float64 weights, its neuron not decided yet."""

    kind: Literal["conv", "convT", "pool"]
    name: str
    source: str
    node: fx.Node
    hw: tuple[int, int]
    weight: np.ndarray                     # pool: one element, the pooling weight
    bias: np.ndarray | None = None
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    output_padding: int = 0
    groups: int = 1
    fixed: bool = False                    # a fixed kernel (pooling, upsampling): depthwise, weights >= 0
    channel_offset: int = 0                # a piece of a split grouped layer: its first output channel
    notes: list[Rewrite] = field(default_factory=list)

    @property
    def channels(self) -> int:
        if self.kind == "conv":
            return int(self.weight.shape[0])
        if self.kind == "convT":
            return int(self.weight.shape[1]) * self.groups
        return -1                          # a pool keeps its source's channels


@dataclass
class Split:
    """A grouped convolution of a concatenation, split into one grouped layer per part (exact: a
    group reads one part only), joined by a concat once their neurons are decided."""

    pieces: list[Synapse]


@dataclass(frozen=True)
class Info:
    """What the lowering knows of an IR layer's output: its parts as (model channels, signed pair?),
    and its down-sampling factor relative to the input (2 after one stride-2 pooling)."""

    parts: tuple[tuple[int, bool], ...]
    scale: Fraction

    @property
    def paired(self) -> bool:
        return any(p for _, p in self.parts)


class GraphBuilder:
    """The state of one lowering: the layers so far, what each graph node's value is, and the
    helpers every operation uses (naming, settling a pending layer, concatenation)."""

    def __init__(self, ep: torch.export.ExportedProgram, options: CaptureOptions) -> None:
        self.options = options
        sig = ep.graph_signature
        self.tensors: dict[str, torch.Tensor] = {}
        for node_name, fqn in sig.inputs_to_parameters.items():
            self.tensors[node_name] = ep.state_dict[fqn]
        for node_name, fqn in sig.inputs_to_buffers.items():
            self.tensors[node_name] = ep.state_dict[fqn] if fqn in ep.state_dict else ep.constants[fqn]
        for node_name, fqn in sig.inputs_to_lifted_tensor_constants.items():
            self.tensors[node_name] = ep.constants[fqn]
        self.graph = ep.graph
        paths = {Owner.of(n).path for n in ep.graph.nodes}
        self.containers = {p.rsplit(".", i)[0] for p in paths for i in range(1, p.count(".") + 1)}
        self.layers: list[Layer] = []
        self.names: set[str] = {"input"}     # every name given out, pending layers' too
        self.info: dict[str, Info] = {}
        self.value: dict[str, Any] = {}     # node -> layer name | Synapse (pending) | ("tuple", Synapse) | tensor
        self.used: set[str] = set()          # pending nodes already consumed by their activation / BN
        self.rewrites: list[Rewrite] = []
        self.concats = 0

    # ------------------------------------------------------------------------------------ helpers

    def name_for(self, node: fx.Node) -> str:
        owner = Owner.of(node)
        base = owner.path if owner.path and owner.path not in self.containers else \
            ".".join(p for p in (owner.path, op_name(node)) if p)
        base = "".join(c if c.isalnum() or c in "._" else "_" for c in base).strip(".") or op_name(node)
        name, i = base, 1
        while name in self.names:
            i += 1
            name = f"{base}_{i}"
        self.names.add(name)
        return name

    def array(self, node: Any, consumer: fx.Node) -> np.ndarray | None:
        if node is None:
            return None
        if not isinstance(node, fx.Node) or node.name not in self.tensors:
            raise refusal(consumer, "a weight computed inside the graph", "make weights parameters or buffers")
        return self.tensors[node.name].detach().to(torch.float64).numpy().copy()

    def settled(self, node: Any, consumer: fx.Node) -> str:
        """The IR layer behind value ``node``; a pending synapse gets its neuron population here."""
        if not isinstance(node, fx.Node) or node.name not in self.value:
            raise refusal(consumer, f"input {node} is not the output of a layer", "feed layers with layer outputs")
        if node.name in self.used:
            raise refusal(consumer, f"reads {node.name}, which is also used through its activation",
                          "use a layer's output either before or after its ReLU, not both")
        value = self.value[node.name]
        if isinstance(value, str):
            return value
        if isinstance(value, Split):
            name = self.join([self.settle(piece, consumer) for piece in value.pieces], node)
            self.value[node.name] = name
            return name
        if not isinstance(value, Synapse):
            raise refusal(consumer, f"input {node.name} is not the output of a layer", "feed layers with layer outputs")
        name = self.settle(value, consumer)
        self.value[node.name] = name
        return name

    def settle(self, syn: Synapse, consumer: fx.Node) -> str:
        """A linear layer read by ``consumer``: a ReLU population where that is exact, else a pair or a refusal."""
        source_is_input = isinstance(self.layers[0], Input) and syn.source == self.layers[0].name
        nonneg = (not source_is_input and bool((syn.weight >= 0).all())
                  and (syn.bias is None or bool((syn.bias >= 0).all())))
        if nonneg:
            syn.notes.append(Rewrite(syn.name, Owner.of(syn.node).describe(), "rectified-nonnegative", True,
                                     "linear, output provably >= 0 (non-negative weights on neuron outputs): "
                                     "a ReLU neuron layer is exact"))
            return self.add(syn, activation=None)
        if self.options.linear == "pair" and syn.kind in ("conv", "convT") and syn.groups == 1:
            syn.weight, syn.bias = signed_pair(syn.weight, syn.bias, syn.kind == "convT")
            syn.notes.append(Rewrite(syn.name, Owner.of(syn.node).describe(), "signed-pair", True,
                                     "no activation and a signed output: two neuron populations [ReLU(z), ReLU(-z)], "
                                     "read as [K, -K] by every consumer"))
            return self.add(syn, activation=None, paired=True)
        raise refusal(syn.node, f"its output feeds {consumer.name} [{consumer.target}] without an activation and can "
                      "be negative, but a spiking layer needs a neuron population there",
                      "add a ReLU after it (and retrain), or convert with `linear` pair (exact: two populations "
                      "for +z and -z, twice the neurons)")

    def add(self, syn: Synapse, activation: str | None, output: bool = False, paired: bool = False) -> str:
        src = self.info[syn.source]
        if syn.kind == "pool" or syn.fixed:
            parts = src.parts                        # depthwise and >= 0: pairs stay pairs
        else:
            parts = ((syn.channels // (2 if paired else 1), paired),)
        stride = Fraction(syn.stride)
        scale = src.scale / stride if syn.kind == "convT" else src.scale * stride
        in_channels = self.layer(syn.source).shape[0]
        channels = in_channels if syn.kind == "pool" else syn.channels
        common: dict[str, Any] = {
            "name": syn.name, "shape": (channels, *syn.hw), "inputs": (syn.source,),
            "neuron": Accumulator() if output else PLACEHOLDER,
            "source": LayerSource(synapse=Owner.of(syn.node).path or syn.name, activation=activation)}
        bias = None if syn.bias is None else syn.bias.astype(np.float32)
        weights = FloatSynapses(syn.weight.astype(np.float32), bias)
        k, s, p = (syn.kernel,) * 2, (syn.stride,) * 2, (syn.padding,) * 2
        layer: SynapticLayer
        if syn.kind == "pool":
            layer = SumPool(**common, synapses=FloatSynapses(syn.weight.astype(np.float32)), kernel=k,
                            pool_weight=float(syn.weight.reshape(-1)[0]))
        elif syn.kind == "conv":
            layer = Conv(**common, synapses=weights, kernel=k, stride=s, padding=p, groups=syn.groups,
                         static=isinstance(self.layer(syn.source), Input))
        else:
            layer = ConvTranspose(**common, synapses=weights, kernel=k, stride=s, padding=p,
                                  output_padding=(syn.output_padding,) * 2, groups=syn.groups)
        self.layers.append(layer)
        self.info[syn.name] = Info(parts, scale)
        self.rewrites += syn.notes
        return syn.name

    def join(self, parts: list[str], node: fx.Node) -> str:
        """A concat of ``parts`` (flattening nested concats); the parts must share one resolution."""
        flat: list[str] = []
        for name in parts:
            flat += list(self.layer(name).inputs) if isinstance(self.layer(name), Concat) else [name]
        scales = {self.info[p].scale for p in flat}
        if len(scales) != 1:
            raise refusal(node, "parts at different resolutions", "concatenate maps of one size")
        name = f"concat{self.concats}"
        while name in self.names:              # a model's own module may be called concat0
            self.concats += 1
            name = f"concat{self.concats}"
        self.concats += 1
        self.names.add(name)
        _, h, w = self.layer(flat[0]).shape
        self.layers.append(Concat(name=name, shape=(sum(self.layer(p).shape[0] for p in flat), h, w),
                                  inputs=tuple(flat)))
        self.info[name] = Info(tuple(q for p in flat for q in self.info[p].parts), scales.pop())
        return name

    def split(self, node: fx.Node, src: str, weight: np.ndarray, bias: np.ndarray | None,
              transposed: bool, groups: int, geometry: dict[str, Any]) -> Split:
        """One grouped layer per part of the concatenation ``src`` (see :class:`Split`)."""
        c_in = self.layer(src).shape[0]
        per_in = c_in // groups
        per_out = (weight.shape[1] if transposed else weight.shape[0] // groups)
        base, pieces, offset = self.name_for(node), [], 0
        _, _, h, w = shape_of(node)
        for i, part in enumerate(self.layer(src).inputs):
            count = self.layer(part).shape[0]
            if offset % per_in or count % per_in:
                raise refusal(node, f"groups of {per_in} channels straddle the concatenated part {part}",
                              "make every concatenated part a whole number of groups")
            g0, g1 = offset // per_in, (offset + count) // per_in
            out = slice(g0 * per_out, g1 * per_out)
            piece = weight[offset:offset + count] if transposed else weight[out]
            self.names.add(f"{base}.{i}")
            pieces.append(Synapse("convT" if transposed else "conv", f"{base}.{i}", part, node, (h, w), piece,
                                   None if bias is None else bias[out], groups=g1 - g0, channel_offset=out.start,
                                   **geometry))
            offset += count
        return Split(pieces)

    def layer(self, name: str) -> Layer:
        return next(lay for lay in self.layers if lay.name == name)

    def square(self, values: Any, what: str, node: fx.Node) -> int:
        items = list(values) if isinstance(values, list | tuple) else [values]
        items = items * 2 if len(items) == 1 else items
        if len(items) != 2 or items[0] != items[1]:
            raise refusal(node, f"non-square {what} {items}", "use square kernels, strides and paddings")
        return int(items[0])

    def source_for(self, x: fx.Node, node: fx.Node, what: str) -> str:
        """A depthwise fixed layer's (pool, upsample) source: one neuron layer, not the image or a concat."""
        src = self.settled(x, node)
        if isinstance(self.layer(src), Input | Concat):
            raise refusal(node, f"{what} of the {'image' if isinstance(self.layer(src), Input) else 'concatenation'}",
                          "start the network with a convolution of the image and pool / upsample each branch "
                          "before concatenating")
        return src

    # ---------------------------------------------------------------------------------- operations

"""The layer graph: the contract between conversion, export, the simulators and the Loihi 2 profile.

A network is a list of :class:`Layer` in topological order, in netx's terms: every layer but
``input`` and ``concat`` is a synaptic operation fused with the neuron population it feeds.

==========  ================================================================================
kind        meaning
==========  ================================================================================
input       the image (C, H, W); no neuron
conv        2-D convolution into a neuron layer; ``static`` marks the analog first layer whose
            current conv(x) + b is computed once and fed as a constant bias every step
convT       transposed convolution into a neuron layer
pool        average pooling (``kernel`` = ``stride``) into a neuron layer; synaptic weight
            ``pool_weight`` (1/k^2 times the normalization factor)
concat      channel concatenation of its inputs, in order (no neuron, no latency); the layer
            after it sums one synapse group per part
dense       fully connected layer into a neuron layer of shape (C, 1, 1); ``weight`` (C_out, C_in)
            (stock netx files only)
flatten     reshape of its source to (C*H*W, 1, 1) in C-order (no neuron, no latency; stock files)
==========  ================================================================================

Neuron kinds: ``MT`` (multi-threshold, :mod:`toolchain.neuron`; one threshold = IF), ``ACC``
(the non-spiking output accumulator) and ``CUBA`` (Lava's fixed-point LIF exactly as stock netx
builds it: ``vth`` mantissa, ``du`` = iDecay - 1, ``dv`` = vDecay, bias exponent ``bias_exp`` = 6,
reset to zero; :func:`toolchain.neuron.cuba_step`).

Two time semantics. MT/ACC networks run in *logical* time (below). A network whose neuron layers
are CUBA (``Network.physical``; what :func:`netx_export.read_netx` builds from a stock netx file)
runs in *physical* time (:mod:`toolchain.refsim_physical`): every layer is on from step 0 (biases
included) and every synapse adds one step; there ``depth`` is the layer's position in the chain
(input 0) and is informational. Stock layers may have non-square ``stride`` / ``padding``, stored
as (H, W) tuples; ``input`` layers of a stock network carry a CUBA neuron driven by a per-neuron
bias (the image), as lava-dl's netx tests drive them.

MT latency: every synaptic layer adds one step, so a neuron
layer's ``depth`` is 0 for the static first layer and 1 + the deepest of its sources otherwise;
a concat delays its shallower parts by ``delays[i]`` extra steps so all parts arrive together.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterator

import networkx as nx
import numpy as np

from toolchain.errors import ExportError

LAYER_KINDS = ("input", "conv", "convT", "pool", "concat", "dense", "flatten")
NEURON_KINDS = ("MT", "ACC", "CUBA")
LOWERINGS = ("compartments", "graded")   # how an MT neuron becomes hardware neurons (see export)
MAX_SYNAPTIC_DELAY = 62


@dataclass(frozen=True)
class NeuronSpec:
    """A neuron population's model: ``MT`` with thresholds theta_1 > ... > theta_N, ``ACC``, or
    ``CUBA`` (Lava LIF: threshold mantissa ``vth`` (fires on v > vth << 6), current decay ``du``,
    voltage decay ``dv``, bias exponent ``bias_exp``)."""

    kind: str
    thresholds: tuple[float, ...] = ()
    vth: int = 0
    du: int = 0
    dv: int = 0
    bias_exp: int = 6

    def __post_init__(self) -> None:
        if self.kind not in NEURON_KINDS:
            raise ExportError(f"unknown neuron kind {self.kind!r}")
        if self.kind == "MT" and not self.thresholds:
            raise ExportError("an MT neuron needs thresholds")

    @property
    def compartments(self) -> int:
        return len(self.thresholds) if self.kind == "MT" else 1

    def spike_weights(self) -> tuple[int, ...]:
        """r_i = theta_i / theta_N: what compartment i's spike is worth in units of the smallest threshold.

        Export needs integer ratios (powers of two keep 8-bit mantissas exact under the compartment
        lowering); other threshold sets are rejected here with the offending value.
        """
        smallest = self.thresholds[-1]
        ratios = []
        for theta in self.thresholds:
            r = theta / smallest
            if abs(r - round(r)) > 1e-9:
                raise ExportError(f"threshold {theta} is not an integer multiple of the smallest "
                                  f"threshold {smallest}; such MT neurons cannot be exported")
            ratios.append(int(round(r)))
        return tuple(ratios)


@dataclass
class Layer:
    """One node of the graph. Float graphs hold float32 weights; quantized graphs hold integer
    mantissas with power-of-two exponents (``weight_exp`` has one entry per input part)."""

    name: str
    kind: str
    shape: tuple[int, int, int]
    inputs: tuple[str, ...] = ()
    neuron: NeuronSpec | None = None
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    output_padding: int = 0
    pool_weight: float = 0.0
    static: bool = False
    delays: tuple[int, ...] = ()
    depth: int = 0
    # Quantized fields (meaningful when the owning Network is quantized).
    weight_exp: tuple[int, ...] = ()
    bias_exp: np.ndarray | None = None
    unit: float = 0.0
    source: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in LAYER_KINDS:
            raise ExportError(f"layer {self.name}: unknown layer kind {self.kind!r}")

    @property
    def neurons(self) -> int:
        c, h, w = self.shape
        return c * h * w if self.neuron is not None else 0


def pair(value: int | tuple[int, int]) -> tuple[int, int]:
    """A stride / padding / kernel as an (H, W) pair (MT layers store one int for both)."""
    if isinstance(value, (tuple, list)):
        return int(value[0]), int(value[1])
    return int(value), int(value)


@dataclass
class Network:
    """A whole network: layers in topological order plus metadata (steps, thresholds, provenance)."""

    layers: list[Layer]
    meta: dict[str, Any] = field(default_factory=dict)
    quantized: bool = False

    def __post_init__(self) -> None:
        names = [layer.name for layer in self.layers]
        if len(set(names)) != len(names):
            raise ExportError("layer names are not unique")
        self._index = {layer.name: layer for layer in self.layers}
        seen: set[str] = set()
        for layer in self.layers:
            for src in layer.inputs:
                if src not in seen:
                    raise ExportError(f"layer {layer.name}: input {src!r} is not an earlier layer")
            seen.add(layer.name)

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __getitem__(self, name: str) -> Layer:
        return self._index[name]

    @property
    def input(self) -> Layer:
        return self.layers[0]

    @property
    def output(self) -> Layer:
        return self.layers[-1]

    @property
    def neuron_layers(self) -> list[Layer]:
        return [layer for layer in self.layers if layer.neuron is not None]

    @property
    def physical(self) -> bool:
        """Whether this is a CUBA network (physical-time semantics; see the module docstring)."""
        return any(layer.neuron is not None and layer.neuron.kind == "CUBA" for layer in self.layers)

    @property
    def latency(self) -> int:
        """Steps from the first to the output layer: output step t of the T-step window is physical step t + latency."""
        return self.output.depth

    def to_networkx(self) -> nx.DiGraph:
        """The graph as networkx, nodes carrying their :class:`Layer` under ``layer``."""
        graph = nx.DiGraph()
        for layer in self.layers:
            graph.add_node(layer.name, layer=layer)
            for port, src in enumerate(layer.inputs):
                delay = layer.delays[port] if layer.delays else 0
                graph.add_edge(src, layer.name, port=port, delay=delay)
        return graph

    def parts(self, layer: Layer) -> list[tuple[Layer, int, int]]:
        """The synaptic input parts of a layer: (source neuron layer, extra delay, channel offset).

        A layer fed by a concat has one part per concat input; any other layer has one part.
        """
        (src_name,) = layer.inputs
        src = self[src_name]
        if src.kind != "concat":
            return [(src, 0, 0)]
        parts, offset = [], 0
        for name, delay in zip(src.inputs, src.delays or (0,) * len(src.inputs)):
            part = self[name]
            parts.append((part, delay, offset))
            offset += part.shape[0]
        return parts


def output_hw(kind: str, hw: tuple[int, int], kernel: int, stride: int, padding: int,
              output_padding: int = 0) -> tuple[int, int]:
    """The (H, W) a conv / convT / pool layer produces from an (H, W) input (torch's formulas)."""
    def side(n: int) -> int:
        if kind == "conv":
            return (n + 2 * padding - kernel) // stride + 1
        if kind == "convT":
            return (n - 1) * stride - 2 * padding + kernel + output_padding
        if kind == "pool":                       # avg_pool2d(kernel), stride = kernel, floor
            return n // kernel
        raise ValueError(f"no output shape rule for layer kind {kind!r}")
    return side(hw[0]), side(hw[1])


def resize(network: Network, hw: tuple[int, int]) -> Network:
    """The same network for another input size: every layer's shape re-derived (weights shared).

    Convolutional networks are size-agnostic; a U-Net needs sides that are multiples of
    2**depth, which the caller ensures (an inconsistent concat raises :class:`ExportError`).
    """
    shapes: dict[str, tuple[int, int, int]] = {}
    layers = []
    for layer in network.layers:
        if layer.kind == "input":
            shape = (layer.shape[0], *hw)
        elif layer.kind == "concat":
            parts = [shapes[s] for s in layer.inputs]
            if len({p[1:] for p in parts}) != 1:
                raise ExportError(f"layer {layer.name}: parts of sizes {[p[1:] for p in parts]} cannot be "
                                  f"concatenated for a {hw[0]}x{hw[1]} input")
            shape = (sum(p[0] for p in parts), *parts[0][1:])
        else:
            src = shapes[layer.inputs[0]]
            shape = (layer.shape[0], *output_hw(layer.kind, src[1:], layer.kernel, layer.stride,
                                                layer.padding, layer.output_padding))
        shapes[layer.name] = shape
        layers.append(replace(layer, shape=shape))
    return Network(layers, dict(network.meta), network.quantized)


def assign_depths(network: Network, max_delay: int = MAX_SYNAPTIC_DELAY) -> Network:
    """Compute every layer's depth and the concat delays that align its parts (returns a copy).

    depth(static conv) = 0; depth(input) = -1; depth(concat) = max depth of its parts, with
    delays[i] = depth(concat) - depth(part i); depth(other) = depth(its source) + 1.
    """
    depths: dict[str, int] = {}
    layers = []
    for layer in network.layers:
        if layer.kind == "input":
            depth, delays = -1, ()
        elif layer.kind == "concat":
            part_depths = [depths[s] for s in layer.inputs]
            depth = max(part_depths)
            delays = tuple(depth - d for d in part_depths)
            for src, delay in zip(layer.inputs, delays):
                if delay + 1 > max_delay:
                    raise ExportError(f"layer {layer.name}: input {src} needs a synaptic delay of {delay + 1} "
                                      f"steps, beyond the hardware's {max_delay}; use a shallower U-Net")
        elif layer.static:
            depth, delays = 0, ()
        else:
            depth, delays = depths[layer.inputs[0]] + 1, ()
        depths[layer.name] = depth
        layers.append(replace(layer, depth=depth, delays=delays))
    return Network(layers, dict(network.meta), network.quantized)

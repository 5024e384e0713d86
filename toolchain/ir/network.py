"""Networks: layers in topological order plus typed metadata, in three forms.

* :class:`FloatNetwork`: what tracing a PyTorch module gives (:class:`~.nodes.FloatSynapses`);
* :class:`QuantizedNetwork`: Loihi fixed point (:class:`~.nodes.FixedSynapses`), the in-memory form
  of this toolchain's ``.net`` files, run in *logical* time (below);
* :class:`StockNetwork`: a stock lava-dl netx file (:class:`~.nodes.StockSynapses`, CUBA neurons),
  run in *physical* time (:mod:`toolchain.simulators.physical`): every layer is on from step 0
  (biases included) and every synapse adds one step; ``depth`` is the layer's position in the chain.

MT latency (logical time): every synaptic layer adds one step, so a neuron layer's ``depth`` is 0
for the static first layer and 1 + the deepest of its sources otherwise; a concat delays its
shallower parts by ``delays[i]`` extra steps so all parts arrive together. Layer l's logical step k
runs at physical step depth(l) + k on hardware; the output's depth is the network's latency.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar, TypeVar

import networkx as nx

from ..errors import ExportError
from ..vocab import Lowering, Normalization, Task
from .nodes import Concat, FixedSynapses, FloatSynapses, Input, Layer, NeuronLayer, StockSynapses, SynapticLayer

N = TypeVar("N", bound="Network")


@dataclass(frozen=True)
class Provenance:
    """Where an exported network came from."""

    source_checkpoint: str
    source_sha256: str
    finetuned_steps: int | None


@dataclass(frozen=True)
class NetworkMeta:
    """What a quantized network records besides its layers (the ``.net`` file's ``meta/json``).

    Every field is optional so that a network can be described before export (``steps`` and the
    quantizer's fields are set by :func:`toolchain.lowering.quantize.quantize`); ``extra`` keeps keys
    this toolchain does not know verbatim, so files from newer versions round-trip.
    """

    format_version: int | None = None
    task: Task | None = None
    in_channels: int | None = None
    out_channels: int | None = None
    noise_map: bool | None = None         # a denoiser told its noise level: input = [image, sigma / 255]
    width: int | None = None
    depth: int | None = None
    multiple: int | None = None
    steps: int | None = None
    lowering: Lowering | None = None
    thresholds: tuple[float, ...] | None = None
    normalization: Normalization | None = None
    percentile: float | None = None
    provenance: Provenance | None = None
    theta_unit: int | None = None
    weight_bits: int | None = None
    v_limit: int | None = None
    input_levels: int | None = None
    input_level_range: tuple[int, int] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    _ALWAYS: ClassVar[tuple[str, ...]] = ("normalization", "percentile")   # written even when None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of the file (keys as written since format version 1)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("extra", "provenance") or (value is None and f.name not in self._ALWAYS):
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        if self.provenance is not None:
            out.update(source_checkpoint=self.provenance.source_checkpoint,
                       source_sha256=self.provenance.source_sha256,
                       finetuned_steps=self.provenance.finetuned_steps)
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NetworkMeta:
        """Parse a file's meta object (types are checked by :func:`toolchain.ir.validate.validate`)."""
        known = {f.name for f in fields(cls)} - {"extra", "provenance"}
        values: dict[str, Any] = {}
        for key in known & set(data):
            value = data[key]
            values[key] = tuple(value) if isinstance(value, list) else value
        prov_keys = ("source_checkpoint", "source_sha256", "finetuned_steps")
        if all(k in data for k in prov_keys):
            values["provenance"] = Provenance(*(data[k] for k in prov_keys))
        extra = {k: v for k, v in data.items() if k not in known and (k not in prov_keys or "provenance" not in values)}
        return cls(**values, extra=extra)

    def replace(self, **changes: Any) -> NetworkMeta:
        return replace(self, **changes)


@dataclass(frozen=True)
class StockMeta:
    """What a stock netx file says besides its layers (slayer's ``simulation`` group, if any)."""

    ts: int | None = None
    t_sample: int | None = None
    path: str | None = None          # the file it was read from (lava-dl's netx loads it by path)


@dataclass(frozen=True, eq=False)
class Network:
    """Layers in topological order (every input an earlier layer, names unique)."""

    layers: tuple[Layer, ...]
    synapse_type: ClassVar[type] = object

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        names = [layer.name for layer in self.layers]
        if len(set(names)) != len(names):
            raise ExportError("layer names are not unique")
        seen: set[str] = set()
        for layer in self.layers:
            for src in layer.inputs:
                if src not in seen:
                    raise ExportError(f"layer {layer.name}: input {src!r} is not an earlier layer")
            seen.add(layer.name)
            if isinstance(layer, SynapticLayer) and not isinstance(layer.synapses, self.synapse_type):
                raise ExportError(f"layer {layer.name}: a {type(self).__name__} holds "
                                  f"{self.synapse_type.__name__}, not {type(layer.synapses).__name__}")
        object.__setattr__(self, "_index", {layer.name: layer for layer in self.layers})

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, name: str) -> Layer:
        return self._index[name]  # type: ignore[attr-defined]

    def index(self, name: str) -> int:
        return next(i for i, layer in enumerate(self.layers) if layer.name == name)

    @property
    def input(self) -> Input:
        first = self.layers[0]
        assert isinstance(first, Input), "the first layer of a network is its input"
        return first

    @property
    def output(self) -> Layer:
        return self.layers[-1]

    @property
    def synaptic_layers(self) -> list[SynapticLayer]:
        return [layer for layer in self.layers if isinstance(layer, SynapticLayer)]

    @property
    def neuron_layers(self) -> list[NeuronLayer]:
        """Layers with a neuron population: every synaptic layer (and a stock input layer)."""
        return [layer for layer in self.layers
                if isinstance(layer, SynapticLayer) or (isinstance(layer, Input) and layer.neuron is not None)]

    @property
    def latency(self) -> int:
        """Steps from the first to the output layer: output step t of the T-step window is physical step t + latency."""
        return self.output.depth

    def with_layers(self: N, layers: Sequence[Layer]) -> N:
        return replace(self, layers=tuple(layers))

    def to_networkx(self) -> nx.DiGraph:
        """The graph as networkx, nodes carrying their layer under ``layer``."""
        graph = nx.DiGraph()
        for layer in self.layers:
            graph.add_node(layer.name, layer=layer)
            delays = layer.delays if isinstance(layer, Concat) else ()
            for port, src in enumerate(layer.inputs):
                graph.add_edge(src, layer.name, port=port, delay=delays[port] if delays else 0)
        return graph

    def parts(self, layer: SynapticLayer) -> list[tuple[Layer, int, int]]:
        """The synaptic input parts of a layer: (source layer, extra delay, channel offset).

        A layer fed by a concat has one part per concat input; any other layer has one part (the
        static first layer's part is the input).
        """
        src = self[layer.source_name]
        if not isinstance(src, Concat):
            return [(src, 0, 0)]
        parts, offset = [], 0
        for name, delay in zip(src.inputs, src.delays or (0,) * len(src.inputs)):
            part = self[name]
            parts.append((part, delay, offset))
            offset += part.shape[0]
        return parts


@dataclass(frozen=True, eq=False)
class FloatNetwork(Network):
    """A traced float SNN (or ANN): float32 weights, float thresholds."""

    synapse_type: ClassVar[type] = FloatSynapses


@dataclass(frozen=True, eq=False)
class QuantizedNetwork(Network):
    """A network in Loihi fixed point: the in-memory form of a ``.net`` file (logical time)."""

    meta: NetworkMeta = field(default_factory=NetworkMeta)
    synapse_type: ClassVar[type] = FixedSynapses

    @property
    def lowering(self) -> Lowering:
        return self.meta.lowering or "compartments"


@dataclass(frozen=True, eq=False)
class StockNetwork(Network):
    """A stock lava-dl netx network of CUBA neurons (physical time)."""

    meta: StockMeta = field(default_factory=StockMeta)
    synapse_type: ClassVar[type] = StockSynapses

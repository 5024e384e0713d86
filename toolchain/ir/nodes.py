"""The nodes of the layer graph: one frozen dataclass per operation and per neuron kind (NIR style).

A network is a tuple of layers in topological order; every layer but :class:`Input`,
:class:`Concat` and :class:`Flatten` is a synaptic operation fused with the neuron population it
feeds (netx's convention). Synaptic parameters come in three forms, one per network form
(:mod:`toolchain.ir.network`):

* :class:`FloatSynapses`: float32 weights and biases of the float SNN (what tracing produces);
* :class:`FixedSynapses`: Loihi fixed point: integer mantissas with one power-of-two exponent per
  input part, bias mantissas and exponents, and the layer's membrane unit (what the quantizer and
  the ``.net`` reader produce);
* :class:`StockSynapses`: the integers of a stock lava-dl netx file as stored (Lava applies its
  own quirks to them; see :mod:`toolchain.simulators.physical`).

Weight layouts are torch's: conv (C_out, C_in / groups, kH, kW), transposed conv
(C_in, C_out / groups, kH, kW), dense (C_out, C_in), pool a single element (the pooling weight).
Kernel, stride and padding are (H, W) pairs.

Neurons: :class:`MultiThreshold` (theta_1 > ... > theta_N on one membrane; one threshold is IF;
float thresholds in a float network, integer membrane units in a fixed-point one),
:class:`Accumulator` (the non-spiking output layer) and :class:`Cuba` (Lava's fixed-point LIF
exactly as stock netx builds it: fires on v > vth << 6, current decay du = iDecay - 1, voltage
decay dv = vDecay, bias exponent ``bias_exp``, reset to zero).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ..errors import ExportError

Pair = tuple[int, int]
Shape = tuple[int, int, int]


def pair(value: int | Sequence[int] | str) -> Pair:
    """A kernel / stride / padding as an (H, W) pair (torch modules store them as tuples)."""
    if isinstance(value, str):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, Sequence):
        return int(value[0]), int(value[1])
    return int(value), int(value)


# ------------------------------------------------------------------------------------------ neurons

@dataclass(frozen=True)
class MultiThreshold:
    """Multi-threshold IF neuron: thresholds theta_1 > ... > theta_N on one shared membrane."""

    thresholds: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.thresholds:
            raise ExportError("an MT neuron needs thresholds")

    @property
    def compartments(self) -> int:
        return len(self.thresholds)

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


@dataclass(frozen=True)
class Accumulator:
    """The non-spiking output accumulator (the decoded output is its sum over T steps / T)."""

    compartments: ClassVar[int] = 1


@dataclass(frozen=True)
class Cuba:
    """Lava's fixed-point LIF as stock netx builds it (:func:`toolchain.neuron.cuba.cuba_step`)."""

    vth: int
    du: int
    dv: int
    bias_exp: int = 6
    compartments: ClassVar[int] = 1


Neuron = MultiThreshold | Accumulator | Cuba


# --------------------------------------------------------------------------------- synaptic params

@dataclass(frozen=True, eq=False)
class FloatSynapses:
    """Float32 weights and (optional) bias of the float SNN."""

    weight: np.ndarray
    bias: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class FixedSynapses:
    """Loihi fixed point: W ~= weight * 2**weight_exp[p] for input part p, b = bias << bias_exp.

    ``unit`` is the layer's membrane unit: integer units per 1.0 of the float SNN.
    """

    weight: np.ndarray          # int32 mantissas
    weight_exp: tuple[int, ...]  # one exponent per input part
    bias: np.ndarray            # int64 mantissas, one per output channel
    bias_exp: np.ndarray        # int64 exponents, one per output channel
    unit: float


@dataclass(frozen=True, eq=False)
class StockSynapses:
    """The weight and bias integers of a stock netx layer, as the file stores them."""

    weight: np.ndarray          # int32
    bias: np.ndarray            # int64 mantissas, one per output channel


Synapses = FloatSynapses | FixedSynapses | StockSynapses


# ------------------------------------------------------------------------------------------- layers

@dataclass(frozen=True)
class LayerSource:
    """Where a layer came from (provenance; stored in the file's optional ``source`` key)."""

    synapse: str | None = None          # the traced module of the synaptic operation
    activation: str | None = None       # the traced module of the activation after it
    input_weight: float | None = None   # stock netx input layers: the host-side transform netx stores
    input_bias: float | None = None

    _KEYS: ClassVar[dict[str, str]] = {"synapse": "synapse", "activation": "activation",
                                       "input_weight": "weight", "input_bias": "bias"}

    def to_dict(self) -> dict[str, object]:
        return {key: getattr(self, name) for name, key in self._KEYS.items() if getattr(self, name) is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> LayerSource:
        names = {key: name for name, key in cls._KEYS.items()}
        unknown = set(data) - set(names)
        if unknown:
            raise ValueError(f"unknown source keys {sorted(unknown)}")
        return cls(**{names[k]: v for k, v in data.items()})   # type: ignore[arg-type]


@dataclass(frozen=True, eq=False, kw_only=True)
class Layer:
    """What every node has: a unique name, the output shape (C, H, W), its sources (earlier layers),
    its latency depth (:func:`toolchain.ir.shapes.assign_depths`) and its provenance."""

    name: str
    shape: Shape
    inputs: tuple[str, ...] = ()
    depth: int = 0
    source: LayerSource = field(default_factory=LayerSource)
    kind: ClassVar[str]

    @property
    def neurons(self) -> int:
        """Neurons of the layer's population (0 for layers without one)."""
        return 0

    @property
    def channels(self) -> int:
        return self.shape[0]


@dataclass(frozen=True, eq=False, kw_only=True)
class Input(Layer):
    """The image (C, H, W). Stock netx input layers carry a CUBA neuron driven by a per-neuron
    bias (the image), as lava-dl's netx tests drive them; this toolchain's networks have none."""

    neuron: Cuba | None = None
    kind: ClassVar[str] = "input"
    depth: int = -1

    @property
    def neurons(self) -> int:
        c, h, w = self.shape
        return c * h * w if self.neuron is not None else 0


@dataclass(frozen=True, eq=False, kw_only=True)
class Concat(Layer):
    """Channel concatenation of its inputs, in order (no neuron, no latency): the layer after it sums
    one synapse group per part. ``delays[i]`` extra steps align part i with the deepest part."""

    delays: tuple[int, ...] = ()
    kind: ClassVar[str] = "concat"


@dataclass(frozen=True, eq=False, kw_only=True)
class Flatten(Layer):
    """Reshape of its source to (C*H*W, 1, 1) in C order (no neuron, no latency; stock files)."""

    kind: ClassVar[str] = "flatten"


@dataclass(frozen=True, eq=False, kw_only=True)
class SynapticLayer(Layer):
    """A synaptic operation into a neuron population."""

    neuron: Neuron
    synapses: Synapses

    @property
    def neurons(self) -> int:
        c, h, w = self.shape
        return c * h * w

    @property
    def source_name(self) -> str:
        """The one input of a synaptic layer."""
        (name,) = self.inputs
        return name


@dataclass(frozen=True, eq=False, kw_only=True)
class Conv(SynapticLayer):
    """2-D convolution. ``static``: the analog first layer (static coding) whose current
    conv(x) + b is computed once and fed as a constant bias every step. ``groups`` as in torch:
    input channel group j feeds output channel group j only (``groups`` = C is depthwise)."""

    kernel: Pair
    stride: Pair = (1, 1)
    padding: Pair = (0, 0)
    static: bool = False
    groups: int = 1
    kind: ClassVar[str] = "conv"


@dataclass(frozen=True, eq=False, kw_only=True)
class ConvTranspose(SynapticLayer):
    """Transposed 2-D convolution."""

    kernel: Pair
    stride: Pair = (1, 1)
    padding: Pair = (0, 0)
    output_padding: Pair = (0, 0)
    groups: int = 1
    kind: ClassVar[str] = "convT"


@dataclass(frozen=True, eq=False, kw_only=True)
class SumPool(SynapticLayer):
    """Average pooling (stride = kernel, floor) as a sum pool with one synaptic weight:
    ``pool_weight`` = 1/(kH kW) times the normalization factor (the float model's weight, which the
    file records beside the fixed-point mantissa)."""

    kernel: Pair
    pool_weight: float = 1.0
    kind: ClassVar[str] = "pool"

    @property
    def stride(self) -> Pair:
        return self.kernel

    @property
    def padding(self) -> Pair:
        return (0, 0)


@dataclass(frozen=True, eq=False, kw_only=True)
class Dense(SynapticLayer):
    """Fully connected layer into a neuron layer of shape (C, 1, 1) (stock netx files)."""

    kind: ClassVar[str] = "dense"


SpatialLayer = Conv | ConvTranspose | SumPool


def weight_shape(layer: SynapticLayer, in_channels: int) -> tuple[int, ...]:
    """The weight shape a conv / convT / pool layer with ``in_channels`` input channels must have."""
    c_out = layer.shape[0]
    if isinstance(layer, SumPool):
        return (1,)
    if isinstance(layer, (Conv, ConvTranspose)):
        g = layer.groups
        if g < 1 or in_channels % g or c_out % g:
            raise ExportError(f"layer {layer.name}: groups {g} must divide its {in_channels} input and "
                              f"{c_out} output channels")
        kh, kw = layer.kernel
        if isinstance(layer, Conv):
            return (c_out, in_channels // g, kh, kw)
        return (in_channels, c_out // g, kh, kw)
    raise ExportError(f"layer {layer.name}: a {layer.kind} layer has no spatial weight shape")
NeuronLayer = SynapticLayer | Input
LAYER_TYPES: dict[str, type[Layer]] = {cls.kind: cls for cls in (Input, Conv, ConvTranspose, SumPool, Concat,
                                                                 Dense, Flatten)}

"""The chip's view of a network: one :class:`ChipLayer` per neuron population, for both network forms.

A Loihi 2 core holds neurons of one layer; what the compiler's resource model
(:mod:`toolchain.hardware.compiler`) and the time / energy model (:mod:`toolchain.hardware.chipcost`)
need of a layer is its neuron grid (C, H, W), the compartments each neuron takes (``units``), and its
synaptic inputs (:class:`ChipPart`: source layer, source channels, axons per source neuron):

* this toolchain's quantized U-Nets (:class:`~toolchain.ir.QuantizedNetwork`): the static first layer is
  on the chip without synapses (the host computes conv(x)); conv, convT and sum-pool layers read one part
  per concat input; under the ``compartments`` lowering an MT neuron is N compartments and emits N binary
  axons, under ``graded`` one compartment and one graded axon; the output accumulator emits nothing;
* stock lava-dl netx networks (:class:`~toolchain.ir.StockNetwork`): the input layer's CUBA neurons are on
  the chip, driven by their bias (no synapses); conv layers read the previous layer; a dense layer reads
  the flattened previous layer and stores its synapses at netx's ``num_weight_bits``
  (:func:`toolchain.simulators.physical.netx_weight_bits`).

``mask`` is the layer's non-zero weight pattern in torch's layout (the chip skips zero weights, so a
synaptic op is counted only on a non-zero weight: :mod:`toolchain.hardware.activity`).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from ..errors import ConfigError
from ..ir import (
    Conv,
    ConvTranspose,
    Dense,
    Flatten,
    Input,
    MultiThreshold,
    Network,
    Pair,
    QuantizedNetwork,
    Shape,
    StockNetwork,
    StockSynapses,
    SumPool,
    SynapticLayer,
)
from ..simulators.physical import netx_weight_bits
from ..vocab import Lowering

ChipKind = Literal["input", "static", "conv", "convT", "pool", "dense"]
SPATIAL: tuple[ChipKind, ...] = ("conv", "convT", "pool")


@dataclass(frozen=True)
class ChipPart:
    """One synaptic input: ``channels`` source channels (a dense layer: the flattened source neurons), each
    source neuron sending ``units`` axons (compartments), at weight channel ``offset``, ``delay`` extra steps."""

    source: str
    channels: int
    units: int
    offset: int = 0
    delay: int = 0
    in_hw: tuple[int, int] = (1, 1)

    @property
    def axons(self) -> int:
        """Source units per source pixel (dense: all source units)."""
        return self.channels * self.units


@dataclass(frozen=True, eq=False)
class ChipLayer:
    """A neuron population on the chip and the synapses into it (see the module docstring)."""

    name: str
    kind: ChipKind
    shape: Shape
    units: int = 1
    emits: bool = True
    parts: tuple[ChipPart, ...] = ()
    kernel: Pair = (1, 1)
    stride: Pair = (1, 1)
    padding: Pair = (0, 0)
    output_padding: Pair = (0, 0)
    groups: int = 1
    weight_bits: int | None = None
    mask: np.ndarray | None = field(default=None, repr=False)

    @property
    def neurons(self) -> int:
        c, h, w = self.shape
        return c * h * w

    @property
    def compartments(self) -> int:
        return self.neurons * self.units

    @property
    def in_units(self) -> int:
        """Source units per source pixel over all parts (a dense layer: every source unit)."""
        return sum(p.axons for p in self.parts)

    @property
    def depthwise(self) -> bool:
        """Channel c reads source channel c only: pools and depthwise convolutions."""
        in_channels = sum(p.channels for p in self.parts)
        return self.kind == "pool" or (self.groups > 1 and self.groups == self.shape[0] == in_channels)

    @property
    def taps(self) -> int:
        return self.kernel[0] * self.kernel[1]


def _mask(weight: np.ndarray) -> np.ndarray:
    return np.asarray(weight) != 0


def _units(layer: object, lowering: Lowering) -> int:
    """Compartments (= emitted axons) per neuron of a layer: N for an MT neuron under the compartments lowering."""
    neuron = getattr(layer, "neuron", None)
    return neuron.compartments if isinstance(neuron, MultiThreshold) and lowering == "compartments" else 1


def _quantized_layers(network: QuantizedNetwork, lowering: Lowering) -> list[ChipLayer]:
    out = []
    for layer in network.synaptic_layers:
        base = ChipLayer(layer.name, "static", layer.shape, units=_units(layer, lowering),
                         emits=isinstance(layer.neuron, MultiThreshold))
        if isinstance(layer, Conv) and layer.static:
            out.append(replace(base, kernel=layer.kernel, stride=layer.stride, padding=layer.padding))
            continue
        parts = tuple(ChipPart(src.name, src.shape[0], _units(src, lowering), offset, delay,
                               (src.shape[1], src.shape[2])) for src, delay, offset in network.parts(layer))
        mask = _mask(np.asarray(layer.synapses.weight))
        if isinstance(layer, SumPool):
            out.append(replace(base, kind="pool", parts=parts, kernel=layer.kernel, stride=layer.kernel,
                               mask=np.ones((layer.shape[0], 1) + layer.kernel, bool)))
        elif isinstance(layer, ConvTranspose):
            out.append(replace(base, kind="convT", parts=parts, kernel=layer.kernel, stride=layer.stride,
                               padding=layer.padding, output_padding=layer.output_padding, groups=layer.groups,
                               mask=mask))
        elif isinstance(layer, Conv):
            out.append(replace(base, kind="conv", parts=parts, kernel=layer.kernel, stride=layer.stride,
                               padding=layer.padding, groups=layer.groups, mask=mask))
        else:
            raise ConfigError(f"layer {layer.name}: a {layer.kind} layer has no chip model")
    return out


def _stock_layers(network: StockNetwork) -> list[ChipLayer]:
    out: list[ChipLayer] = []
    for layer in network.neuron_layers:
        if isinstance(layer, Input):
            out.append(ChipLayer(layer.name, "input", layer.shape))
            continue
        assert isinstance(layer, SynapticLayer) and isinstance(layer.synapses, StockSynapses)
        src = network[layer.source_name]
        if isinstance(src, Flatten):
            src = network[src.inputs[0]]
        weight = np.asarray(layer.synapses.weight)
        if isinstance(layer, Dense):
            part = ChipPart(src.name, src.neurons, 1, 0, 0, (1, 1))
            bits = netx_weight_bits(weight).num_weight_bits if weight.any() else 1
            out.append(ChipLayer(layer.name, "dense", layer.shape, parts=(part,), weight_bits=bits,
                                 mask=_mask(weight)))
        elif isinstance(layer, Conv):
            part = ChipPart(src.name, src.shape[0], 1, 0, 0, (src.shape[1], src.shape[2]))
            out.append(ChipLayer(layer.name, "conv", layer.shape, parts=(part,), kernel=layer.kernel,
                                 stride=layer.stride, padding=layer.padding, mask=_mask(weight)))
        else:
            raise ConfigError(f"layer {layer.name}: a {layer.kind} layer has no chip model")
    return out


def chip_layers(network: Network, lowering: Lowering | None = None) -> list[ChipLayer]:
    """The network's neuron populations as the chip holds them (stock networks: ``lowering`` is ignored)."""
    if isinstance(network, StockNetwork):
        return _stock_layers(network)
    if isinstance(network, QuantizedNetwork):
        return _quantized_layers(network, lowering or network.lowering)
    raise ConfigError(f"the chip model covers quantized and stock netx networks, got a {type(network).__name__}")

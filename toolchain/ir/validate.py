"""The one semantic check of a quantized network, used by the quantizer, the ``.net`` writer and reader.

Everything that must hold for a network to mean what this toolchain's simulators and Loihi assume:
wiring (the input first, one source per synaptic layer, spiking sources, the static-coding rule),
shapes (each layer's shape follows from its source and geometry; weights fit both), latency
(depths and concat delays follow from the wiring, delays within Loihi's field) and every value
within its Loihi fixed-point range. The first violation raises ``error`` (a
:class:`~toolchain.errors.ToolchainError` subclass chosen by the caller) with one line naming the
layer index, its name and the field: ``layer 4 (encoders.1.conv1): 'depth': is 5, expected 4 ...``.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import NoReturn

import numpy as np

from ..errors import ExportError, ToolchainError
from ..vocab import LOWERINGS
from .limits import BIAS_EXP_MAX, BIAS_MANT_BITS, HOST_EXP_MIN, THRESHOLD_MANT_BITS, THRESHOLD_SHIFT, WEIGHT_EXP_MAX
from .network import NetworkMeta, QuantizedNetwork
from .nodes import (
    Accumulator,
    Concat,
    Conv,
    ConvTranspose,
    FixedSynapses,
    Input,
    Layer,
    MultiThreshold,
    SumPool,
    SynapticLayer,
    weight_shape,
)
from .shapes import MAX_SYNAPTIC_DELAY, output_hw


class NetworkChecker:
    """The checks of :func:`validate`, layer by layer: ``add`` checks a layer against the ones before it
    (so a reader can check each layer as it parses it), ``finish`` the network as a whole.

    ``count`` is the number of layers the network will have (the last must be the accumulator).
    """

    def __init__(self, meta: NetworkMeta, count: int, error: type[ToolchainError] = ExportError) -> None:
        self.error, self.count = error, count
        self.layers: list[Layer] = []
        self.by_name: dict[str, Layer] = {}
        self.index: dict[str, int] = {}
        bits = meta.weight_bits
        if not isinstance(bits, int) or isinstance(bits, bool) or not 2 <= bits <= 8:
            raise error(f"meta: weight_bits must be an integer in 2..8, got {bits!r}")
        if meta.lowering is not None and meta.lowering not in LOWERINGS:
            raise error(f"meta: lowering must be one of {LOWERINGS}, got {meta.lowering!r}")
        if count < 2:
            raise error(f"a network needs an input and at least one layer, got {count} layer(s)")
        self.weight_bits = bits

    def add(self, layer: Layer) -> None:
        i = len(self.layers)
        self.index[layer.name] = i
        if isinstance(layer, Input):
            self.input(i, layer)
        elif i == 0:
            self.fail(layer, "type", "layer 0, and only layer 0, must be the input layer")
        elif isinstance(layer, Concat):
            self.concat(layer)
        elif isinstance(layer, SynapticLayer):
            self.synaptic(i, layer, self.weight_bits)
        else:
            self.fail(layer, "type", f"a {layer.kind} layer cannot be part of this toolchain's networks")
        self.layers.append(layer)
        self.by_name[layer.name] = layer

    def finish(self) -> None:
        last = self.layers[-1]
        if not (isinstance(last, SynapticLayer) and isinstance(last.neuron, Accumulator)):
            raise self.error(f"layer {len(self.layers) - 1} ({last.name}): the last layer must be the ACC output "
                             f"accumulator")

    def fail(self, layer: Layer, key: str, message: str) -> NoReturn:
        raise self.error(f"layer {self.index[layer.name]} ({layer.name}): '{key}': {message}")

    def in_range(self, layer: Layer, key: str, values: np.ndarray | Sequence[int], lo: int, hi: int,
                 what: str) -> None:
        array = np.asarray(values)
        if array.size and array.dtype.kind not in "iu":
            self.fail(layer, key, f"must hold integers, got dtype {array.dtype}")
        if array.size and (int(array.min()) < lo or int(array.max()) > hi):
            bad = int(array.min()) if int(array.min()) < lo else int(array.max())
            self.fail(layer, key, f"{what} {bad} is outside the range {lo}..{hi}")

    def thresholds(self, layer: Layer, thresholds: tuple[float, ...]) -> None:
        values = [int(t) for t in thresholds]
        if values != list(thresholds):
            self.fail(layer, "thresholds", f"must be integers in a quantized network, got {list(thresholds)}")
        self.in_range(layer, "thresholds", values, 1, (2 ** THRESHOLD_MANT_BITS - 1) << THRESHOLD_SHIFT,
                      f"threshold (17-bit mantissa << {THRESHOLD_SHIFT})")
        if any(a <= b for a, b in zip(values, values[1:])):
            self.fail(layer, "thresholds", f"must be strictly decreasing, got {values}")
        if any(t % values[-1] for t in values):
            self.fail(layer, "thresholds", f"must be integer multiples of the smallest threshold, got {values}")
        if any(t % (1 << THRESHOLD_SHIFT) for t in values):
            self.fail(layer, "thresholds", f"must be multiples of {1 << THRESHOLD_SHIFT} (a mantissa << "
                                           f"{THRESHOLD_SHIFT}), got {values}")

    def input(self, i: int, layer: Input) -> None:
        if i != 0:
            self.fail(layer, "type", "layer 0, and only layer 0, must be the input layer")
        if layer.inputs:
            self.fail(layer, "inputs", "the input layer has no inputs")
        if layer.depth != -1:
            self.fail(layer, "depth", f"the input layer's depth is -1, got {layer.depth}")

    def concat(self, layer: Concat) -> None:
        if not layer.inputs:
            self.fail(layer, "inputs", "a concat needs at least one part")
        parts = [self.by_name[name] for name in layer.inputs]
        for part in parts:
            if not isinstance(part, SynapticLayer) or not isinstance(part.neuron, MultiThreshold):
                self.fail(layer, "inputs", f"part {part.name} is not a spiking (MT) layer")
            if part.shape[1:] != layer.shape[1:]:
                self.fail(layer, "shape", f"part {part.name} is {part.shape[1]}x{part.shape[2]}, the concat "
                                          f"{layer.shape[1]}x{layer.shape[2]}")
        if sum(p.shape[0] for p in parts) != layer.shape[0]:
            self.fail(layer, "shape", f"concat has {layer.shape[0]} channels, "
                                      f"its parts {sum(p.shape[0] for p in parts)}")
        if len(layer.delays) != len(parts):
            self.fail(layer, "delays", f"needs one delay per part ({len(parts)}), got {len(layer.delays)}")
        self.in_range(layer, "delays", list(layer.delays), 0, MAX_SYNAPTIC_DELAY - 1, "delay")
        depth = max(part.depth for part in parts)
        if layer.depth != depth:
            self.fail(layer, "depth", f"is {layer.depth}, expected {depth} (the deepest part)")
        expected = [depth - part.depth for part in parts]
        if list(layer.delays) != expected:
            self.fail(layer, "delays", f"is {list(layer.delays)}, expected {expected} (aligning the parts' depths)")

    def synaptic(self, i: int, layer: SynapticLayer, weight_bits: int) -> None:
        if len(layer.inputs) != 1:
            self.fail(layer, "inputs", f"a {layer.kind} layer has exactly one input, got {len(layer.inputs)}")
        src = self.by_name[layer.inputs[0]]
        static = isinstance(layer, Conv) and layer.static
        if isinstance(src, Input):
            if not static:
                self.fail(layer, "static", "a layer fed by the input must be a static conv (static coding)")
        elif static:
            self.fail(layer, "static", "only a conv fed directly by the input layer can be static")
        elif isinstance(src, Concat):
            if isinstance(layer, SumPool):
                self.fail(layer, "inputs", "a pool layer cannot be fed by a concat")
        elif not isinstance(src, SynapticLayer) or not isinstance(src.neuron, MultiThreshold):
            self.fail(layer, "inputs", f"source {src.name} is not a spiking (MT) layer")
        if not isinstance(layer, (Conv, ConvTranspose, SumPool)):
            self.fail(layer, "type", f"a {layer.kind} layer cannot be part of this toolchain's networks")
        syn = layer.synapses
        assert isinstance(syn, FixedSynapses)
        c_out, h, w = layer.shape
        expected_hw = output_hw(layer, (src.shape[1], src.shape[2]))
        if expected_hw != (h, w):
            self.fail(layer, "shape", f"{h}x{w} does not follow from the {src.shape[1]}x{src.shape[2]} input of "
                                      f"{src.name} (expected {expected_hw[0]}x{expected_hw[1]})")
        if isinstance(layer, ConvTranspose) and any(o >= s for o, s in zip(layer.output_padding, layer.stride)):
            self.fail(layer, "output_padding", f"{layer.output_padding} must be smaller than the stride {layer.stride}")
        groups = getattr(layer, "groups", 1)
        if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1 \
                or src.shape[0] % groups or c_out % groups:
            self.fail(layer, "groups", f"{groups!r} must be a positive integer dividing the {src.shape[0]} input "
                                       f"and {c_out} output channels")
        if groups > 1 and isinstance(src, Concat):
            self.fail(layer, "groups", "a grouped convolution cannot be fed by a concat")
        expected = weight_shape(layer, src.shape[0])
        if tuple(syn.weight.shape) != expected:
            self.fail(layer, "weight", f"has shape {tuple(syn.weight.shape)}, expected {expected}")
        limit = 2 ** (weight_bits - 1)
        self.in_range(layer, "weight", syn.weight, -limit, limit - 1, "weight mantissa")
        parts = 1 if static or not isinstance(src, Concat) else len(src.inputs)
        if len(syn.weight_exp) != parts:
            self.fail(layer, "weight_exp", f"needs one exponent per input part ({parts}), got {len(syn.weight_exp)}")
        self.in_range(layer, "weight_exp", list(syn.weight_exp), HOST_EXP_MIN if static else 0, WEIGHT_EXP_MAX,
                      "weight exponent")
        for key, values in (("bias", syn.bias), ("bias_exp", syn.bias_exp)):
            if tuple(np.shape(values)) != (c_out,):
                self.fail(layer, key, f"has shape {tuple(np.shape(values))}, expected ({c_out},)")
        bias_limit = 2 ** (BIAS_MANT_BITS - 1)
        self.in_range(layer, "bias", syn.bias, -bias_limit, bias_limit - 1, "bias mantissa")
        self.in_range(layer, "bias_exp", syn.bias_exp, 0, BIAS_EXP_MAX, "bias exponent")
        last = i == self.count - 1
        if isinstance(layer.neuron, Accumulator) != last:
            self.fail(layer, "neuron", "the last layer must be the ACC output accumulator, and only it")
        if isinstance(layer.neuron, MultiThreshold):
            self.thresholds(layer, layer.neuron.thresholds)
        elif not isinstance(layer.neuron, Accumulator):
            self.fail(layer, "neuron", f"a {type(layer.neuron).__name__} neuron cannot be part of this toolchain's "
                                       f"networks (MT or ACC)")
        depth = 0 if static else src.depth + 1
        if layer.depth != depth:
            self.fail(layer, "depth", f"is {layer.depth}, expected {depth} (one step after {src.name})")
        if not syn.unit > 0:
            self.fail(layer, "unit", f"a neuron layer needs a positive membrane unit, got {syn.unit}")


def validate(network: QuantizedNetwork, error: type[ToolchainError] = ExportError) -> QuantizedNetwork:
    """Check a quantized network (see the module docstring); returns it unchanged, or raises ``error``."""
    check = NetworkChecker(network.meta, len(network.layers), error)
    for layer in network.layers:
        check.add(layer)
    check.finish()
    return network

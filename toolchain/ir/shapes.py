"""Shapes and latency of a layer graph: output sizes, resizing to another input, depths and delays."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TypeVar

from ..errors import ExportError
from .network import Network
from .nodes import Concat, Conv, ConvTranspose, Dense, Flatten, Input, Layer, Pair, Shape, SumPool, SynapticLayer

MAX_SYNAPTIC_DELAY = 62          # Loihi's synaptic delay field; lava-dl netx clamps at 62
N = TypeVar("N", bound=Network)


def output_hw(layer: Layer, in_hw: Pair) -> Pair:
    """The (H, W) a conv / convT / pool layer produces from an (H, W) input (torch's formulas)."""
    def side(axis: int) -> int:
        n = in_hw[axis]
        if isinstance(layer, Conv):
            return (n + 2 * layer.padding[axis] - layer.kernel[axis]) // layer.stride[axis] + 1
        if isinstance(layer, ConvTranspose):
            return ((n - 1) * layer.stride[axis] - 2 * layer.padding[axis] + layer.kernel[axis]
                    + layer.output_padding[axis])
        if isinstance(layer, SumPool):                     # avg_pool2d(kernel), stride = kernel, floor
            return n // layer.kernel[axis]
        raise ValueError(f"no spatial output rule for a {layer.kind} layer")
    return side(0), side(1)


def derived_shape(layer: Layer, sources: list[Shape]) -> Shape:
    """The shape a layer must have given its sources' shapes (channels: the layer's own for synaptic layers)."""
    if isinstance(layer, Concat):
        if len({s[1:] for s in sources}) != 1:
            raise ExportError(f"layer {layer.name}: parts of sizes {[s[1:] for s in sources]} cannot be concatenated")
        return (sum(s[0] for s in sources), *sources[0][1:])
    (src,) = sources
    if isinstance(layer, Flatten):
        return (src[0] * src[1] * src[2], 1, 1)
    if isinstance(layer, Dense):
        return layer.shape
    return (layer.shape[0], *output_hw(layer, (src[1], src[2])))


def resize(network: N, hw: Sequence[int]) -> N:
    """The same network for another input size: every layer's shape re-derived (weights shared).

    Convolutional networks are size-agnostic; a U-Net needs sides that are multiples of
    2**depth, which the caller ensures (an inconsistent concat raises :class:`ExportError`).
    """
    height, width = (int(side) for side in hw)
    shapes: dict[str, Shape] = {}
    layers: list[Layer] = []
    for layer in network.layers:
        if isinstance(layer, Input):
            shape: Shape = (layer.shape[0], height, width)
        else:
            try:
                shape = derived_shape(layer, [shapes[s] for s in layer.inputs])
            except ExportError as exc:
                raise ExportError(f"{exc} for a {height}x{width} input") from exc
        shapes[layer.name] = shape
        layers.append(replace(layer, shape=shape))
    return network.with_layers(layers)


def assign_depths(network: N, max_delay: int = MAX_SYNAPTIC_DELAY) -> N:
    """Compute every layer's depth and the concat delays that align its parts (returns a copy).

    depth(static conv) = 0; depth(input) = -1; depth(concat) = max depth of its parts, with
    delays[i] = depth(concat) - depth(part i); depth(other) = depth(its source) + 1.
    """
    depths: dict[str, int] = {}
    layers: list[Layer] = []
    for layer in network.layers:
        if isinstance(layer, Input):
            new: Layer = replace(layer, depth=-1)
        elif isinstance(layer, Concat):
            part_depths = [depths[s] for s in layer.inputs]
            depth = max(part_depths)
            delays = tuple(depth - d for d in part_depths)
            for src, delay in zip(layer.inputs, delays):
                if delay + 1 > max_delay:
                    raise ExportError(f"layer {layer.name}: input {src} needs a synaptic delay of {delay + 1} "
                                      f"steps, beyond the hardware's {max_delay}; use a shallower U-Net")
            new = replace(layer, depth=depth, delays=delays)
        elif isinstance(layer, Conv) and layer.static:
            new = replace(layer, depth=0)
        else:
            new = replace(layer, depth=depths[layer.inputs[0]] + (1 if isinstance(layer, SynapticLayer) else 0))
        depths[layer.name] = new.depth
        layers.append(new)
    return network.with_layers(layers)

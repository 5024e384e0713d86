"""The exact integer kernels both simulators and the Lava backend's process models use.

Synaptic currents of integer payloads with integer mantissas are computed with torch's float
convolutions, exactly: in float32, with the sum split into input-channel chunks or weight digits
where a layer's bounds could exceed 2**24 (:mod:`toolchain.simulators.exact`: every partial sum is
then an exact float32 integer), and in float64 only where no split fits; results are cast to int64.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from ..ir import Conv, ConvTranspose, FixedSynapses, Pair, SpatialLayer, SumPool, SynapticLayer
from ..ir.limits import IMAGE_LEVELS, INPUT_LEVEL_MAX, INPUT_LEVEL_MIN
from ..lowering.fixed_point import Overflow, bias_value, round_half_away, scale_by_exponent, to_bias_format
from .exact import exact_dtype, plan_synapse  # noqa: F401  (exact_dtype: re-exported)


@dataclass(frozen=True)
class SynapseOp:
    """The geometry of a spatial synapse (what :func:`synapse_current` needs of a layer; picklable,
    without weights, so that a Lava process can carry it)."""

    kind: Literal["conv", "convT", "pool"]
    kernel: Pair
    stride: Pair = (1, 1)
    padding: Pair = (0, 0)
    output_padding: Pair = (0, 0)
    groups: int = 1

    @classmethod
    def of(cls, layer: SpatialLayer) -> SynapseOp:
        if isinstance(layer, SumPool):
            return cls("pool", layer.kernel, layer.kernel)
        if isinstance(layer, ConvTranspose):
            return cls("convT", layer.kernel, layer.stride, layer.padding, layer.output_padding, layer.groups)
        assert isinstance(layer, Conv)
        return cls("conv", layer.kernel, layer.stride, layer.padding, groups=layer.groups)


def synapse_current(op: SynapseOp, x: torch.Tensor, weight: np.ndarray, payload_max: int,
                    float64: bool = False) -> torch.Tensor:
    """conv / convT / sum-pool of integer payloads ``x`` (N, C, H, W), |x| <= ``payload_max``, with
    integer mantissas ``weight``, exactly, as int64 (:func:`plan_synapse`; a caller that runs the same
    synapse every step keeps the plan instead). ``float64`` forces one float64 convolution (the same
    integers, slower; for tests of the float32 plans)."""
    return plan_synapse(op, weight, payload_max, float64)(x)


def fixed(layer: SynapticLayer) -> FixedSynapses:
    """The layer's fixed-point parameters (a quantized network's layers all have them)."""
    assert isinstance(layer.synapses, FixedSynapses), f"layer {layer.name} is not quantized"
    return layer.synapses


def part_weight(layer: SynapticLayer, offset: int, count: int) -> np.ndarray:
    """The mantissas of ``layer`` fed by input channels [offset, offset + count) (one concat part)."""
    weight = fixed(layer).weight
    if isinstance(layer, SumPool):
        return weight
    if isinstance(layer, ConvTranspose):
        return weight[offset:offset + count]
    return weight[:, offset:offset + count]


def bias_current(layer: SynapticLayer) -> torch.Tensor:
    """The integer current the layer's bias adds every step, (1, C, 1, 1) int64."""
    syn = fixed(layer)
    return torch.from_numpy(bias_value(syn.bias, syn.bias_exp)).view(1, -1, 1, 1)


def image_levels(images: np.ndarray) -> np.ndarray:
    """Float images -> integer pixel levels round(255 x), halves away from zero, saturated to 10-bit signed.

    An 8-bit image maps to 0..255 exactly; the signed headroom keeps inputs with unclipped noise
    (the usual denoising benchmark protocol) from being clipped to [0, 1].
    """
    levels = round_half_away(np.asarray(images, dtype=np.float64) * IMAGE_LEVELS)
    return np.clip(levels, INPUT_LEVEL_MIN, INPUT_LEVEL_MAX).astype(np.int64)


def static_current(layer: Conv, levels: np.ndarray, overflow: Overflow, float64: bool = False) -> torch.Tensor:
    """The first layer's constant current conv(x, m) * 2**e + bias, rounded into the bias format
    (``float64``: the convolution in float64, as :func:`synapse_current`)."""
    syn = fixed(layer)
    (exp,) = syn.weight_exp
    conv = synapse_current(SynapseOp.of(layer), torch.from_numpy(levels), syn.weight, -INPUT_LEVEL_MIN,
                           float64).numpy()
    raw = scale_by_exponent(conv, exp) + bias_value(syn.bias, syn.bias_exp).reshape(1, -1, 1, 1)
    mant, bexp = to_bias_format(raw, overflow)
    return torch.from_numpy(bias_value(mant, bexp))

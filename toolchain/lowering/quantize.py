"""Quantize a float layer graph to Loihi fixed point.

Units. Every neuron layer l has an integer membrane unit U_l (integer units per 1.0 of the float
SNN). MT layers use U_l = theta_unit / theta_N, so the smallest threshold is ``theta_unit`` (raised by
powers of two where a layer's weights are small, see :func:`_choose_unit`) and theta_i becomes
r_i * theta_N * U_l (r_i = theta_i / theta_N). A source spike payload q (units of the
source's smallest threshold; 8-bit pixel levels for the static first layer) is worth
v_src = theta_N(src) (or 1/255), so a synapse from part p carries

    W_int = W * v_src * U_l ~= m * 2**e_p     (m signed ``weight_bits``, one e per input part)
    b_int = b * U_l          ~= m_b * 2**e_b  (13-bit mantissa, exponent 0..7 per channel)

The output accumulator uses the largest power-of-two unit for which T steps of the calibrated
output peak stay below 2**22 (half the 24-bit range). The static first layer runs on the host
and may use negative weight exponents (a rounding right shift). Values that do not fit saturate and
are reported per layer; with ``strict`` they raise :class:`~toolchain.errors.ExportError`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import ExportError
from ..ir import (
    Accumulator,
    Conv,
    ConvTranspose,
    FixedSynapses,
    FloatNetwork,
    FloatSynapses,
    Input,
    Layer,
    MultiThreshold,
    NetworkMeta,
    QuantizedNetwork,
    SumPool,
    SynapticLayer,
    validate,
)
from ..ir.limits import (
    BIAS_EXP_MAX,
    BIAS_MANT_BITS,
    HOST_EXP_MIN,
    IMAGE_LEVELS,
    INPUT_LEVEL_MAX,
    INPUT_LEVEL_MIN,
    THRESHOLD_MANT_BITS,
    THRESHOLD_SHIFT,
    V_LIMIT,
    WEIGHT_EXP_MAX,
)
from .fixed_point import Overflow, bias_value, quantize_weights, to_bias_format

BIAS_LIMIT = (2 ** (BIAS_MANT_BITS - 1) - 1) * 2 ** BIAS_EXP_MAX


@dataclass(frozen=True)
class QuantSettings:
    """Fixed-point choices: weight mantissa bits, the smallest threshold in membrane units, the T the
    output accumulator is sized for, and whether overflows are errors (``strict``) or saturate."""

    weight_bits: int = 8
    theta_unit: int = 4096
    steps: int = 10
    strict: bool = False

    def __post_init__(self) -> None:
        if not 2 <= self.weight_bits <= 8:
            raise ExportError(f"weight bits must be in 2..8 (Loihi 2 mantissas), got {self.weight_bits}")
        if self.theta_unit % (1 << THRESHOLD_SHIFT) or self.theta_unit <= 0:
            raise ExportError(f"theta unit must be a positive multiple of {1 << THRESHOLD_SHIFT}, "
                              f"got {self.theta_unit}")


@dataclass
class LayerQuantReport:
    """What quantization did to one layer (the per-layer table of the export verb)."""

    name: str
    unit: float
    weight_exp: tuple[int, ...]
    weight_error: float
    bias_error: float
    weight_overflow: Overflow = field(default_factory=Overflow)
    bias_overflow: Overflow = field(default_factory=Overflow)

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.name, "unit": self.unit, "weight_exp": list(self.weight_exp),
                "weight_rel_error": self.weight_error, "bias_rel_error": self.bias_error,
                "weight_overflow": self.weight_overflow.to_dict(), "bias_overflow": self.bias_overflow.to_dict()}


def _rel_error(exact: np.ndarray, approx: np.ndarray) -> float:
    norm = float(np.linalg.norm(exact))
    return float(np.linalg.norm(approx - exact)) / norm if norm else 0.0


def _payload_value(layer: Layer) -> float:
    """The float value of one payload unit of a source layer (for the static layer: one pixel level)."""
    if isinstance(layer, Input):
        return 1.0 / IMAGE_LEVELS
    assert isinstance(layer, SynapticLayer) and isinstance(layer.neuron, MultiThreshold)
    return float(layer.neuron.thresholds[-1])


def _float(layer: SynapticLayer) -> FloatSynapses:
    assert isinstance(layer.synapses, FloatSynapses)
    return layer.synapses


def _parts(network: FloatNetwork, layer: SynapticLayer) -> list[tuple[Layer, int, int]]:
    return [(network.input, 0, 0)] if isinstance(layer, Conv) and layer.static else network.parts(layer)


def _integer_thresholds(layer: SynapticLayer, unit: float) -> tuple[int, ...]:
    assert isinstance(layer.neuron, MultiThreshold)
    smallest = int(round(layer.neuron.thresholds[-1] * unit))
    ints = tuple(r * smallest for r in layer.neuron.spike_weights())
    for value in ints:
        if (value >> THRESHOLD_SHIFT) >= 2 ** THRESHOLD_MANT_BITS:
            raise ExportError(f"layer {layer.name}: threshold {value} exceeds the 17-bit mantissa << 6")
    return ints


def _weight_peak(network: FloatNetwork, layer: SynapticLayer) -> float:
    """max |W * v_src| over the layer's synapses: the weight an integer unit of 1 would carry."""
    if isinstance(layer, SumPool):
        return abs(layer.pool_weight) * _payload_value(network[layer.source_name])
    weight = _float(layer).weight
    return max(float(np.abs(weight[part_index(layer, off, src.shape[0])]).max(initial=0.0)) * _payload_value(src)
               for src, _, off in _parts(network, layer))


def _choose_unit(network: FloatNetwork, layer: SynapticLayer, settings: QuantSettings, output_abs_max: float) -> float:
    """The layer's membrane unit U_l, a power of two times the base unit.

    MT: base theta_unit / theta_N, raised by factors of 2 while the largest weight mantissa would use
    fewer than weight_bits - 1 bits and the top threshold stays within 2**20 (1/8 of the membrane
    range). ACC: the largest power of two for which T steps of the calibrated output peak stay
    below 2**22. Both never beyond what the largest weight and bias can represent.
    """
    peak = _weight_peak(network, layer)
    weight_cap = (2 ** (settings.weight_bits - 1) - 1) * 2 ** WEIGHT_EXP_MAX / max(peak, 1e-30)
    bias = _float(layer).bias
    bias_peak = float(np.abs(bias).max(initial=0.0)) if bias is not None else 0.0
    cap = min(weight_cap, BIAS_LIMIT / max(bias_peak, 1e-30))
    if isinstance(layer.neuron, Accumulator):
        budget = 2 ** 22 / max(output_abs_max * settings.steps, 1e-12)
        return float(2 ** math.floor(math.log2(min(budget, cap))))
    assert isinstance(layer.neuron, MultiThreshold)
    smallest = layer.neuron.thresholds[-1]
    top_ratio = layer.neuron.spike_weights()[0]
    unit = settings.theta_unit / smallest
    target = 2 ** (settings.weight_bits - 2)
    while peak * unit < target and 2 * unit <= cap and top_ratio * 2 * unit * smallest <= 2 ** 20:
        unit *= 2
    return unit


def _quantize_layer(network: FloatNetwork, layer: SynapticLayer, settings: QuantSettings,
                    output_abs_max: float) -> tuple[SynapticLayer, LayerQuantReport]:
    unit = _choose_unit(network, layer, settings, output_abs_max)
    neuron = (MultiThreshold(_integer_thresholds(layer, unit)) if isinstance(layer.neuron, MultiThreshold)
              else Accumulator())
    w_over, b_over = Overflow(), Overflow()
    synapses = _float(layer)
    if isinstance(layer, SumPool):
        exact = np.array([layer.pool_weight * _payload_value(network[layer.source_name]) * unit])
        mant, exp = quantize_weights(exact, settings.weight_bits, w_over)
        exps: tuple[int, ...] = (exp,)
        approx, weight = mant * 2.0 ** exp, mant
    else:
        static = isinstance(layer, Conv) and layer.static
        weight = np.zeros(synapses.weight.shape, dtype=np.int32)
        exact = np.zeros(synapses.weight.shape)
        approx = np.zeros(synapses.weight.shape)
        exp_list = []
        for src, _, offset in _parts(network, layer):
            idx = part_index(layer, offset, src.shape[0])
            exact[idx] = synapses.weight[idx] * _payload_value(src) * unit
            mant, exp = quantize_weights(exact[idx], settings.weight_bits, w_over,
                                         exp_min=HOST_EXP_MIN if static else 0)
            weight[idx] = mant
            approx[idx] = mant * 2.0 ** exp
            exp_list.append(exp)
        exps = tuple(exp_list)
    bias_exact = (synapses.bias if synapses.bias is not None else np.zeros(layer.shape[0])) * unit
    bias_mant, bias_exp = to_bias_format(np.rint(bias_exact).astype(np.int64), b_over)
    report = LayerQuantReport(layer.name, unit, exps, _rel_error(exact, approx),
                              _rel_error(bias_exact, bias_value(bias_mant, bias_exp).astype(float)), w_over, b_over)
    if settings.strict and (w_over.count or b_over.count):
        raise ExportError(f"layer {layer.name}: {w_over.count} weights and {b_over.count} biases overflow "
                          f"Loihi's formats (worst weight {w_over.worst:g}, bias {b_over.worst:g}); "
                          f"retry without `strict` to saturate them")
    fixed = FixedSynapses(weight=weight, weight_exp=exps, bias=bias_mant, bias_exp=bias_exp, unit=unit)
    return replace(layer, neuron=neuron, synapses=fixed), report


def quantize(network: FloatNetwork, meta: NetworkMeta, settings: QuantSettings,
             output_abs_max: float) -> tuple[QuantizedNetwork, list[LayerQuantReport]]:
    """The integer network and a per-layer report; see the module docstring for the arithmetic."""
    if not isinstance(network, FloatNetwork):
        raise ExportError(f"quantize takes a float network, got a {type(network).__name__}")
    layers: list[Layer] = []
    reports = []
    for layer in network:
        if isinstance(layer, SynapticLayer):
            layer, report = _quantize_layer(network, layer, settings, output_abs_max)
            reports.append(report)
        layers.append(layer)
    meta = meta.replace(steps=settings.steps, theta_unit=settings.theta_unit, weight_bits=settings.weight_bits,
                        v_limit=V_LIMIT, input_levels=IMAGE_LEVELS,
                        input_level_range=(INPUT_LEVEL_MIN, INPUT_LEVEL_MAX))
    return validate(QuantizedNetwork(tuple(layers), meta)), reports


def part_index(layer: SynapticLayer, offset: int, count: int) -> tuple[slice, ...]:
    """Index of the weights fed by input channels [offset, offset + count)."""
    if isinstance(layer, ConvTranspose):              # (in, out, k, k)
        return (slice(offset, offset + count),)
    return (slice(None), slice(offset, offset + count))

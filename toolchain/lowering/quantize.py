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

from toolchain.errors import ExportError
from toolchain.lowering.fixed_point import (BIAS_EXP_MAX, BIAS_MANT_BITS, HOST_EXP_MIN, IMAGE_LEVELS, INPUT_LEVEL_MAX,
                          INPUT_LEVEL_MIN, THRESHOLD_MANT_BITS,
                          THRESHOLD_SHIFT, V_LIMIT, WEIGHT_EXP_MAX, Overflow, bias_value, quantize_weights,
                          to_bias_format)
from toolchain.ir.graph import Layer, Network, NeuronSpec

BIAS_LIMIT = (2 ** (BIAS_MANT_BITS - 1) - 1) * 2 ** BIAS_EXP_MAX


@dataclass(frozen=True)
class QuantSettings:
    weight_bits: int = 8
    theta_unit: int = 4096
    steps: int = 10
    strict: bool = False

    def __post_init__(self) -> None:
        if not 2 <= self.weight_bits <= 8:
            raise ExportError(f"weight bits must be in 2..8 (Loihi 2 mantissas), got {self.weight_bits}")
        if self.theta_unit % (1 << THRESHOLD_SHIFT) or self.theta_unit <= 0:
            raise ExportError(f"theta unit must be a positive multiple of {1 << THRESHOLD_SHIFT}, got {self.theta_unit}")


@dataclass
class LayerQuantReport:
    """What quantization did to one layer (the per-layer table of ``cli.py export``)."""

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


def _payload_value(network: Network, layer: Layer) -> float:
    """The float value of one payload unit of a source layer (for the static layer: one pixel level)."""
    if layer.kind == "input":
        return 1.0 / IMAGE_LEVELS
    assert layer.neuron is not None and layer.neuron.kind == "MT"
    return float(layer.neuron.thresholds[-1])


def _integer_thresholds(layer: Layer, unit: float) -> tuple[int, ...]:
    assert layer.neuron is not None
    smallest = int(round(layer.neuron.thresholds[-1] * unit))
    ints = tuple(r * smallest for r in layer.neuron.spike_weights())
    for value in ints:
        if (value >> THRESHOLD_SHIFT) >= 2 ** THRESHOLD_MANT_BITS:
            raise ExportError(f"layer {layer.name}: threshold {value} exceeds the 17-bit mantissa << 6")
    return ints


def _weight_peak(network: Network, layer: Layer) -> float:
    """max |W * v_src| over the layer's synapses: the weight an integer unit of 1 would carry."""
    if layer.kind == "pool":
        (src,) = [network[s] for s in layer.inputs]
        return abs(layer.pool_weight) * _payload_value(network, src)
    assert layer.weight is not None
    parts = [(network.input, 0, 0)] if layer.static else network.parts(layer)
    return max(float(np.abs(layer.weight[_part_index(layer, off, src.shape[0])]).max(initial=0.0))
               * _payload_value(network, src) for src, _, off in parts)


def _choose_unit(network: Network, layer: Layer, settings: QuantSettings, output_abs_max: float) -> float:
    """The layer's membrane unit U_l, a power of two times the base unit.

    MT: base theta_unit / theta_N, raised by factors of 2 while the largest weight mantissa would use
    fewer than weight_bits - 1 bits and the top threshold stays within 2**20 (1/8 of the membrane
    range). ACC: the largest power of two for which T steps of the calibrated output peak stay
    below 2**22. Both never beyond what the largest weight and bias can represent.
    """
    peak = _weight_peak(network, layer)
    weight_cap = (2 ** (settings.weight_bits - 1) - 1) * 2 ** WEIGHT_EXP_MAX / max(peak, 1e-30)
    bias_peak = float(np.abs(layer.bias).max(initial=0.0)) if layer.bias is not None else 0.0
    cap = min(weight_cap, BIAS_LIMIT / max(bias_peak, 1e-30))
    assert layer.neuron is not None
    if layer.neuron.kind == "ACC":
        budget = 2 ** 22 / max(output_abs_max * settings.steps, 1e-12)
        return float(2 ** math.floor(math.log2(min(budget, cap))))
    smallest = layer.neuron.thresholds[-1]
    top_ratio = layer.neuron.spike_weights()[0]
    unit = settings.theta_unit / smallest
    target = 2 ** (settings.weight_bits - 2)
    while peak * unit < target and 2 * unit <= cap and top_ratio * 2 * unit * smallest <= 2 ** 20:
        unit *= 2
    return unit


def quantize(network: Network, settings: QuantSettings, output_abs_max: float) -> tuple[Network, list[LayerQuantReport]]:
    """The integer network and a per-layer report; see the module docstring for the arithmetic."""
    if network.quantized:
        raise ExportError("network is already quantized")
    layers, reports = [], []
    for layer in network:
        if layer.neuron is None:
            layers.append(replace(layer))
            continue
        unit = _choose_unit(network, layer, settings, output_abs_max)
        if layer.neuron.kind == "MT":
            neuron = NeuronSpec("MT", _integer_thresholds(layer, unit))
        else:
            neuron = NeuronSpec("ACC")
        w_over, b_over = Overflow(), Overflow()
        if layer.kind == "pool":
            (src,) = [network[s] for s in layer.inputs]
            exact = np.array([layer.pool_weight * _payload_value(network, src) * unit])
            mant, exp = quantize_weights(exact, settings.weight_bits, w_over)
            exps, approx = (exp,), mant * 2.0 ** exp
            weight = mant
        else:
            assert layer.weight is not None
            parts = ([(network.input, 0, 0)] if layer.static else network.parts(layer))
            weight = np.zeros(layer.weight.shape, dtype=np.int32)
            exact = np.zeros(layer.weight.shape)
            approx = np.zeros(layer.weight.shape)
            exp_list = []
            for src, _, offset in parts:
                idx = _part_index(layer, offset, src.shape[0])
                exact[idx] = layer.weight[idx] * _payload_value(network, src) * unit
                mant, exp = quantize_weights(exact[idx], settings.weight_bits, w_over,
                                             exp_min=HOST_EXP_MIN if layer.static else 0)
                weight[idx] = mant
                approx[idx] = mant * 2.0 ** exp
                exp_list.append(exp)
            exps = tuple(exp_list)
        bias_exact = (layer.bias if layer.bias is not None else np.zeros(layer.shape[0])) * unit
        bias_mant, bias_exp = to_bias_format(np.rint(bias_exact).astype(np.int64), b_over)
        report = LayerQuantReport(layer.name, unit, exps, _rel_error(exact, approx),
                                  _rel_error(bias_exact, bias_value(bias_mant, bias_exp).astype(float)),
                                  w_over, b_over)
        if settings.strict and (w_over.count or b_over.count):
            raise ExportError(f"layer {layer.name}: {w_over.count} weights and {b_over.count} biases overflow "
                              f"Loihi's formats (worst weight {w_over.worst:g}, bias {b_over.worst:g}); "
                              f"retry without --strict to saturate them")
        reports.append(report)
        layers.append(replace(layer, neuron=neuron, weight=weight, weight_exp=exps, bias=bias_mant,
                              bias_exp=bias_exp, unit=unit))
    meta = {**network.meta, "theta_unit": settings.theta_unit, "weight_bits": settings.weight_bits,
            "v_limit": V_LIMIT, "input_levels": IMAGE_LEVELS,
            "input_level_range": [INPUT_LEVEL_MIN, INPUT_LEVEL_MAX]}
    return Network(layers, meta, quantized=True), reports


def _part_index(layer: Layer, offset: int, count: int) -> tuple[slice, ...]:
    """Index of the weights fed by input channels [offset, offset + count)."""
    if layer.kind == "convT":              # (in, out, k, k)
        return (slice(offset, offset + count),)
    return (slice(None), slice(offset, offset + count))

"""The integer reference simulator: the oracle every backend and the Loihi 2 profile are judged against.

It runs a quantized :class:`~toolchain.graph.Network` in *logical* time: at logical step k every
layer integrates its sources' payloads of step k. A backend with one step of synaptic latency per
layer, the concat delays of the file and biases switched on at each layer's depth computes exactly
the same thing, with layer l's step k at physical step depth(l) + k (the shift the file records).

Per MT layer and step (integer arithmetic; :func:`toolchain.neuron.mt_step` on int64)::

    I = sum_parts sum_i r_i * 2**e_p * conv(s_i^src, m_p) + m_b * 2**e_b      (compartments)
      = sum_parts        2**e_p * conv(q^src,  m_p)     + m_b * 2**e_b      (graded, q = sum_i r_i s_i)
    V, s = mt_step(V, I, (r_1 .. r_N) * theta_unit, v_limit = 2**23 - 1)

The static first layer's current is computed once from the image's integer levels round(255 x) and stored in the bias
format (13-bit mantissa, per-neuron exponent). The output layer accumulates I into a 24-bit
saturating register A; the decoded output is A / (unit * T).

Convolutions run in float32 when the largest possible sum is below 2**24 (so every value is an
exact integer) and in float64 otherwise: the results are exact integers either way.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from toolchain.errors import ConfigError
from toolchain.lowering.fixed_point import (IMAGE_LEVELS, INPUT_LEVEL_MAX, INPUT_LEVEL_MIN, V_LIMIT, Overflow, bias_value,
                          round_half_away, scale_by_exponent, to_bias_format)
from toolchain.ir.graph import LOWERINGS, Layer, Network
from toolchain.neuron.mt import mt_output, mt_step
from toolchain.frontend.snn import check_steps


@dataclass
class ReferenceResult:
    """Decoded output, the raw accumulator, and per-layer spike statistics (summed over the batch)."""

    output: np.ndarray                       # (N, C, H, W) float64: A / (unit * T)
    accumulator: np.ndarray                  # (N, C, H, W) int64
    steps: int
    spike_counts: dict[str, list[int]]       # per MT layer, per threshold (highest first)
    saturations: dict[str, int]              # membrane clip events per layer
    static_overflow: Overflow
    spikes: dict[str, np.ndarray] = field(default_factory=dict)   # layer -> (T, N_thr, N, C, H, W) uint8
    # the same statistics per batch item (the reference simulator fills them; empty where a backend
    # reports batch totals only): what a run of that image alone would report
    image_spike_counts: list[dict[str, list[int]]] = field(default_factory=list)
    image_saturations: list[dict[str, int]] = field(default_factory=list)


def image_levels(images: np.ndarray) -> np.ndarray:
    """Float images -> integer pixel levels round(255 x), halves away from zero, saturated to 10-bit signed.

    An 8-bit image maps to 0..255 exactly; the signed headroom keeps inputs with unclipped noise
    (the usual denoising benchmark protocol) from being clipped to [0, 1].
    """
    levels = round_half_away(np.asarray(images, dtype=np.float64) * IMAGE_LEVELS)
    return np.clip(levels, INPUT_LEVEL_MIN, INPUT_LEVEL_MAX).astype(np.int64)


def _exact_dtype(weight: np.ndarray, payload_max: int, fan_in: int) -> torch.dtype:
    bound = float(np.abs(weight).max(initial=0)) * payload_max * fan_in
    return torch.float32 if bound < 2 ** 24 else torch.float64


def _synapse(layer: Layer, x: torch.Tensor, weight: np.ndarray, payload_max: int) -> torch.Tensor:
    """conv / convT / sum-pool of integer payloads with integer mantissas, exactly, as int64."""
    if layer.kind == "pool":
        dtype = _exact_dtype(weight, payload_max, layer.kernel ** 2)
        summed = F.avg_pool2d(x.to(dtype), layer.kernel, divisor_override=1)   # exact window sums
        return summed.to(torch.int64) * int(weight.reshape(-1)[0])
    fan_in = weight.shape[0 if layer.kind == "convT" else 1] * layer.kernel ** 2
    dtype = _exact_dtype(weight, payload_max, fan_in)
    w = torch.from_numpy(weight).to(dtype)
    if layer.kind == "conv":
        y = F.conv2d(x.to(dtype), w, stride=layer.stride, padding=layer.padding)
    else:
        y = F.conv_transpose2d(x.to(dtype), w, stride=layer.stride, padding=layer.padding,
                               output_padding=layer.output_padding)
    return y.to(torch.int64)   # exact integers in float: the cast is exact


def _part_weight(layer: Layer, offset: int, count: int) -> np.ndarray:
    assert layer.weight is not None
    if layer.kind == "pool":
        return layer.weight
    if layer.kind == "convT":
        return layer.weight[offset:offset + count]
    return layer.weight[:, offset:offset + count]


def _bias(layer: Layer) -> torch.Tensor:
    assert layer.bias is not None and layer.bias_exp is not None
    return torch.from_numpy(bias_value(layer.bias, layer.bias_exp)).view(1, -1, 1, 1)


def static_current(layer: Layer, levels: np.ndarray, overflow: Overflow) -> torch.Tensor:
    """The first layer's constant current conv(x, m) * 2**e + bias, rounded into the bias format."""
    (exp,) = layer.weight_exp
    conv = _synapse(layer, torch.from_numpy(levels), layer.weight, -INPUT_LEVEL_MIN).numpy()
    raw = scale_by_exponent(conv, exp) + bias_value(layer.bias, layer.bias_exp).reshape(1, -1, 1, 1)
    mant, bexp = to_bias_format(raw, overflow)
    return torch.from_numpy(bias_value(mant, bexp))


class ReferenceSimulator:
    """Bit-exact integer simulation of a quantized network, batched over images."""

    def __init__(self, network: Network, lowering: str | None = None) -> None:
        if not network.quantized:
            raise ConfigError("the reference simulator runs quantized networks (export first)")
        if network.physical:
            raise ConfigError("a CUBA (stock netx) network runs in physical time: use "
                              "toolchain.refsim_physical.simulate_cuba")
        self.network = network
        self.lowering = lowering or network.meta.get("lowering", "compartments")
        if self.lowering not in LOWERINGS:
            raise ConfigError(f"lowering must be one of {LOWERINGS}, got {self.lowering!r}")

    def _current(self, layer: Layer, spikes: dict[str, tuple[torch.Tensor, ...]]) -> torch.Tensor:
        total = _bias(layer)
        for (src, _delay, offset), exp in zip(self.network.parts(layer), layer.weight_exp):
            weight = _part_weight(layer, offset, src.shape[0])
            ratios = src.neuron.spike_weights()  # type: ignore[union-attr]
            if self.lowering == "graded":
                payload = mt_output(spikes[src.name], ratios)
                total = total + _synapse(layer, payload, weight, sum(ratios)) * (1 << exp)
            else:
                for s, r in zip(spikes[src.name], ratios):
                    total = total + _synapse(layer, s, weight, 1) * (r << exp)
        return total

    @torch.no_grad()
    def run(self, images: np.ndarray, steps: int, record: bool = False) -> ReferenceResult:
        """Simulate ``steps`` steps on float images (N, C, H, W) in [0, 1] whose sides fit the network."""
        check_steps(steps)
        levels = image_levels(np.asarray(images))
        n = levels.shape[0]
        static_overflow = Overflow()
        membranes: dict[str, torch.Tensor | int] = {}
        spikes: dict[str, tuple[torch.Tensor, ...]] = {}
        counts: dict[str, np.ndarray] = {}
        saturations: dict[str, int] = {}
        recorded: dict[str, list[np.ndarray]] = {}
        static: dict[str, torch.Tensor] = {}
        accumulator: torch.Tensor | int = 0
        output_layer = self.network.output
        for layer in self.network.neuron_layers:
            if layer.static:
                static[layer.name] = static_current(layer, levels, static_overflow)
            membranes[layer.name] = 0
            saturations[layer.name] = np.zeros(n, dtype=np.int64)                     # per image
            counts[layer.name] = np.zeros((layer.neuron.compartments, n), dtype=np.int64)  # type: ignore[union-attr]
        for _ in range(steps):
            for layer in self.network.neuron_layers:
                current = static[layer.name] if layer.static else self._current(layer, spikes)
                if layer is output_layer:
                    accumulator = accumulator + current
                    saturations[layer.name] += _per_image((accumulator.abs() > V_LIMIT), n)  # type: ignore[union-attr]
                    accumulator = accumulator.clamp(-V_LIMIT, V_LIMIT)  # type: ignore[union-attr]
                    continue
                unclipped = membranes[layer.name] + current
                saturations[layer.name] += _per_image(unclipped.abs() > V_LIMIT, n)
                v, s = mt_step(membranes[layer.name], current, layer.neuron.thresholds, v_limit=V_LIMIT)  # type: ignore[union-attr]
                membranes[layer.name], spikes[layer.name] = v, s
                counts[layer.name] += np.stack([_per_image(x, n) for x in s])
                if record:
                    recorded.setdefault(layer.name, []).append(torch.stack(s).to(torch.uint8).numpy())
        acc = np.asarray(accumulator.numpy() if isinstance(accumulator, torch.Tensor) else accumulator, dtype=np.int64)
        mt_counts = {k: v for k, v in counts.items() if k != output_layer.name}
        return ReferenceResult(
            output=acc / (output_layer.unit * steps), accumulator=acc, steps=steps,
            spike_counts={k: v.sum(axis=1).tolist() for k, v in mt_counts.items()},
            saturations={k: int(v.sum()) for k, v in saturations.items()}, static_overflow=static_overflow,
            spikes={k: np.stack(v) for k, v in recorded.items()},
            image_spike_counts=[{k: v[:, i].tolist() for k, v in mt_counts.items()} for i in range(n)],
            image_saturations=[{k: int(v[i]) for k, v in saturations.items()} for i in range(n)])


def _per_image(x: torch.Tensor, n: int) -> np.ndarray:
    """Sum of a (N, ...) tensor per batch item, as int64 (N,)."""
    return x.expand(n, *x.shape[1:]).reshape(n, -1).sum(dim=1, dtype=torch.int64).numpy()

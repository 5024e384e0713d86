"""The integer reference simulator: the oracle every backend and the Loihi 2 profile are judged against.

It runs a quantized :class:`~toolchain.ir.QuantizedNetwork` in *logical* time: at logical step k every
layer integrates its sources' payloads of step k. A backend with one step of synaptic latency per
layer, the concat delays of the file and biases switched on at each layer's depth computes exactly
the same thing, with layer l's step k at physical step depth(l) + k (the shift the file records).

Per MT layer and step (integer arithmetic; :func:`toolchain.neuron.mt_step` on int64)::

    I = sum_parts sum_i r_i * 2**e_p * conv(s_i^src, m_p) + m_b * 2**e_b      (compartments)
      = sum_parts        2**e_p * conv(q^src,  m_p)     + m_b * 2**e_b      (graded, q = sum_i r_i s_i)
    V, s = mt_step(V, I, (r_1 .. r_N) * theta_unit, v_limit = 2**23 - 1)

The two lines are equal integers (the convolution is linear and integer sums are exact), so both
lowerings are computed as the second: one convolution per part of the payloads q, 0 <= q <= sum_i r_i.

The static first layer's current is computed once from the image's integer levels round(255 x) and stored in the bias
format (13-bit mantissa, per-neuron exponent). The output layer accumulates I into a 24-bit
saturating register A; the decoded output is A / (unit * T).

Convolutions are the exact integer kernels of :mod:`toolchain.simulators.kernels`, planned once per
synapse group (:func:`~toolchain.simulators.exact.plan_synapse`: float32 terms split from its bounds).
What is kept
besides the output is the ``record`` level: totals only, per-neuron count maps (memory independent
of T) or every spike.
"""
from __future__ import annotations

import numpy as np
import torch

from ..checks import check_steps
from ..errors import ConfigError
from ..ir import Accumulator, Conv, MultiThreshold, QuantizedNetwork, SynapticLayer
from ..ir.limits import V_LIMIT
from ..lowering.fixed_point import Overflow
from ..neuron.mt import mt_output, mt_step
from ..vocab import LOWERINGS, RECORDS, Lowering, Record
from .exact import ExactSynapse, plan_synapse
from .kernels import SynapseOp, bias_current, fixed, image_levels, part_weight, static_current
from .result import SimulationResult


class ReferenceSimulator:
    """Bit-exact integer simulation of a quantized network, batched over images.

    ``float64``: every convolution in float64 (the same integers; see :mod:`.kernels`).
    """

    def __init__(self, network: QuantizedNetwork, lowering: Lowering | None = None, float64: bool = False) -> None:
        if not isinstance(network, QuantizedNetwork):
            raise ConfigError(f"the reference simulator runs quantized networks (export first), "
                              f"got a {type(network).__name__}")
        self.network = network
        self.lowering = lowering or network.lowering
        if self.lowering not in LOWERINGS:
            raise ConfigError(f"lowering must be one of {LOWERINGS}, got {self.lowering!r}")
        self.float64 = float64
        self._plans: dict[str, list[tuple[str, tuple[int, ...], int, ExactSynapse]]] = {}
        self._biases: dict[str, torch.Tensor] = {}

    def plans(self, layer: SynapticLayer) -> list[tuple[str, tuple[int, ...], int, ExactSynapse]]:
        """(source, spike weights r, exponent, exact plan) per part of a non-static layer, made once."""
        if layer.name not in self._plans:
            op = SynapseOp.of(layer)  # type: ignore[arg-type]
            parts = []
            for (src, _delay, offset), exp in zip(self.network.parts(layer), fixed(layer).weight_exp):
                assert isinstance(src, SynapticLayer) and isinstance(src.neuron, MultiThreshold)
                ratios = src.neuron.spike_weights()
                plan = plan_synapse(op, part_weight(layer, offset, src.shape[0]), sum(ratios), self.float64)
                parts.append((src.name, ratios, exp, plan))
            self._plans[layer.name] = parts
            self._biases[layer.name] = bias_current(layer)
        return self._plans[layer.name]

    def _current(self, layer: SynapticLayer, spikes: dict[str, tuple[torch.Tensor, ...]]) -> torch.Tensor:
        plans = self.plans(layer)
        total = self._biases[layer.name]
        for src, ratios, exp, plan in plans:
            total = total + plan(mt_output(spikes[src], ratios)) * (1 << exp)
        return total

    @torch.no_grad()
    def run(self, images: np.ndarray, steps: int, record: Record = "none") -> SimulationResult:
        """Simulate ``steps`` steps on float images (N, C, H, W) in [0, 1] whose sides fit the network."""
        check_steps(steps)
        if record not in RECORDS:
            raise ConfigError(f"record must be one of {RECORDS}, got {record!r}")
        levels = image_levels(np.asarray(images))
        n = levels.shape[0]
        static_overflow = Overflow()
        membranes: dict[str, torch.Tensor | int] = {}
        spikes: dict[str, tuple[torch.Tensor, ...]] = {}
        counts: dict[str, np.ndarray] = {}
        saturations: dict[str, np.ndarray] = {}
        recorded: dict[str, list[np.ndarray]] = {}
        count_maps: dict[str, torch.Tensor] = {}
        message_maps: dict[str, torch.Tensor] = {}
        static: dict[str, torch.Tensor] = {}
        accumulator: torch.Tensor | int = 0
        layers = self.network.synaptic_layers
        output_layer = self.network.output
        for layer in layers:
            if isinstance(layer, Conv) and layer.static:
                static[layer.name] = static_current(layer, levels, static_overflow, self.float64)
            membranes[layer.name] = 0
            saturations[layer.name] = np.zeros(n, dtype=np.int64)                     # per image
            counts[layer.name] = np.zeros((layer.neuron.compartments, n), dtype=np.int64)
        for _ in range(steps):
            for layer in layers:
                current = static[layer.name] if layer.name in static else self._current(layer, spikes)
                if isinstance(layer.neuron, Accumulator):
                    accumulator = accumulator + current
                    saturations[layer.name] += _per_image(accumulator.abs() > V_LIMIT, n)
                    accumulator = accumulator.clamp(-V_LIMIT, V_LIMIT)
                    continue
                assert isinstance(layer.neuron, MultiThreshold)
                unclipped = membranes[layer.name] + current
                saturations[layer.name] += _per_image(unclipped.abs() > V_LIMIT, n)
                v, s = mt_step(membranes[layer.name], current, layer.neuron.thresholds, v_limit=V_LIMIT)
                membranes[layer.name], spikes[layer.name] = v, s
                counts[layer.name] += np.stack([_per_image(x, n) for x in s])
                if record == "spikes":
                    recorded.setdefault(layer.name, []).append(torch.stack(s).to(torch.uint8).numpy())
                elif record == "counts":
                    _accumulate_maps(layer.name, s, n, count_maps, message_maps)
        acc = np.asarray(accumulator.numpy() if isinstance(accumulator, torch.Tensor) else accumulator, dtype=np.int64)
        unit = fixed(output_layer).unit  # type: ignore[arg-type]
        mt_counts = {k: v for k, v in counts.items() if k != output_layer.name}
        return SimulationResult(
            output=acc / (unit * steps), accumulator=acc, steps=steps,
            spike_counts={k: v.sum(axis=1).tolist() for k, v in mt_counts.items()},
            saturations={k: int(v.sum()) for k, v in saturations.items()}, static_overflow=static_overflow,
            spikes={k: np.stack(v) for k, v in recorded.items()},
            count_maps={k: v.numpy() for k, v in count_maps.items()},
            message_maps={k: v.numpy() for k, v in message_maps.items()},
            image_spike_counts=[{k: v[:, i].tolist() for k, v in mt_counts.items()} for i in range(n)],
            image_saturations=[{k: int(v[i]) for k, v in saturations.items()} for i in range(n)])


def _per_image(x: torch.Tensor, n: int) -> np.ndarray:
    """Sum of a (N, ...) tensor per batch item, as int64 (N,)."""
    return x.expand(n, *x.shape[1:]).reshape(n, -1).sum(dim=1, dtype=torch.int64).numpy()


def _accumulate_maps(name: str, spikes: tuple[torch.Tensor, ...], n: int, count_maps: dict[str, torch.Tensor],
                     message_maps: dict[str, torch.Tensor]) -> None:
    """Add one step's spikes to the per-neuron count and message maps."""
    stacked = torch.stack([s.expand(n, *s.shape[1:]) for s in spikes])        # (N_thr, N, C, H, W) bool
    per_thr = stacked.to(torch.int64)
    messages = stacked.any(dim=0).to(torch.int64)
    if name in count_maps:
        count_maps[name] += per_thr
        message_maps[name] += messages
    else:
        count_maps[name], message_maps[name] = per_thr, messages

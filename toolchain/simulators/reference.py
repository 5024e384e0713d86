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

MT layers step with the fused integer kernel :func:`toolchain.neuron.integer.int_mt_step` (the same
integers as ``mt_step``, in one pass). The static first layer's current is computed once from the
image's integer levels round(255 x) and stored in the bias format (13-bit mantissa, per-neuron
exponent). The output layer accumulates I into a 24-bit saturating register A; the decoded output is
A / (unit * T).

Convolutions are the exact integer kernels of :mod:`toolchain.simulators.kernels`, planned once per
synapse group (:func:`~toolchain.simulators.exact.plan_synapse`: float32 terms split from its bounds).
What is kept besides the output is the ``record`` level: totals only, per-neuron count maps (memory
independent of T) or every spike.
"""
from __future__ import annotations

import numpy as np
import torch

from ..checks import check_steps
from ..errors import ConfigError
from ..ir import Accumulator, Conv, MultiThreshold, QuantizedNetwork, SynapticLayer
from ..ir.limits import V_LIMIT
from ..lowering.fixed_point import Overflow
from ..neuron.integer import int_mt_step
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

    def _current(self, layer: SynapticLayer, payloads: dict[str, torch.Tensor]) -> torch.Tensor:
        """I = sum_parts 2**e_p * conv(q^src, m_p) + m_b * 2**e_b, int64."""
        total: torch.Tensor | None = None
        for src, _ratios, exp, plan in self.plans(layer):
            total = plan(payloads[src], shift=exp, out=total)
        assert total is not None
        return total.add_(self._biases[layer.name])

    @torch.no_grad()
    def run(self, images: np.ndarray, steps: int, record: Record = "none") -> SimulationResult:
        """Simulate ``steps`` steps on float images (N, C, H, W) in [0, 1] whose sides fit the network."""
        check_steps(steps)
        if record not in RECORDS:
            raise ConfigError(f"record must be one of {RECORDS}, got {record!r}")
        levels = image_levels(np.asarray(images))
        n = levels.shape[0]
        static_overflow = Overflow()
        layers = self.network.synaptic_layers
        output_layer = self.network.output
        static = {layer.name: static_current(layer, levels, static_overflow, self.float64)
                  for layer in layers if isinstance(layer, Conv) and layer.static}
        state = {layer.name: _LayerState(layer, n, record) for layer in layers
                 if isinstance(layer.neuron, MultiThreshold)}
        payloads = {name: s.payload for name, s in state.items()}
        saturations = {layer.name: np.zeros(n, dtype=np.int64) for layer in layers}
        recorded: dict[str, list[np.ndarray]] = {name: [] for name in state} if record == "spikes" else {}
        accumulator: torch.Tensor | int = 0
        for _ in range(steps):
            for layer in layers:
                current = static[layer.name] if layer.name in static else self._current(layer, payloads)
                if isinstance(layer.neuron, Accumulator):
                    accumulator = accumulator + current
                    saturations[layer.name] += _per_image(accumulator.abs() > V_LIMIT, n)
                    accumulator = accumulator.clamp(-V_LIMIT, V_LIMIT)
                    continue
                st = state[layer.name]
                st.step(current.expand(st.v.shape).contiguous(), saturations[layer.name], record)
                if record == "spikes":
                    recorded[layer.name].append(st.spikes.reshape(-1, *st.v.shape).copy())
        acc = np.asarray(accumulator.numpy() if isinstance(accumulator, torch.Tensor) else accumulator, dtype=np.int64)
        unit = fixed(output_layer).unit  # type: ignore[arg-type]
        mt_counts = {k: v.counts for k, v in state.items() if k != output_layer.name}
        return SimulationResult(
            output=acc / (unit * steps), accumulator=acc, steps=steps,
            spike_counts={k: v.sum(axis=1).tolist() for k, v in mt_counts.items()},
            saturations={k: int(v.sum()) for k, v in saturations.items()}, static_overflow=static_overflow,
            spikes={k: np.stack(v) for k, v in recorded.items()},
            count_maps={k: v.count_maps.reshape(-1, *v.v.shape) for k, v in state.items() if record == "counts"},
            message_maps={k: v.message_map.reshape(v.v.shape) for k, v in state.items() if record == "counts"},
            image_spike_counts=[{k: v[:, i].tolist() for k, v in mt_counts.items()} for i in range(n)],
            image_saturations=[{k: int(v[i]) for k, v in saturations.items()} for i in range(n)])


class _LayerState:
    """One MT layer's membranes, payloads q (float32, what the next layers convolve), spike totals and
    the optional per-neuron count / message maps or this step's spike maps (see :mod:`..neuron.integer`)."""

    def __init__(self, layer: SynapticLayer, n: int, record: Record) -> None:
        assert isinstance(layer.neuron, MultiThreshold)
        self.thresholds = tuple(int(t) for t in layer.neuron.thresholds)
        self.ratios = layer.neuron.spike_weights()
        shape, k = (n, *layer.shape), len(self.thresholds)
        self.v = torch.zeros(shape, dtype=torch.int64)
        self.payload = torch.zeros(shape, dtype=torch.float32)
        self.counts = np.zeros((k, n), dtype=np.int64)
        size = self.v.numel()
        self.count_maps = np.zeros((k, size) if record == "counts" else (0, 0), dtype=np.int64)
        self.message_map = np.zeros(size if record == "counts" else 0, dtype=np.int64)
        self.spikes = np.zeros((k, size) if record == "spikes" else (0, 0), dtype=np.uint8)

    def step(self, current: torch.Tensor, saturations: np.ndarray, record: Record) -> None:
        int_mt_step(self.v, current, self.thresholds, self.ratios, V_LIMIT, self.payload, self.counts, saturations,
                    record, self.count_maps, self.message_map, self.spikes)


def _per_image(x: torch.Tensor, n: int) -> np.ndarray:
    """Sum of a (N, ...) tensor per batch item, as int64 (N,)."""
    return x.expand(n, *x.shape[1:]).reshape(n, -1).sum(dim=1, dtype=torch.int64).numpy()

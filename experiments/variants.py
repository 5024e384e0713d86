"""Other spiking neurons for the neuron comparison (paper Tables 1-2's ML and RS columns), as plug-ins
of the toolchain's Spiking-UNet: each is a subclass of :class:`toolchain.neuron.MultiThresholdNeuron`
(so ``SpikingUNet.run / simulate / flow_forward``, ``SpikeStats`` and the BPTT surrogate switch see
them like MT neurons), and :class:`VariantSpikingUNet` rebuilds the SNN's core with them through the
same activation factory ``SpikingUNet`` uses. No toolchain code is changed.

* ``ML`` (multi-level, after Feng et al. 2022): one membrane, uniform levels. Per step
  ``s = #{k in 1..L : V > k*theta}`` (= floor(V/theta) capped at L, strict '>' as the MT neuron),
  ``V -= theta*s``, output ``theta*s``. Here theta = 1 and L = 4: the same number of spike lines
  (4) and about the same top output per step (4 vs 3.75) as MT(2, 1, 0.5, 0.25), but uniform
  levels instead of binary-weighted ones.
* ``RS`` (real spike, after Guo et al. 2022, faithful in spirit): an IF neuron (theta = 1, binary
  spikes, reset by subtraction) whose output is ``a_c * s`` with a learned real-valued scale a_c per
  output channel (initialised to 1, trained with the weights). At inference a_c folds into the next
  layer's weights (every consumer is linear: conv, convT, average pooling, concat), so the network
  still sends binary spikes with real-valued synaptic weights. Guo et al. train the real-valued
  spikes from scratch with a training-time-only re-parameterisation; here the scales start at 1 on
  a converted network (FT) or a fresh one (DT).
* ``IF`` and ``MT`` are the toolchain's own MultiThresholdNeuron with (1.0,) and (2, 1, 0.5, 0.25).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from toolchain.neuron.mt import MultiThresholdNeuron, mt_step
from toolchain.frontend.snn import SpikingUNet
from toolchain.frontend.unet import UNetConfig, UNetCore


class VariantNeuron(MultiThresholdNeuron):
    """Step mode through ``_step`` (returns output, flow value, spike counts); flow mode and the
    bookkeeping (flows, spike counts, steps, neurons) as in MultiThresholdNeuron."""

    def _step(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "flow":
            return self._flow(x)
        out, flow, counts = self._step(x)
        self._record_step(x, flow, counts)
        return out


def _float(s: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return s if torch.is_floating_point(s) else s.to(like.dtype)


class MultiLevelNeuron(VariantNeuron):
    """ML: up to ``levels`` spikes of weight theta per step from one membrane (uniform levels)."""

    def __init__(self, theta: float = 1.0, levels: int = 4) -> None:
        super().__init__((theta,))
        self.theta, self.levels = float(theta), int(levels)

    def extra_repr(self) -> str:
        return f"theta={self.theta}, levels={self.levels}"

    def _step(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        v = self.v + x
        s = _float(self.fire(v - self.theta), x)
        for k in range(2, self.levels + 1):
            s = s + _float(self.fire(v - k * self.theta), x)
        self.v = v - self.theta * s
        out = self.theta * s
        return out, out, [s.sum()]


class RealSpikeNeuron(VariantNeuron):
    """RS: binary IF spikes (theta = 1) weighted by a learned per-channel real scale a_c."""

    def __init__(self, theta: float = 1.0) -> None:
        super().__init__((theta,))
        self.theta = float(theta)
        self.register_parameter("scale", None)

    def extra_repr(self) -> str:
        return f"theta={self.theta}, learned per-channel spike scale"

    def materialize(self, channels: int) -> None:
        if self.scale is None:
            self.scale = nn.Parameter(torch.ones(channels))

    def _scaled(self, value: torch.Tensor) -> torch.Tensor:
        assert self.scale is not None
        return self.scale.view(1, -1, 1, 1) * value

    def _step(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        self.materialize(x.shape[1])
        self.v, (s,) = mt_step(self.v, x, (self.theta,), fire=self.fire)
        s = _float(s, x)
        binary = self.theta * s
        return self._scaled(binary), binary, [s.sum()]     # flow_out records the unscaled spike flow

    def _flow(self, x: torch.Tensor) -> torch.Tensor:
        if self.flow_out is None or self.steps == 0:
            raise RuntimeError("flow mode needs a recorded simulation first")
        relu = torch.relu(x)
        return self._scaled(relu - relu.detach() + self.flow_out / self.steps)


@dataclass(frozen=True)
class NeuronSpec:
    """Which neuron a Spiking-UNet uses: 'mt' (any thresholds; IF = (1.0,)), 'ml' or 'rs'."""

    kind: str
    thresholds: tuple[float, ...] = (2.0, 1.0, 0.5, 0.25)
    levels: int = 4

    def make(self) -> MultiThresholdNeuron:
        if self.kind == "ml":
            return MultiLevelNeuron(self.thresholds[0], self.levels)
        if self.kind == "rs":
            return RealSpikeNeuron(self.thresholds[0])
        return MultiThresholdNeuron(self.thresholds)

    def describe(self) -> str:
        if self.kind == "ml":
            return f"ML (theta {self.thresholds[0]:g}, up to {self.levels} spikes/step)"
        if self.kind == "rs":
            return f"RS (IF theta {self.thresholds[0]:g}, learned per-channel spike scale)"
        return "IF (theta 1.0)" if len(self.thresholds) == 1 else f"MT {list(self.thresholds)}"


class VariantSpikingUNet(SpikingUNet):
    """A SpikingUNet whose core is built with the neurons of ``spec`` (same module tree and weights)."""

    def __init__(self, config: UNetConfig, spec: NeuronSpec) -> None:
        super().__init__(config, spec.thresholds)
        self.spec = spec
        self.core = UNetCore(config, act=lambda kind: spec.make())
        if spec.kind == "rs":            # the per-channel scales need the channel counts: one dummy step
            with torch.no_grad():
                side = config.multiple
                self.core(torch.zeros(1, config.in_channels, side, side))
            self.reset()

    @classmethod
    def from_snn(cls, snn: SpikingUNet, spec: NeuronSpec) -> "VariantSpikingUNet":
        """The same (converted or fine-tuned) weights with other neurons."""
        variant = cls(snn.config, spec)
        missing, unexpected = variant.core.load_state_dict(snn.core.state_dict(), strict=False)
        if unexpected or any(not k.endswith(".scale") or "pool" in k for k in missing):
            raise RuntimeError(f"weights do not fit: missing {missing}, unexpected {unexpected}")
        variant.eval()
        return variant


def fold_real_spike_scales(snn: VariantSpikingUNet) -> dict[str, float]:
    """Range of the learned RS scales (they fold into the next layer's weights at deployment)."""
    scales = [m.scale.detach() for _, m in snn.neurons() if isinstance(m, RealSpikeNeuron) and m.scale is not None]
    if not scales:
        return {}
    flat = torch.cat(scales)
    return {"min": float(flat.min()), "mean": float(flat.mean()), "max": float(flat.max())}


def spec_for(name: str) -> NeuronSpec:
    return {"IF": NeuronSpec("mt", (1.0,)), "MT": NeuronSpec("mt"), "ML": NeuronSpec("ml", (1.0,)),
            "RS": NeuronSpec("rs", (1.0,))}[name]


NEURONS: Sequence[str] = ("IF", "ML", "RS", "MT")

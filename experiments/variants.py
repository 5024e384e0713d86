"""Other spiking neurons for the neuron comparison (paper Tables 1-2's ML and RS columns), as plug-ins
of the toolchain's Spiking-UNet: each is a :class:`toolchain.frontend.cells.Cell` (so
``SpikingNetwork.run / simulate / flow_forward``, ``SpikeStats`` and the BPTT surrogate switch see
them like MT neurons), and :func:`variant_snn` builds the SNN with them through the cell factory
``SpikingNetwork`` takes. No toolchain code is changed.

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
* ``IF`` and ``MT`` are the toolchain's own MTCell with (1.0,) and (2, 1, 0.5, 0.25).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from toolchain.frontend.cells import Cell, MTCell, NeuronState, RunOptions
from toolchain.frontend.snn import SpikingNetwork
from toolchain.frontend.trace import trace_network
from toolchain.frontend.unet import UNetConfig, UNetCore
from toolchain.ir import MultiThreshold, SynapticLayer
from toolchain.neuron.mt import mt_step


def _float(s: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return s if torch.is_floating_point(s) else s.to(like.dtype)


class MultiLevelCell(Cell):
    """ML: up to ``levels`` spikes of weight theta per step from one membrane (uniform levels)."""

    def __init__(self, theta: float = 1.0, levels: int = 4) -> None:
        super().__init__()
        self.thresholds = (float(theta),)
        self.theta, self.levels = float(theta), int(levels)

    def extra_repr(self) -> str:
        return f"theta={self.theta}, levels={self.levels}"

    def step(self, state: NeuronState, x: torch.Tensor, run: RunOptions) -> torch.Tensor:
        v = state.v + x
        s = _float(run.fire(v - self.theta), x)
        for k in range(2, self.levels + 1):
            s = s + _float(run.fire(v - k * self.theta), x)
        state.v = v - self.theta * s
        out = self.theta * s
        state.record(x, out, [s.sum()], run)
        return out


class RealSpikeCell(Cell):
    """RS: binary IF spikes (theta = 1) weighted by a learned per-channel real scale a_c."""

    def __init__(self, channels: int, theta: float = 1.0) -> None:
        super().__init__()
        self.thresholds = (float(theta),)
        self.theta = float(theta)
        self.scale = nn.Parameter(torch.ones(channels))

    def extra_repr(self) -> str:
        return f"theta={self.theta}, learned per-channel spike scale"

    def _scaled(self, value: torch.Tensor) -> torch.Tensor:
        return self.scale.view(1, -1, 1, 1) * value

    def step(self, state: NeuronState, x: torch.Tensor, run: RunOptions) -> torch.Tensor:
        state.v, (s,) = mt_step(state.v, x, (self.theta,), fire=run.fire)
        s = _float(s, x)
        binary = self.theta * s
        state.record(x, binary, [s.sum()], run)          # flow_out records the unscaled spike flow
        return self._scaled(binary)

    def flow(self, state: NeuronState, x: torch.Tensor) -> torch.Tensor:
        return self._scaled(super().flow(state, x))


@dataclass(frozen=True)
class NeuronSpec:
    """Which neuron a Spiking-UNet uses: 'mt' (any thresholds; IF = (1.0,)), 'ml' or 'rs'."""

    kind: str
    thresholds: tuple[float, ...] = (2.0, 1.0, 0.5, 0.25)
    levels: int = 4

    def cell(self, layer: SynapticLayer) -> Cell:
        if self.kind == "ml":
            return MultiLevelCell(self.thresholds[0], self.levels)
        if self.kind == "rs":
            return RealSpikeCell(layer.shape[0], self.thresholds[0])
        return MTCell(self.thresholds)

    def describe(self) -> str:
        if self.kind == "ml":
            return f"ML (theta {self.thresholds[0]:g}, up to {self.levels} spikes/step)"
        if self.kind == "rs":
            return f"RS (IF theta {self.thresholds[0]:g}, learned per-channel spike scale)"
        return "IF (theta 1.0)" if len(self.thresholds) == 1 else f"MT {list(self.thresholds)}"


def variant_snn(config: UNetConfig, spec: NeuronSpec) -> SpikingNetwork:
    """A freshly initialised Spiking-UNet with the neurons of ``spec`` (for direct training).

    Its weights are the second of two U-Net initialisations from the current RNG state: the draw
    earlier versions of this experiment used, so results stay comparable across versions.
    """
    UNetCore(config)
    core = UNetCore(config)
    network = trace_network(core, (config.in_channels, config.multiple, config.multiple),
                            lambda _m: MultiThreshold(spec.thresholds))
    return SpikingNetwork(network, config.multiple, cells=spec.cell, config=config)


def with_neurons(snn: SpikingNetwork, spec: NeuronSpec) -> SpikingNetwork:
    """The same (converted or fine-tuned) weights with other neurons."""
    variant = SpikingNetwork(snn.to_network(), snn.multiple, cells=spec.cell, config=snn.config)
    variant.eval()
    return variant


def fold_real_spike_scales(snn: SpikingNetwork) -> dict[str, float]:
    """Range of the learned RS scales (they fold into the next layer's weights at deployment)."""
    scales = [cell.scale.detach() for _, cell in snn.neurons() if isinstance(cell, RealSpikeCell)]
    if not scales:
        return {}
    flat = torch.cat(scales)
    return {"min": float(flat.min()), "mean": float(flat.mean()), "max": float(flat.max())}


def spec_for(name: str) -> NeuronSpec:
    return {"IF": NeuronSpec("mt", (1.0,)), "MT": NeuronSpec("mt"), "ML": NeuronSpec("ml", (1.0,)),
            "RS": NeuronSpec("rs", (1.0,))}[name]


NEURONS: Sequence[str] = ("IF", "ML", "RS", "MT")

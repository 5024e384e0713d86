"""The Spiking-UNet in PyTorch (float): the U-Net core with every activation an MT neuron.

Time semantics (the reference every other simulator is compared with, after the latency shift of
:mod:`toolchain.graph`): at step t every layer integrates the spikes its sources emitted at the
same step t; the first convolution sees the raw image at every step (static coding: a constant
current conv1(x) + b); the output layer is a non-spiking accumulator, decoded as
sum_t head(o(t)) / T (the noise map for denoising, class logits whose argmax is the segmentation).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
from torch import nn
from tqdm import tqdm

from toolchain.errors import ConfigError
from toolchain.neuron.mt import MultiThresholdNeuron, heaviside, surrogate_heaviside, validate_thresholds
from toolchain.frontend.unet import UNetConfig, UNetCore, pad_to_multiple


@dataclass
class SpikeStats:
    """Spike counts of one neuron layer over a simulation (summed over the batch)."""

    layer: str
    neurons: int
    steps: int
    batch: int
    counts: list[float]        # per threshold, highest first

    @property
    def spikes(self) -> float:
        return float(sum(self.counts))

    @property
    def rate(self) -> float:
        """Spikes per neuron per step."""
        return self.spikes / max(1, self.neurons * self.steps * self.batch)


@dataclass
class SimulationResult:
    output: torch.Tensor          # sum_t head(o(t)) / T, cropped to the input size
    steps: int
    stats: list[SpikeStats]


def check_steps(steps: int) -> int:
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ConfigError(f"the number of time steps T must be a positive integer, got {steps!r}")
    return steps


class _StaticCurrent(nn.Module):
    """Stands in for the first convolution while a simulation runs without gradients: its input, the
    image, is the same at every step, so its output conv1(x) + b is computed once."""

    def __init__(self, current: torch.Tensor) -> None:
        super().__init__()
        self.current = current

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.current


class SpikingUNet(nn.Module):
    """U-Net core with MT neurons; weights are the normalized ANN weights (see :mod:`toolchain.conversion`)."""

    def __init__(self, config: UNetConfig, thresholds: Sequence[float]) -> None:
        super().__init__()
        self.config = config
        self.thresholds = validate_thresholds(thresholds)
        self.core = UNetCore(config, act=lambda kind: MultiThresholdNeuron(self.thresholds))

    def neurons(self) -> list[tuple[str, MultiThresholdNeuron]]:
        return [(name, m) for name, m in self.core.named_modules() if isinstance(m, MultiThresholdNeuron)]

    def _configure(self, mode: str, record_flow: bool = False, surrogate: bool = False) -> None:
        for _, neuron in self.neurons():
            neuron.mode = mode
            neuron.record_flow = record_flow
            neuron.fire = surrogate_heaviside if surrogate else heaviside

    def use_fused_kernel(self, enabled: bool) -> None:
        """Whether steps without gradients run the fused MT kernel (default) or ``mt_step`` op by op;
        both give the same numbers (see :mod:`toolchain.mt_kernel`)."""
        for _, neuron in self.neurons():
            neuron.fused = enabled

    def reset(self) -> None:
        for _, neuron in self.neurons():
            neuron.reset()

    @contextmanager
    def simulation_shortcuts(self, padded: torch.Tensor) -> Iterator[None]:
        """Two shortcuts for the steps ``self.core(padded)`` run within the block, with identical numbers:

        * the first convolution is evaluated once (static coding: the same current conv1(x) + b every step);
        * every MT neuron writes its output into one scratch tensor, rewritten every step (the core
          consumes each output within the step; fresh tensors would cost page faults every step).

        Only without autograd; with it on, every step keeps its own graph and tensors as before.
        """
        if torch.is_grad_enabled():
            yield
            return
        encoder = self.core.encoders[0]
        first = encoder.conv1
        encoder.conv1 = _StaticCurrent(first(padded))
        for _, neuron in self.neurons():
            neuron.reuse_output = True
        try:
            yield
        finally:
            encoder.conv1 = first
            for _, neuron in self.neurons():
                neuron.reuse_output, neuron.scratch = False, None

    def run(self, x: torch.Tensor, steps: int, record_flow: bool = False, surrogate: bool = False,
            progress: bool = False) -> SimulationResult:
        """Simulate ``steps`` steps on a batch (NCHW). Gradients flow only if enabled by the caller."""
        check_steps(steps)
        padded, (h, w) = pad_to_multiple(x, self.config.multiple)
        self.reset()
        self._configure("step", record_flow=record_flow, surrogate=surrogate)
        total: torch.Tensor | None = None
        with self.simulation_shortcuts(padded):
            for _ in tqdm(range(steps), desc="SNN steps", disable=not progress, leave=False):
                out = self.core(padded)
                total = out if total is None else total + out
        assert total is not None
        stats = [SpikeStats(name, m.neurons, m.steps, x.shape[0], m.spike_counts.tolist())
                 for name, m in self.neurons()]
        return SimulationResult(output=(total / steps)[..., :h, :w], steps=steps, stats=stats)

    @torch.no_grad()
    def simulate(self, x: torch.Tensor, steps: int, progress: bool = False) -> SimulationResult:
        """Inference: ``steps`` steps without gradients."""
        return self.run(x, steps, progress=progress)

    def flow_forward(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        """Algorithm 1 of the paper: record the spiking flows without gradients, then one
        differentiable pass on time-averaged flows.

        Each layer computes W (I_out^{l-1} / T) + b = I_in^l / T, so the bias enters T times in I_in,
        as in inference (the reference code's conv1(x*T) gave it once). Each neuron's value is
        I_out / T, its gradient that of ReLU at I_in. Returns I_in^L / T of the output layer.
        Memory does not depend on T: only flows (one tensor per layer) are kept.
        """
        with torch.no_grad():
            self.run(x, steps, record_flow=True)
        padded, (h, w) = pad_to_multiple(x, self.config.multiple)
        self._configure("flow")
        try:
            return self.core(padded)[..., :h, :w]
        finally:
            self._configure("step")

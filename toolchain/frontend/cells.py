"""Neuron cells of the PyTorch SNN: a cell holds a layer's neuron parameters, the state is explicit.

A :class:`SpikingNetwork <toolchain.frontend.snn.SpikingNetwork>` keeps one :class:`NeuronState` per
neuron layer for the length of a simulation and calls its cell with it:

* ``cell.step(state, x, run)``: one time step of input current ``x``; updates ``state`` (membrane,
  spike counts per threshold and, when the run records them, the spiking flows
  I_in = sum_t x(t) and I_out = sum_t o(t) of paper eqs. 9-10) and returns the output o(t);
* ``cell.flow(state, x)``: the differentiable spiking-flow pass of Algorithm 1: input x is the
  time-averaged input flow I_in / T; the output's value is I_out / T of the recorded simulation,
  its gradient that of ReLU(x) (it passes where I_in > 0).

:class:`MTCell` is the multi-threshold neuron (:func:`toolchain.neuron.mt.mt_step`); its step runs
either op by op or, where no gradient is needed, by the fused kernel (:mod:`toolchain.neuron.fused`),
as the run's :class:`RunOptions` says: the same numbers either way.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from ..neuron.fused import fused_mt_step, fused_step_applies
from ..neuron.mt import FireFn, heaviside, mt_output, mt_step, validate_thresholds
from ..vocab import StepKernel


@dataclass(frozen=True)
class RunOptions:
    """How one simulation steps its neurons."""

    kernel: StepKernel = "fused"      # the fused kernel where it applies, else op by op
    record_flow: bool = False         # accumulate the spiking flows (fine-tuning)
    fire: FireFn = heaviside          # the spike function (surrogate_heaviside for BPTT)
    reuse_output: bool = False        # fused steps rewrite one output tensor per layer (no autograd)


@dataclass
class NeuronState:
    """One neuron layer's state over a simulation (explicit: owned by the run, not the module)."""

    thresholds: int
    v: torch.Tensor | float = 0.0
    steps: int = 0
    neurons: int = 0
    counts: torch.Tensor = field(default=None)  # type: ignore[assignment]  # float64, per threshold
    flow_in: torch.Tensor | None = None
    flow_out: torch.Tensor | None = None
    scratch: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.counts is None:
            self.counts = torch.zeros(self.thresholds, dtype=torch.float64)

    def record(self, x: torch.Tensor, flow: torch.Tensor, counts: Sequence[torch.Tensor], run: RunOptions) -> None:
        """Bookkeeping of one op-by-op step: step and neuron counts, spikes per threshold, and the
        spiking flows I_in += x, I_out += ``flow`` when the run records them."""
        self.steps += 1
        self.neurons = x[0].numel()
        with torch.no_grad():
            self.counts += torch.stack([c.detach() for c in counts]).to(torch.float64).cpu()
            if run.record_flow:
                self.flow_in = x.detach() if self.flow_in is None else self.flow_in + x.detach()
                self.flow_out = flow.detach() if self.flow_out is None else self.flow_out + flow.detach()


class Cell(nn.Module):
    """A neuron layer's model: ``new_state``, ``step`` and ``flow`` (see the module docstring)."""

    thresholds: tuple[float, ...]

    def new_state(self) -> NeuronState:
        return NeuronState(len(self.thresholds))

    def step(self, state: NeuronState, x: torch.Tensor, run: RunOptions) -> torch.Tensor:
        raise NotImplementedError

    def flow(self, state: NeuronState, x: torch.Tensor) -> torch.Tensor:
        """Value I_out / T of the recorded simulation, gradient that of ReLU(x)."""
        if state.flow_out is None or state.steps == 0:
            raise RuntimeError("flow mode needs a recorded simulation first")
        mean_out = state.flow_out / state.steps
        relu = torch.relu(x)
        return relu - relu.detach() + mean_out


class MTCell(Cell):
    """The multi-threshold IF neuron, theta_1 > ... > theta_N on one membrane (one threshold = IF)."""

    def __init__(self, thresholds: Sequence[float]) -> None:
        super().__init__()
        self.thresholds = validate_thresholds(thresholds)

    def extra_repr(self) -> str:
        return f"thresholds={list(self.thresholds)}"

    def step(self, state: NeuronState, x: torch.Tensor, run: RunOptions) -> torch.Tensor:
        if run.kernel == "fused" and run.fire is heaviside and fused_step_applies(state.v, x):
            return self._fused_step(state, x, run)
        state.v, spikes = mt_step(state.v, x, self.thresholds, fire=run.fire)
        out = mt_output(spikes, self.thresholds)
        if out.dtype != x.dtype:           # theta * bool is float32 whatever the input's dtype
            out = out.to(x.dtype)
        state.record(x, out, [s.sum() for s in spikes], run)
        return out

    def _fused_step(self, state: NeuronState, x: torch.Tensor, run: RunOptions) -> torch.Tensor:
        """The same step as the ``mt_step`` path, by the fused kernel (bit-identical)."""
        flows = None
        if run.record_flow:
            if state.flow_in is None or state.flow_out is None:
                state.flow_in, state.flow_out = torch.zeros_like(x), torch.zeros_like(x)
            flows = (state.flow_in, state.flow_out)
        state.v, out, counts = fused_mt_step(state.v, x, self.thresholds, flows,
                                             out=state.scratch if run.reuse_output else None)
        if run.reuse_output:
            state.scratch = out
        state.steps += 1
        state.neurons = x[0].numel()
        state.counts += torch.from_numpy(counts)
        return out

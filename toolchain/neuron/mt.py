"""Multi-threshold (MT) integrate-and-fire neuron.

:func:`mt_step` is the single source of the MT maths. The PyTorch SNN (float), the integer reference
simulator, the Lava processes and the Loihi 2 profile all call it, on torch tensors or numpy arrays,
float or integer. One step, for thresholds theta_1 > theta_2 > ... > theta_N on ONE shared membrane::

    V <- clip(V + I, -V_lim, V_lim)              (clip only where a limit is given)
    for i = 1..N:  s_i = H(V - theta_i)  with H(x) = [x > 0]   (strict: V = theta_i does not fire)
                   V  <- V - theta_i * s_i        (reset by subtraction)
    o = sum_i theta_i * s_i                       (value seen downstream)

A single threshold is the plain IF neuron with reset by subtraction.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import nn

from toolchain.errors import ConfigError
from toolchain.neuron.fused import fused_mt_step, fused_step_applies

FireFn = Callable[[Any], Any]


def heaviside(x: Any) -> Any:
    """H(x) = [x > 0], elementwise, as a boolean array or tensor."""
    return x > 0


def mt_step(v: Any, current: Any, thresholds: Sequence[float], v_limit: float | None = None,
            fire: FireFn = heaviside) -> tuple[Any, tuple[Any, ...]]:
    """One MT step (see the module docstring). Returns the new membrane and one spike map per threshold."""
    v = v + current
    if v_limit is not None:
        v = v.clip(-v_limit, v_limit)
    spikes = []
    for theta in thresholds:
        s = fire(v - theta)
        v = v - theta * s
        spikes.append(s)
    return v, tuple(spikes)


def mt_output(spikes: Sequence[Any], weights: Sequence[float]) -> Any:
    """o = sum_i w_i * s_i: the cascade's output, with w_i = theta_i (or theta_i / theta_N for integer units)."""
    out = weights[0] * spikes[0]
    for w, s in zip(weights[1:], spikes[1:]):
        out = out + w * s
    return out


def default_thresholds(count: int, top: float = 2.0) -> tuple[float, ...]:
    """Theorem 3.1 of the paper: theta_{i+1} = theta_i / 2, starting from ``top`` (2, 1, 0.5, 0.25 for 4)."""
    if count < 1:
        raise ConfigError(f"number of thresholds must be >= 1, got {count}")
    return tuple(top / 2 ** i for i in range(count))


def validate_thresholds(thresholds: Sequence[float]) -> tuple[float, ...]:
    """Thresholds must be positive, finite and strictly decreasing; returns them as a tuple of floats."""
    values = tuple(float(t) for t in thresholds)
    if not values:
        raise ConfigError("at least one threshold is needed")
    for t in values:
        if not (t > 0 and t < float("inf")):
            raise ConfigError(f"thresholds must be positive and finite, got {t}")
    for a, b in zip(values, values[1:]):
        if not a > b:
            raise ConfigError(f"thresholds must be strictly decreasing, got {list(values)}")
    return values


class _SurrogateHeaviside(torch.autograd.Function):
    """H(x) forward; triangular surrogate gradient max(0, 1 - |x|) backward (for BPTT only)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad * (1.0 - x.abs()).clamp(min=0.0)


def surrogate_heaviside(x: torch.Tensor) -> torch.Tensor:
    """Differentiable stand-in for :func:`heaviside`, used by direct training and the BPTT benchmark."""
    return _SurrogateHeaviside.apply(x)


class MultiThresholdNeuron(nn.Module):
    """Stateful MT neuron layer wrapping :func:`mt_step`.

    Modes (set by the owning :class:`~toolchain.snn.SpikingUNet`, never globally):

    * ``"step"``: one time step; accumulates the spiking flows I_in = sum_t I(t) and
      I_out = sum_t o(t) (paper eqs. 9-10) when ``record_flow`` is on, and spike counts per threshold.
    * ``"flow"``: the differentiable spiking-flow pass of Algorithm 1. Input x is the time-averaged
      input flow I_in / T; the output's value is I_out / T recorded in the last step run, its gradient
      is that of ReLU(x) (passes where I_in > 0).
    """

    def __init__(self, thresholds: Sequence[float]) -> None:
        super().__init__()
        self.thresholds = validate_thresholds(thresholds)
        self.mode = "step"
        self.record_flow = False
        self.fire: FireFn = heaviside
        self.fused = True          # use toolchain.mt_kernel where it applies (same numbers, faster)
        self.reuse_output = False  # fused steps write o into one scratch tensor (see SpikingUNet.simulation_shortcuts)
        self.reset()

    def extra_repr(self) -> str:
        return f"thresholds={list(self.thresholds)}"

    def reset(self) -> None:
        """Membrane to 0 (no initial offset, as in the paper) and all accumulators cleared."""
        self.v: torch.Tensor | float = 0.0
        self.steps = 0
        self.flow_in: torch.Tensor | None = None
        self.flow_out: torch.Tensor | None = None
        self.spike_counts = torch.zeros(len(self.thresholds), dtype=torch.float64)
        self.neurons = 0
        self.scratch: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "flow":
            return self._flow(x)
        if self.fused and self.fire is heaviside and fused_step_applies(self.v, x):
            return self._fused_step(x)
        self.v, spikes = mt_step(self.v, x, self.thresholds, fire=self.fire)
        out = mt_output(spikes, self.thresholds)
        if out.dtype != x.dtype:           # theta * bool is float32 whatever the input's dtype
            out = out.to(x.dtype)
        self._record_step(x, out, [s.sum() for s in spikes])
        return out

    def _record_step(self, x: torch.Tensor, flow: torch.Tensor, counts: Sequence[torch.Tensor]) -> None:
        """Bookkeeping of one op-by-op step: step and neuron counts, spikes per threshold, and the
        spiking flows I_in += x, I_out += ``flow`` when recording."""
        self.steps += 1
        self.neurons = x[0].numel()
        with torch.no_grad():
            self.spike_counts += torch.stack([c.detach() for c in counts]).to(torch.float64).cpu()
            if self.record_flow:
                self.flow_in = x.detach() if self.flow_in is None else self.flow_in + x.detach()
                self.flow_out = flow.detach() if self.flow_out is None else self.flow_out + flow.detach()

    def _fused_step(self, x: torch.Tensor) -> torch.Tensor:
        """The same step as :meth:`forward`'s ``mt_step`` path, by the fused kernel (bit-identical)."""
        flows = None
        if self.record_flow:
            if self.flow_in is None or self.flow_out is None:
                self.flow_in, self.flow_out = torch.zeros_like(x), torch.zeros_like(x)
            flows = (self.flow_in, self.flow_out)
        self.v, out, counts = fused_mt_step(self.v, x, self.thresholds, flows,
                                            out=self.scratch if self.reuse_output else None)
        if self.reuse_output:
            self.scratch = out
        self.steps += 1
        self.neurons = x[0].numel()
        self.spike_counts += torch.from_numpy(counts)
        return out

    def _flow(self, x: torch.Tensor) -> torch.Tensor:
        if self.flow_out is None or self.steps == 0:
            raise RuntimeError("flow mode needs a recorded simulation first")
        mean_out = self.flow_out / self.steps
        relu = torch.relu(x)
        return relu - relu.detach() + mean_out


# ------------------------------------------------------------------------------------- CUBA (Lava LIF)

CUBA_DECAY_UNIT = 4096     # 12-bit decays: 4096 = full
CUBA_STATE_WRAP = 1 << 24  # u wraps in 24 bits
CUBA_V_LIMIT = (1 << 23) - 1


def _trunc_shift12(x: Any) -> Any:
    """sign(x) * (|x| >> 12): a division by 4096 rounding toward zero (numpy or torch integers)."""
    q = abs(x) >> 12
    return q - 2 * q * (x < 0)


def cuba_step(u: Any, v: Any, a_in: Any, du: int, dv: int, bias: Any, vth: int) -> tuple[Any, Any, Any]:
    """One step of Lava's fixed-point LIF (``PyLifModelBitAcc``, lava-nc 0.10.0) on int64 arrays.

    The single source of the CUBA maths (reference simulator and tests)::

        u = trunc0(u * (4096 - (du + 1)) / 4096) + (a_in << 6);  u wraps to 24-bit signed
        v = trunc0(v * (4096 - dv) / 4096) + u + bias;           v saturates at +-(2**23 - 1)
        s = v > (vth << 6);  v[s] = 0                             (reset to zero; u is kept)

    ``bias`` is the integer bias_mant << bias_exp. Returns (u, v, s) with s boolean.
    """
    u = _trunc_shift12(u * (CUBA_DECAY_UNIT - (du + 1))) + (a_in << 6)
    u = u - CUBA_STATE_WRAP * (u > (1 << 23)) + CUBA_STATE_WRAP * (u <= -(1 << 23))
    v = _trunc_shift12(v * (CUBA_DECAY_UNIT - dv)) + u + bias
    v = v.clip(-CUBA_V_LIMIT, CUBA_V_LIMIT)
    s = v > (vth << 6)
    v = v - v * s
    return u, v, s

"""A differentiable stand-in for the Heaviside spike function (direct training and BPTT only)."""
from __future__ import annotations

from typing import Any

import torch


class _SurrogateHeaviside(torch.autograd.Function):
    """H(x) forward; triangular surrogate gradient max(0, 1 - |x|) backward (for BPTT only)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * (1.0 - x.abs()).clamp(min=0.0)


def surrogate_heaviside(x: torch.Tensor) -> torch.Tensor:
    """Differentiable stand-in for :func:`heaviside`, used by direct training and the BPTT benchmark."""
    return _SurrogateHeaviside.apply(x)

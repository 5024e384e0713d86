"""Exact integer convolutions in float32: a plan per synapse group, chosen from its bounds.

A float32 sum of integers is exact while every partial sum has magnitude at most 2**24 (each is then
a float32 integer, whatever the order of the additions). For payloads |x| <= P and integer mantissas
w, every partial sum of output channel o of a convolution (padding, stride and transposition only
drop taps) is bounded by its L1 bound

    B_o = P * sum_{i, ky, kx} |w[o, i, ky, kx]|            (i: the input channels feeding o)

so one float32 convolution is exact when max_o B_o < 2**24. Otherwise the sum is split, exactly:

* **input-channel chunks** (ungrouped layers): conv(x, w) = sum_c conv(x[c], w[:, c]) over contiguous
  chunks c of input channels, each with max_o P * sum_{i in c} |w[o, i]| < 2**24, chosen greedily
  (the fewest chunks in order); every chunk's result is cast to int64 and summed there. Costs no
  more multiply-adds than one convolution.
* **weight digits**, where one input channel alone exceeds the bound (or the layer is grouped):
  w = sum_d w_d * 2**(s d) with balanced digits |w_d| <= 2**(s-1) (s = ceil(bits / D) for D
  digits, the fewest D that make every digit's chunks exact), so
  conv(x, w) = sum_d 2**(s d) * conv(x, w_d). Each digit costs one convolution.
* float64 (exact below 2**53) only if even one-bit digits do not fit.

The quick test :func:`exact_dtype` (max |w| * P * fan-in < 2**24) decides without the L1 sums for
the usual small layers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError

if TYPE_CHECKING:
    from .kernels import SynapseOp

FLOAT32_EXACT = 1 << 24      # every integer of magnitude <= 2**24 is a float32
FLOAT64_EXACT = 1 << 53


def exact_dtype(weight: np.ndarray, payload_max: int, fan_in: int) -> torch.dtype:
    """float32 if every sum of ``fan_in`` products |w| x payload_max stays below 2**24, else float64."""
    bound = float(np.abs(weight).max(initial=0)) * payload_max * fan_in
    return torch.float32 if bound < FLOAT32_EXACT else torch.float64


@dataclass(frozen=True)
class ExactTerm:
    """One convolution of the plan: payload channels [start, stop), mantissas ``weight`` (a float
    tensor holding integers), result scaled by 2**shift."""

    start: int
    stop: int
    weight: torch.Tensor
    shift: int = 0


@dataclass(frozen=True)
class ExactSynapse:
    """conv / convT / sum-pool of integer payloads with integer mantissas as a sum of exact float terms."""

    op: SynapseOp
    channels: int                    # payload channels
    terms: tuple[ExactTerm, ...]
    pool_weight: int = 0             # sum-pool: the one mantissa multiplying the window sums

    @property
    def dtypes(self) -> set[torch.dtype]:
        return {term.weight.dtype for term in self.terms}

    def __call__(self, x: torch.Tensor, shift: int = 0, out: torch.Tensor | None = None) -> torch.Tensor:
        """The synaptic current of payloads ``x`` (N, C, H, W), |x| <= the plan's payload bound, as int64,
        times 2**shift; added in place to ``out`` (an int64 tensor of the result's shape) if given."""
        op = self.op
        converted: dict[torch.dtype, torch.Tensor] = {}
        total = out
        for term in self.terms:
            dtype = term.weight.dtype
            if dtype not in converted:
                converted[dtype] = x.to(dtype)
            xs = converted[dtype]
            if term.start or term.stop != self.channels:
                xs = xs[:, term.start:term.stop]
            if op.kind == "pool":
                y = F.avg_pool2d(xs, op.kernel, divisor_override=1).to(torch.int64) * self.pool_weight
            elif op.kind == "conv":
                y = F.conv2d(xs, term.weight, stride=op.stride, padding=op.padding, groups=op.groups)
            else:
                y = F.conv_transpose2d(xs, term.weight, stride=op.stride, padding=op.padding,
                                       output_padding=op.output_padding, groups=op.groups)
            y = y.to(torch.int64)            # exact integers in float: the cast is exact
            scale = 1 << (term.shift + shift)
            if total is None:
                total = y.mul_(scale) if scale != 1 else y
            else:
                total.add_(y, alpha=scale)
        assert total is not None
        return total


def _abs_sums(op: SynapseOp, weight: np.ndarray) -> np.ndarray:
    """A[o, i] = sum_{ky, kx} |w| over the taps joining input channel i to output channel o, for an
    ungrouped layer (torch layouts: conv (O, I, k, k), convT (I, O, k, k))."""
    a = np.abs(weight.astype(np.int64)).sum(axis=(2, 3))
    return a if op.kind == "conv" else a.T


def _grouped_bound(op: SynapseOp, weight: np.ndarray) -> int:
    """max_o sum_{i, taps} |w| over the input channels feeding o (any groups)."""
    a = np.abs(weight.astype(np.int64)).sum(axis=(2, 3))
    if op.kind == "conv":
        return int(a.sum(axis=1).max(initial=0))
    groups = op.groups                     # convT (I, O/g): output j of group g sums inputs of group g
    return int(a.reshape(groups, a.shape[0] // groups, a.shape[1]).sum(axis=1).max(initial=0))


def channel_chunks(op: SynapseOp, weight: np.ndarray, payload_max: int) -> list[tuple[int, int]] | None:
    """The fewest contiguous input-channel chunks [a, b) with max_o P * sum_{i in [a, b)} A[o, i] < 2**24
    (greedy, in order); None if some single channel (or a grouped layer as a whole) exceeds the bound."""
    channels = weight.shape[1] * op.groups if op.kind == "conv" else weight.shape[0]
    if op.groups > 1:
        return [(0, channels)] if payload_max * _grouped_bound(op, weight) < FLOAT32_EXACT else None
    cumulative = np.cumsum(_abs_sums(op, weight), axis=1) * payload_max        # (O, I), nondecreasing in i
    chunks, start = [], 0
    while start < channels:
        base = cumulative[:, start - 1:start] if start else 0
        widest = (cumulative[:, start:] - base).max(axis=0)                    # bound of [start, start + j]
        count = int(np.searchsorted(widest, FLOAT32_EXACT, side="left"))     # leading entries < 2**24
        if count == 0:
            return None
        chunks.append((start, start + count))
        start += count
    return chunks


def weight_digits(weight: np.ndarray, count: int) -> list[tuple[np.ndarray, int]]:
    """``count`` balanced digits (w_d, s d) with w = sum_d w_d * 2**(s d), |w_d| <= 2**(s-1) but the last."""
    bits = max(1, int(np.abs(weight.astype(np.int64)).max(initial=0)).bit_length())
    width = -(-bits // count)
    rest, half, digits = weight.astype(np.int64), 1 << (width - 1), []
    for d in range(count - 1):
        low = np.mod(rest + half, 1 << width) - half
        digits.append((low, width * d))
        rest = (rest - low) >> width
    digits.append((rest, width * (count - 1)))
    assert np.array_equal(sum(w << s for w, s in digits), weight.astype(np.int64))
    return digits


def _slice(op: SynapseOp, weight: np.ndarray, start: int, stop: int) -> np.ndarray:
    return weight[:, start:stop] if op.kind == "conv" else weight[start:stop]


def _terms(op: SynapseOp, weight: np.ndarray, chunks: list[tuple[int, int]], dtype: torch.dtype,
           shift: int, channels: int) -> list[ExactTerm]:
    whole = chunks == [(0, channels)]
    return [ExactTerm(a, b, torch.from_numpy(np.ascontiguousarray(weight if whole else _slice(op, weight, a, b)))
                      .to(dtype), shift) for a, b in chunks]


def plan_synapse(op: SynapseOp, weight: np.ndarray, payload_max: int, float64: bool = False) -> ExactSynapse:
    """The exact plan of one synapse group (see the module docstring); ``float64``: one float64 convolution."""
    kh, kw = op.kernel
    if op.kind == "pool":
        dtype = torch.float64 if float64 else exact_dtype(np.ones(1), payload_max, kh * kw)
        return ExactSynapse(op, 0, (ExactTerm(0, 0, torch.zeros(0, dtype=dtype)),), int(weight.reshape(-1)[0]))
    channels = weight.shape[1] * op.groups if op.kind == "conv" else weight.shape[0]
    fan_in = (weight.shape[0] // op.groups if op.kind == "convT" else weight.shape[1]) * kh * kw
    if not float64 and exact_dtype(weight, payload_max, fan_in) == torch.float32:
        return ExactSynapse(op, channels, tuple(_terms(op, weight, [(0, channels)], torch.float32, 0, channels)))
    bits = int(np.abs(weight.astype(np.int64)).max(initial=0)).bit_length()
    for count in range(1, bits + 1) if not float64 else ():
        digits = weight_digits(weight, count) if count > 1 else [(weight, 0)]
        plans = [(digit, shift, channel_chunks(op, digit, payload_max)) for digit, shift in digits
                 if np.any(digit)]
        if all(chunks is not None for _, _, chunks in plans):
            terms = [t for digit, shift, chunks in plans if chunks
                     for t in _terms(op, digit, chunks, torch.float32, shift, channels)]
            return ExactSynapse(op, channels, tuple(terms))
    bound = payload_max * max(int(np.abs(weight.astype(np.int64)).max(initial=0)) * fan_in, 1)
    if bound >= FLOAT64_EXACT:
        raise ConfigError(f"sums up to {bound} (payloads <= {payload_max}, fan-in {fan_in}) are beyond exact "
                          "float64 arithmetic (2**53)")
    return ExactSynapse(op, channels, tuple(_terms(op, weight, [(0, channels)], torch.float64, 0, channels)))

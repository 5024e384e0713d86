"""Wall time of the PyTorch SNN against T times the ANN's forward pass, timed interleaved in one process.

Shared by ``benchmarks/snn_speed.py`` and ``python -m experiments speed``. For each setting
(T, torch threads, fused MT kernel or ``mt_step`` op by op) and repetition, T ANN forwards and one
SNN simulation of T steps run back to back (similar durations, so load on the machine hits both
alike); the figure is the median over repetitions of::

    ratio = SNN simulate / (T ANN forwards)

and, beside it, the ratio of the fastest runs of each (``best_ratio``).
"""
from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import torch
from torch import nn

from toolchain.frontend.snn import SpikingNetwork
from toolchain.vocab import StepKernel


@dataclass(frozen=True)
class SpeedRow:
    steps: int
    torch_threads: int
    fused: bool
    ann_times_s: list[float]       # per repetition: T forwards, divided by T
    snn_times_s: list[float]       # per repetition: one simulation of T steps

    @property
    def ann_forward_s(self) -> float:
        return statistics.median(self.ann_times_s)

    @property
    def snn_simulate_s(self) -> float:
        return statistics.median(self.snn_times_s)

    @property
    def ratio(self) -> float:
        """Median over repetitions of SNN / (T x ANN), each pair timed back to back."""
        return statistics.median(b / (self.steps * a) for a, b in zip(self.ann_times_s, self.snn_times_s))

    @property
    def best_ratio(self) -> float:
        """Fastest SNN run / (T x fastest ANN forward): the least disturbed figure on a noisy machine."""
        return min(self.snn_times_s) / (self.steps * min(self.ann_times_s))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ann_forward_s": self.ann_forward_s, "snn_simulate_s": self.snn_simulate_s,
                "ratio": self.ratio, "best_ratio": self.best_ratio}


def _seconds(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@torch.no_grad()
def time_snn_vs_ann(ann: nn.Module, snn: SpikingNetwork, x: torch.Tensor,
                    settings: Sequence[tuple[int, int, bool]], repetitions: int = 3) -> list[SpeedRow]:
    """One :class:`SpeedRow` per (T, torch threads, fused) setting; the thread count is restored."""
    threads = torch.get_num_threads()
    ann(x)
    snn.simulate(x, 2)                 # warm-up: allocations and the kernel's first (JIT) call
    rows = []
    try:
        for steps, n_threads, fused in settings:
            torch.set_num_threads(n_threads)
            kernel: StepKernel = "fused" if fused else "reference"
            ann_times, snn_times = [], []
            for _ in range(max(1, repetitions)):
                ann_times.append(_seconds(lambda: [ann(x) for _ in range(steps)]) / steps)
                snn_times.append(_seconds(lambda: snn.simulate(x, steps, kernel=kernel)))
            rows.append(SpeedRow(steps, n_threads, fused, ann_times, snn_times))
    finally:
        torch.set_num_threads(threads)
    return rows

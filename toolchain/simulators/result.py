"""What a simulation of a network gives, whichever backend ran it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..lowering.fixed_point import Overflow


@dataclass
class SimulationResult:
    """Decoded output, raw accumulator and spike statistics of one batch (totals summed over it).

    ``spikes`` (``record="spikes"``): every spike, {layer: (T, N_thr, N, C, H, W) uint8} in logical
    time; ``count_maps`` (``record="counts"``): {layer: (N_thr, N, C, H, W) int64} spikes per
    threshold and neuron summed over the T steps, and ``message_maps`` {layer: (N, C, H, W) int64}
    the neuron-steps in which any threshold fired (graded messages): what a hardware report needs,
    in memory independent of T. ``image_spike_counts`` /
    ``image_saturations`` give per batch item what a run of that image alone would report.
    ``timing`` is backend-specific (wall times); ``trace`` a physical-time run's full state record.
    """

    output: np.ndarray                       # (N, C, H, W) float64
    accumulator: np.ndarray                  # (N, C, H, W) int64
    steps: int
    spike_counts: dict[str, list[int]]       # per spiking layer, per threshold (highest first)
    saturations: dict[str, int]              # membrane clip events per layer
    static_overflow: Overflow = field(default_factory=Overflow)
    spikes: dict[str, np.ndarray] = field(default_factory=dict)
    count_maps: dict[str, np.ndarray] = field(default_factory=dict)
    message_maps: dict[str, np.ndarray] = field(default_factory=dict)
    image_spike_counts: list[dict[str, list[int]]] = field(default_factory=list)
    image_saturations: list[dict[str, int]] = field(default_factory=list)
    timing: Any = None
    trace: Any = None

    @property
    def batch(self) -> int:
        return int(np.asarray(self.output).shape[0])

    def item(self, i: int) -> SimulationResult:
        """Batch item ``i`` as a result of its own (per-image statistics; recordings dropped)."""
        if self.batch == 1:
            return self
        if len(self.image_spike_counts) != self.batch:
            raise ConfigError("this result holds batch totals only: simulate one image at a time")
        return SimulationResult(output=self.output[i:i + 1], accumulator=self.accumulator[i:i + 1], steps=self.steps,
                                spike_counts=self.image_spike_counts[i], saturations=self.image_saturations[i],
                                static_overflow=self.static_overflow,
                                count_maps={k: v[:, i:i + 1] for k, v in self.count_maps.items()},
                                message_maps={k: v[i:i + 1] for k, v in self.message_maps.items()},
                                image_spike_counts=[self.image_spike_counts[i]],
                                image_saturations=[self.image_saturations[i]], timing=self.timing)

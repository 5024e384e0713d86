"""The physical-time reference backend: stock netx (CUBA) networks, bit-exact to Lava's fixed_pt run."""
from __future__ import annotations

import numpy as np

from ..checks import check_steps
from ..errors import ConfigError
from ..ir import Network, StockNetwork
from ..simulators.physical import PhysicalResult, simulate_cuba
from ..simulators.result import SimulationResult
from ..vocab import RECORDS, Record


def physical_result(network: StockNetwork, trace: PhysicalResult, record: Record) -> SimulationResult:
    """A physical-time run as a :class:`SimulationResult`: one 'threshold' per CUBA layer; ``output``
    the output layer's spike rate (spikes / T), ``accumulator`` its spike counts; ``trace`` the whole
    run (spikes, u, v per step) when ``record == "spikes"``."""
    steps = trace.steps
    counts = {name: s.sum(axis=(0, 2, 3, 4), dtype=np.int64) for name, s in trace.spikes.items()}  # (T,N,C,H,W)->N
    n = next(iter(counts.values())).shape[0]
    out_spikes = trace.output.sum(axis=0, dtype=np.int64)            # (N, C, H, W)
    result = SimulationResult(
        output=out_spikes / steps, accumulator=out_spikes, steps=steps,
        spike_counts={name: [int(c.sum())] for name, c in counts.items()}, saturations={},
        image_spike_counts=[{name: [int(c[i])] for name, c in counts.items()} for i in range(n)],
        image_saturations=[{} for _ in range(n)])
    if record == "spikes":
        result.spikes = {name: s[:, None].astype(np.uint8) for name, s in trace.spikes.items()}
        result.trace = trace
    elif record == "counts":
        result.count_maps = {name: s.sum(axis=0, dtype=np.int64)[None] for name, s in trace.spikes.items()}
        result.message_maps = {name: m[0] for name, m in result.count_maps.items()}
    return result


class PhysicalBackend:
    """:func:`~toolchain.simulators.physical.simulate_cuba` behind the backend interface."""

    name = "reference"

    def __init__(self, reset_interval: int | None = None, reset_offset: int = 0) -> None:
        self.reset_interval, self.reset_offset = reset_interval, reset_offset

    def run(self, network: Network, inputs: np.ndarray, steps: int, record: Record = "none") -> SimulationResult:
        if not isinstance(network, StockNetwork):
            raise ConfigError(f"the physical-time backend runs stock netx networks, got a {type(network).__name__}")
        if record not in RECORDS:
            raise ConfigError(f"record must be one of {RECORDS}, got {record!r}")
        trace = simulate_cuba(network, inputs, check_steps(steps), self.reset_interval, self.reset_offset)
        return physical_result(network, trace, record)

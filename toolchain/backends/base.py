"""One interface for every simulator backend, and the registry that finds them.

A backend runs a network on a batch of inputs for T steps and returns a
:class:`~toolchain.simulators.result.SimulationResult`::

    backend = get_backend("reference", network)            # or "lava-cpu"
    result = backend.run(network, inputs, steps, record="counts")

``inputs`` are float images (N, C, H, W) in [0, 1] for this toolchain's quantized networks and the
input layer's integer bias mantissas (N, C, H, W) for stock netx networks (as lava-dl's examples
drive them). ``record`` says what the result keeps: totals, per-neuron counts or every spike.
Every backend gives the same result as the reference backend, spike for spike (tested).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..errors import ConfigError
from ..ir import Network
from ..simulators.result import SimulationResult
from ..vocab import BACKENDS, Backend, Record


@dataclass(frozen=True)
class BackendOptions:
    """Settings some backends use: lava-cpu's wall-clock limit and, for stock netx networks, netx's
    neuron reset schedule (``hdf5.Network(reset_interval=R, reset_offset=o)``)."""

    timeout_s: float = 600.0
    reset_interval: int | None = None
    reset_offset: int = 0

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise ConfigError(f"timeout must be positive, got {self.timeout_s!r}")
        if self.reset_interval is not None and (not isinstance(self.reset_interval, int) or self.reset_interval < 1):
            raise ConfigError(f"reset interval must be a positive integer, got {self.reset_interval!r}")


class SimulatorBackend(Protocol):
    """What every backend implements."""

    name: str

    def run(self, network: Network, inputs: np.ndarray, steps: int, record: Record = "none") -> SimulationResult:
        ...


Factory = Callable[[Network, BackendOptions], SimulatorBackend]


def get_backend(name: Backend, network: Network, options: BackendOptions = BackendOptions()) -> SimulatorBackend:
    """The backend ``name`` for ``network`` (the reference backend runs stock netx networks in physical time)."""
    from ..ir import StockNetwork
    from .lava import LavaBackend
    from .physical import PhysicalBackend
    from .reference import ReferenceBackend

    factories: dict[str, Factory] = {
        "reference": lambda net, opts: (PhysicalBackend(opts.reset_interval, opts.reset_offset)
                                        if isinstance(net, StockNetwork) else ReferenceBackend()),
        "lava-cpu": lambda net, opts: LavaBackend(opts),
    }
    if name not in factories:
        raise ConfigError(f"unknown backend {name!r}; choose one of {BACKENDS}")
    return factories[name](network, options)

"""The reference backend: this toolchain's quantized networks on the integer reference simulator."""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..ir import Network, QuantizedNetwork
from ..simulators.reference import ReferenceSimulator
from ..simulators.result import SimulationResult
from ..vocab import Record


class ReferenceBackend:
    """:class:`~toolchain.simulators.reference.ReferenceSimulator` behind the backend interface."""

    name = "reference"

    def __init__(self, float64: bool = False) -> None:
        self.float64 = float64

    def run(self, network: Network, inputs: np.ndarray, steps: int, record: Record = "none") -> SimulationResult:
        if not isinstance(network, QuantizedNetwork):
            raise ConfigError(f"the reference backend runs quantized networks, got a {type(network).__name__}")
        return ReferenceSimulator(network, float64=self.float64).run(inputs, steps, record)

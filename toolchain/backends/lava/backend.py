"""The lava-cpu backend behind the backend interface (Lava itself is imported only in its worker)."""
from __future__ import annotations

import numpy as np

from ...errors import ConfigError
from ...ir import Network, QuantizedNetwork, StockNetwork
from ...simulators.result import SimulationResult
from ...vocab import Record
from ..base import BackendOptions
from ..physical import physical_result


class LavaBackend:
    """This toolchain's networks on its Lava process graph; stock netx files on lava-dl's own netx."""

    name = "lava-cpu"

    def __init__(self, options: BackendOptions = BackendOptions()) -> None:
        self.options = options

    def run(self, network: Network, inputs: np.ndarray, steps: int, record: Record = "none") -> SimulationResult:
        from .runner import run_lava
        from .stock import run_stock_lava

        if isinstance(network, QuantizedNetwork):
            return run_lava(network, inputs, steps, record, timeout_s=self.options.timeout_s)
        if isinstance(network, StockNetwork):
            if network.meta.path is None:
                raise ConfigError("lava-cpu runs a stock netx network from its file: "
                                  "read it with netx_export.read_netx")
            inputs = np.asarray(inputs)
            if inputs.ndim != 4 or inputs.shape[0] != 1:
                raise ConfigError(f"lava-cpu runs one stock netx input at a time, got inputs of shape {inputs.shape}")
            trace = run_stock_lava(network.meta.path, inputs[0], steps, self.options.reset_interval,
                                   self.options.reset_offset, self.options.timeout_s)
            return physical_result(network, trace, record)
        raise ConfigError(f"the lava-cpu backend runs quantized or stock netx networks, got a {type(network).__name__}")

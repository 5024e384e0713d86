"""The lava-cpu backend: a quantized Network run spike for spike on Lava's CPU simulator.

``run_lava(network, images, steps, record="none", timeout_s=...)`` returns a
:class:`~toolchain.simulators.result.SimulationResult` with ``timing``. Importing this package does not import
Lava: Lava is imported only in the worker process each call forks (see :mod:`.runner`).

Time convention (see :mod:`.graph`): layer l's logical step k runs at Lava time step
depth(l) + k + TIME_OFFSET, TIME_OFFSET = 1 (Lava counts steps from 1).
"""
from .backend import LavaBackend
from .graph import TIME_OFFSET, physical_steps
from .runner import DEFAULT_TIMEOUT_S, LavaTiming, WorkerRecord, run_lava

__all__ = ["LavaBackend", "run_lava", "LavaTiming", "WorkerRecord", "DEFAULT_TIMEOUT_S", "TIME_OFFSET",
           "physical_steps"]

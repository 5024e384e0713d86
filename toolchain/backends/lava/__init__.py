"""The lava-cpu backend: a quantized Network run spike for spike on Lava's CPU simulator, as a
:class:`~.procs.network.LavaNetwork` (``toolchain.LavaNetwork``: stock Lava synapses, this project's
neurons; :mod:`.plan`, :mod:`.layout`, :mod:`.fast`).

``run_lava(network, images, steps, record="none", timeout_s=...)`` returns a
:class:`~toolchain.simulators.result.SimulationResult` with ``timing``. Importing this package does not import
Lava: Lava is imported only in the worker process each call forks (see :mod:`.runner`), and in
``procs`` / ``fast`` (which a user's Lava script imports).

Time convention (see :mod:`.graph`): layer l's logical step k of image j runs at Lava time step
depth(l) + j T + k + TIME_OFFSET, TIME_OFFSET = 1 (Lava counts steps from 1).
"""
from .backend import LavaBackend
from .graph import TIME_OFFSET, physical_steps
from .runner import DEFAULT_TIMEOUT_S, LavaTiming, WorkerRecord, run_lava

__all__ = ["LavaBackend", "run_lava", "LavaTiming", "WorkerRecord", "DEFAULT_TIMEOUT_S", "TIME_OFFSET",
           "physical_steps"]

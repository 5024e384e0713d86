"""The lava-cpu backend: a quantized Network run spike for spike on Lava's CPU simulator.

``run_lava(network, images, steps, record=False, timeout_s=...) -> LavaResult`` (a
:class:`~toolchain.refsim.ReferenceResult` plus ``timing``). Importing this package does not import
Lava: Lava is imported only in the worker process each call forks (see :mod:`.runner`).

Time convention (see :mod:`.simulate`): layer l's logical step k runs at Lava time step
depth(l) + k + TIME_OFFSET, TIME_OFFSET = 1 (Lava counts steps from 1).
"""
from toolchain.backends.lava.runner import DEFAULT_TIMEOUT_S, LavaResult, LavaTiming, run_lava
from toolchain.backends.lava.graph import TIME_OFFSET, physical_steps

__all__ = ["run_lava", "LavaResult", "LavaTiming", "DEFAULT_TIMEOUT_S", "TIME_OFFSET", "physical_steps"]

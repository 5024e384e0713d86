"""Free-running (``AsyncProtocol``) forms of LoihiProtocol models: the same steps without Lava's per-step barrier.

Under ``LoihiProtocol``, Lava's runtime service sends every process a spiking-phase command each step
and waits for every answer before the next step: two messages per process per step, and a barrier
that keeps all processes in lock step. A :class:`~.procs.network.LavaNetwork` needs neither: every one
of its models, every step, sends one message on each OutPort and then receives one on each InPort,
and its graph has no cycle, so what a process receives at its step t is fixed by the FIFO order of its
channels alone, however far ahead of it its producers run. :func:`free_running` turns such a model
into one that, given ``RunSteps(n)``, does the same n steps in a loop of its own (``time_step``
counted as Lava counts it, from 1), paced only by its channels, so that a process can do several
steps in one time slice of a CPU. The integers are those of the model it wraps (tested: identical
spikes, step for step).

A graph whose processes all run these forms is one AsyncProtocol sync domain; mixed with
LoihiProtocol models (a script's own RingBuffers), Lava runs one sync domain per protocol and the
channels keep the order (tested). Vars are read with ``Var.get()`` after the run has finished, and a
run is not paused or stopped before its n steps end (the lava-cpu backend's timeout and Ctrl-C kill
its process group instead).
"""
from __future__ import annotations

import functools
import typing as ty

from lava.magma.core.model.py.model import PyAsyncProcessModel, PyLoihiProcessModel
from lava.magma.core.sync.protocols.async_protocol import AsyncProtocol
from lava.magma.runtime.mgmt_token_enums import MGMT_COMMAND


class _FreeRunning(PyLoihiProcessModel):
    """Answers Lava's asynchronous RUN(n) command with n spiking phases of the model it is mixed into."""

    def __init__(self, proc_params: ty.Any) -> None:
        super().__init__(proc_params)
        self.num_steps = 0
        self._cmd_handlers[MGMT_COMMAND.RUN[0]] = self._run_free

    def _run_free(self) -> None:
        self.num_steps = int(self.service_to_process.recv()[0].item())
        for _ in range(self.num_steps):
            self.time_step += 1
            self.run_spk()
        self.process_to_service.send(PyAsyncProcessModel.Response.STATUS_DONE)


@functools.cache
def free_running(model: type) -> type:
    """``model`` (a LoihiProtocol model that only has a spiking phase) as an AsyncProtocol model of the
    same process, with the same resources and tags."""
    if not issubclass(model, PyLoihiProcessModel):
        raise TypeError(f"{model.__name__} is not a PyLoihiProcessModel")
    # ``implements`` refuses to overwrite an inherited protocol, so the class attribute is set directly.
    return type(f"FreeRunning{model.__name__}", (_FreeRunning, model),
                {"__module__": model.__module__, "implements_protocol": AsyncProtocol})

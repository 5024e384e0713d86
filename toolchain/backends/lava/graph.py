"""The lava-cpu backend's run, inside its worker process (:mod:`.runner`): a :class:`~.procs.network.LavaNetwork`
(the very process a user's own Lava script builds), a :class:`~.procs.process.FrameSource` feeding the
images into ``net.inp`` and a :class:`~.procs.process.Recorder` reading ``net.out`` (and, when recording,
every MT layer's packed spikes) on ``Loihi2SimCfg(select_tag='fixed_pt')``. Lava is imported only inside
the functions.

Time. The N images stream through the network (LavaNetwork's ``images = N``): layer l's logical step
k of image j runs at Lava step depth(l) + TIME_OFFSET + j T + k, TIME_OFFSET = 1 (Lava counts from 1),
so a run takes latency + N T Lava steps, and image j's accumulator is final at latency + (j + 1) T.

Reading results. ``Var.get()`` sends one element per message, so bulk data leaves through the one
Recorder: every step it concatenates what its InPorts received into one int64 message on an external
pipe, which the host drains step by step while the network runs (non-blocking). Only the small
per-layer counters (spike counts, saturations) are read with ``Var.get()`` at the end.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...ir import MultiThreshold, QuantizedNetwork
from ...vocab import Lowering
from .plan import TIME_OFFSET, Delays

RECORDER_BUFFER = 4
# Slots per channel (Lava's ``pypy_channel_size``, 64 by default): how far a free-running process may run
# ahead of its consumer. Each slot is a message-sized piece of shared memory, touched on first use (a page
# fault per page): 4 slots keep them warm after four steps and /dev/shm small at paper size (a 256 x 256
# compartments map of width 64 is 25 MB a message), and measured no slower than 64 on the demo net.
CHANNEL_SLOTS = 4
# Process class names a ``models`` override may name: this project's (:mod:`.procs.process`) and Lava's stock ones.
PROCESSES = ("MTNeuron", "Accumulator", "HostStatic", "DelayLine", "FrameSource", "Recorder", "Conv", "DelaySparse")

# A process model override: called in the worker (Lava imported) with the model the backend would use for a
# process, it returns the model to use instead (typically a subclass of it: fault injection, instrumentation).
ModelOverride = Callable[[type], type]


@dataclass
class Job:
    """Everything the worker needs: the network, the images' integer levels and the run settings.

    ``models`` maps a process class name (one of :data:`PROCESSES`) to a :data:`ModelOverride`
    (see :func:`run_config`); names, not classes, so that the caller never imports Lava. ``fast``:
    this toolchain's exact fast models (:mod:`.fast`), else Lava's own stock models.
    ``free_running``: every model, the source's and the Recorder's included, in its AsyncProtocol
    form (:mod:`.free_running`); else LoihiProtocol, in lock step.
    """

    network: QuantizedNetwork
    levels: np.ndarray                # (N, C, H, W) int64
    steps: int
    record: bool
    lowering: Lowering
    delays: Delays = "line"
    fast: bool = True
    models: Mapping[str, ModelOverride] = field(default_factory=dict)
    free_running: bool = True

    @property
    def batch(self) -> int:
        return len(self.levels)


def physical_steps(network: QuantizedNetwork, steps: int, images: int = 1) -> int:
    """Lava steps that run ``images`` images of ``steps`` logical steps: the output's last window step."""
    return network.output.depth + TIME_OFFSET + images * steps - 1


def start_step(depth: int) -> int:
    """The Lava step of a layer's logical step 0 (first image)."""
    return depth + TIME_OFFSET


def run_config(processes: Mapping[Any, type], models: Mapping[str, ModelOverride] | None = None) -> Any:
    """``Loihi2SimCfg(select_tag='fixed_pt')`` with every process mapped to its model (mapping instances
    skips Lava's model search, which re-executes every module of a process class's directory each time).

    ``models`` overrides the model of every process of a class, by class name: ``models["Conv"](default)``
    gives the model to run instead of ``default`` (called once per default model class).
    """
    from lava.magma.core.run_configs import Loihi2SimCfg

    overrides = dict(models or {})
    chosen: dict[tuple[str, type], type] = {}
    mapping = {}
    for proc, default in processes.items():
        name = type(proc).__name__
        override = overrides.get(name)
        if override is not None:
            key = (name, default)
            if key not in chosen:
                chosen[key] = override(default)
            default = chosen[key]
        mapping[proc] = default
    return Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map=mapping)


def build(job: Job) -> tuple[Any, Any, list[str], dict[Any, type]]:
    """The LavaNetwork, its FrameSource and Recorder: (network, recorder, recorded MT layers, models)."""
    from .layout import to_xyz
    from .procs.models import PyFrameSourceModel, recorder_model
    from .procs.network import LavaNetwork
    from .procs.process import FrameSource, Recorder

    network = job.network
    net = LavaNetwork(net_config=network, steps=job.steps, images=job.batch, lowering=job.lowering,
                      delays=job.delays, record=job.record)
    source = FrameSource(frames=to_xyz(job.levels), hold=job.steps, name="frames")
    source.s_out.connect(net.inp)
    recorded = [layer.name for layer in network.synaptic_layers
                if job.record and isinstance(layer.neuron, MultiThreshold)]
    ports = [net.neurons[name].rec_out for name in recorded] + [net.out]
    recorder = Recorder(shapes=[port.shape for port in ports], name="recorder", buffer_size=RECORDER_BUFFER)
    for i, port in enumerate(ports):
        port.connect(getattr(recorder, f"in{i}"))
    models = net.model_map(fast=job.fast, exact=True, free_running=job.free_running)
    own = {source: PyFrameSourceModel, recorder: recorder_model(len(ports))}
    if job.free_running:
        from .free_running import free_running
        own = {proc: free_running(model) for proc, model in own.items()}
    return net, recorder, recorded, {**models, **own}


def runtime_shared_memory(runtime: Any) -> list[str]:
    """Names of the shared-memory segments (under /dev/shm) of a Lava runtime's channels."""
    smm = getattr(getattr(runtime, "_messaging_infrastructure", None), "smm", None)
    return [h.name for h in getattr(smm, "_shared_memory_handles", [])]


def runtime_workers(runtime: Any) -> list[Any]:
    """The worker processes (multiprocessing.Process) of a Lava runtime."""
    return list(getattr(getattr(runtime, "_messaging_infrastructure", None), "actors", []))


def kill_runtime(runtime: Any) -> None:
    """Kill a runtime's workers (SIGKILL) and shut its shared-memory manager down (unlinks segments)."""
    for worker in runtime_workers(runtime):
        try:
            worker.kill()
        except Exception:
            pass
    infra = getattr(runtime, "_messaging_infrastructure", None)
    smm = getattr(infra, "smm", None)
    if smm is not None:
        try:
            smm.shutdown()
        except Exception:
            pass


def finish_runtime(runtime: Any, stop: Callable[[], None], ok: bool) -> None:
    """Stop a runtime that ran to the end; kill one whose run failed (its workers may hang on stop)."""
    if runtime is None:
        return
    if ok:
        stop()
    else:
        kill_runtime(runtime)


def simulate(job: Job, on_runtime: Callable[[Any], None] = lambda rt: None,
             on_running: Callable[[bool], None] = lambda running: None) -> dict[str, Any]:
    """Compile, run and read back. ``on_runtime(runtime)`` is called once the runtime exists (its
    workers are started); ``on_running(flag)`` brackets the stepping (a worker that exits in it failed).

    Returns a plain dict: ``accumulator`` (N, C, H, W) int64, ``packed`` {layer: (T, N, C, H, W)
    uint8 spikes packed as sum_i s_i << i} when recording, ``spike_counts`` {MT layer: (N_thr, N)},
    ``saturations`` {layer: (N,)} and ``timing``.
    """
    from lava.magma.core.run_conditions import RunSteps

    from .layout import from_xyz

    network, steps, n = job.network, job.steps, job.batch
    t0 = time.perf_counter()
    net, recorder, recorded, models = build(job)
    n_steps = net.lava_steps(n)
    done = {net.output_step(j): j for j in range(n)}
    t_build = time.perf_counter()
    ok = False
    try:
        try:
            net.create_runtime(run_cfg=run_config(models, job.models),
                               compile_config={"pypy_channel_size": CHANNEL_SLOTS})
        finally:            # the runtime exists (with workers and segments) even if initialize() raised
            if net.runtime is not None:
                on_runtime(net.runtime)
        t_compiled = time.perf_counter()
        packed = {name: np.zeros((steps, n) + tuple(network[name].shape), np.uint8) for name in recorded}
        starts = {name: start_step(network[name].depth) for name in recorded}
        accumulator = np.zeros((n,) + tuple(network.output.shape), np.int64)
        on_running(True)
        net.run(condition=RunSteps(num_steps=n_steps, blocking=False))
        for t in range(1, n_steps + 1):          # drain as it runs: the Recorder sends one message a step
            *maps, acc = recorder.receive()
            for name, data in zip(recorded, maps):
                j, k = divmod(t - starts[name], steps)
                if t >= starts[name] and j < n:
                    packed[name][k, j] = from_xyz(data)
            if t in done:
                accumulator[done[t]] = from_xyz(acc)
        net.wait()
        on_running(False)
        t_run = time.perf_counter()
        counts = {name: np.rint(proc.spike_counts.get()).astype(np.int64) for name, proc in net.neurons.items()
                  if name != network.output.name}                       # (N_thr, N) per layer
        saturations = {name: np.rint(proc.saturations.get()).astype(np.int64) for name, proc in net.neurons.items()}
        t_read = time.perf_counter()
        ok = True
    finally:
        on_running(False)
        finish_runtime(net.runtime, net.stop, ok)
    t_stop = time.perf_counter()
    return {
        "accumulator": accumulator, "packed": packed, "spike_counts": counts, "saturations": saturations,
        "timing": {"build_s": t_build - t0, "compile_s": t_compiled - t_build, "run_s": t_run - t_compiled,
                   "read_s": t_read - t_run, "stop_s": t_stop - t_read, "lava_steps": n_steps,
                   "processes": sum(1 for proc in models if proc is not net)},   # leaf processes
    }

"""Build a quantized Network as a graph of Lava processes and run it on Loihi2SimCfg(select_tag='fixed_pt').

This module runs inside the backend's worker process (see :mod:`toolchain.backends.lava.runner`);
Lava is imported only inside its functions.

Physical time (Lava's ``time_step`` starts at 1)::

    layer l's logical step k  ==  Lava step  depth(l) + k + TIME_OFFSET,   TIME_OFFSET = 1

The static first layer (depth 0) does its step 0 at Lava step 1; every synapse adds one step;
concat part i adds ``delays[i]`` more. A run of T logical steps takes latency + T Lava steps
(latency = the output layer's depth). Each neuron layer is active exactly during its T-step window
(Lava steps depth + 1 .. depth + T): before it no input can have arrived and the bias is held off,
after it the layer stops (what it would compute then feeds only steps beyond the other layers'
windows); a synapse skips its convolution when its input is all zeros.

Reading results. ``Var.get()`` sends one element per message, so bulk data leaves through one
:class:`~.procs.process.Recorder` process: every step it concatenates what its InPorts received
(each recorded layer's spikes packed as sum_i s_i << i, one (N, C, H, W) map, and the accumulator
register) into one int64 message on an external pipe, the mechanism of Lava's ``Extractor``. The
run is stepped non-blocking while the host drains the pipe step by step (a small buffer, no
deadlock on a full channel). One Recorder instead of one Extractor per layer means one worker
process instead of one per recorded layer, and no float64 conversions. Only the small per-layer
counters (spike counts, saturations) are read with ``Var.get()`` at the end.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...ir import Accumulator, Conv, MultiThreshold, QuantizedNetwork
from ...ir.limits import V_LIMIT
from ...simulators.kernels import SynapseOp, fixed, part_weight
from ...vocab import Lowering

TIME_OFFSET = 1
RECORDER_BUFFER = 4
PROCESSES = ("MTNeuron", "Synapse", "Accumulator", "Recorder")   # the process classes of :mod:`.procs.process`

# A process model override: called in the worker (Lava imported) with the model the backend would use for a
# process, it returns the model to use instead (typically a subclass of it: fault injection, instrumentation).
ModelOverride = Callable[[type], type]


@dataclass
class Job:
    """Everything the worker needs: the network, per-neuron static currents, and the run settings.

    ``models`` maps a process class name (one of :data:`PROCESSES`) to a :data:`ModelOverride`
    (see :func:`run_config`); names, not classes, so that the caller never imports Lava.
    """

    network: QuantizedNetwork
    batch: int
    steps: int
    record: bool
    lowering: Lowering
    static_bias: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # (mant, exp)
    models: Mapping[str, ModelOverride] = field(default_factory=dict)


def physical_steps(network: QuantizedNetwork, steps: int) -> int:
    """Lava steps needed for ``steps`` logical steps: the output's last window step."""
    return network.output.depth + TIME_OFFSET + steps - 1


def start_step(depth: int) -> int:
    """The Lava step of a layer's logical step 0."""
    return depth + TIME_OFFSET


def build(job: Job) -> tuple[dict[str, Any], Any, Any, list[str], list[Any]]:
    """The Lava processes: neuron/accumulator per layer, synapses per part, one Recorder for reading.

    Returns (neurons by layer name, the accumulator, the Recorder, the names of the layers it
    records, in its port order, the accumulator last, every process created).
    """
    from .procs.process import Accumulator as AccumulatorProcess
    from .procs.process import MTNeuron, Recorder, Synapse

    network, n = job.network, job.batch
    output = network.output
    neurons: dict[str, Any] = {}
    created: list[Any] = []
    for layer in network.synaptic_layers:
        syn_params = fixed(layer)
        shape = (n,) + tuple(layer.shape)
        static = isinstance(layer, Conv) and layer.static
        if static:
            bias_mant, bias_exp = job.static_bias[layer.name]
        else:
            bias_mant = np.asarray(syn_params.bias, np.int64).reshape(1, -1, 1, 1)
            bias_exp = np.asarray(syn_params.bias_exp, np.int64).reshape(1, -1, 1, 1)
        start = start_step(layer.depth)
        if isinstance(layer.neuron, Accumulator):
            proc = AccumulatorProcess(shape=shape, bias_mant=bias_mant, bias_exp=bias_exp, start=start,
                                      window=job.steps, v_limit=V_LIMIT, name=layer.name)
        else:
            assert isinstance(layer.neuron, MultiThreshold)
            proc = MTNeuron(shape=shape, thresholds=[int(t) for t in layer.neuron.thresholds], bias_mant=bias_mant,
                            bias_exp=bias_exp, start=start, window=job.steps, lowering=job.lowering,
                            v_limit=V_LIMIT, record=job.record, name=layer.name)
        created.append(proc)
        if not static:
            for (src, delay, offset), exp in zip(network.parts(layer), syn_params.weight_exp):
                assert isinstance(src.neuron, MultiThreshold)  # type: ignore[attr-defined]
                src_proc = neurons[src.name]
                syn = Synapse(in_shape=src_proc.s_out.shape, out_shape=shape, op=SynapseOp.of(layer),  # type: ignore[arg-type]
                              weight=part_weight(layer, offset, src.shape[0]), weight_exp=exp,
                              ratios=src.neuron.spike_weights(), lowering=job.lowering,  # type: ignore[attr-defined]
                              delay=delay, name=f"{layer.name}<-{src.name}")
                src_proc.s_out.connect(syn.s_in)
                syn.a_out.connect(proc.a_in)
                created.append(syn)
        neurons[layer.name] = proc
    recorded = [layer.name for layer in network.synaptic_layers if job.record and layer is not output]
    ports = [neurons[name].rec_out for name in recorded] + [neurons[output.name].a_out]
    recorder = Recorder(shapes=[port.shape for port in ports], name="recorder",
                        buffer_size=min(RECORDER_BUFFER, physical_steps(network, job.steps)))
    for i, port in enumerate(ports):
        port.connect(getattr(recorder, f"in{i}"))
    created.append(recorder)
    return neurons, neurons[output.name], recorder, recorded + [output.name], created


def run_config(processes: Sequence[Any] = (), models: Mapping[str, ModelOverride] | None = None) -> Any:
    """``Loihi2SimCfg(select_tag='fixed_pt')`` with each given process mapped to its model.

    Lava's compiler otherwise searches the models of every process instance anew, re-executing every
    module in the process class's directory each time; mapping the instances
    (``exception_proc_model_map`` accepts them) skips that.

    ``models`` overrides the model of every process of a class, by class name: ``models["Synapse"](default)``
    gives the model to run instead of ``default`` (called once per default model class).
    """
    from lava.magma.core.run_configs import Loihi2SimCfg

    from .procs.models import (
        PyAccumulatorModelFixed,
        PyMTNeuronModelFixed,
        PyMTNeuronModelFixedInt8,
        PySynapseModelFixed,
        recorder_model,
    )
    from .procs.process import Accumulator, MTNeuron, Recorder, Synapse

    overrides = dict(models or {})
    chosen: dict[tuple[str, type], type] = {}

    def pick(process_class: type, default: type) -> type:
        override = overrides.get(process_class.__name__)
        if override is None:
            return default
        key = (process_class.__name__, default)
        if key not in chosen:
            chosen[key] = override(default)
        return chosen[key]

    defaults: dict[Any, Any] = {MTNeuron: PyMTNeuronModelFixed, Synapse: PySynapseModelFixed,
                                Accumulator: PyAccumulatorModelFixed}
    mapping = {cls: pick(cls, model) for cls, model in defaults.items()}
    for proc in processes:
        if isinstance(proc, Recorder):
            mapping[proc] = pick(Recorder, recorder_model(len(proc.proc_params["shapes"])))
            continue
        model = defaults[type(proc)]
        if isinstance(proc, MTNeuron):
            graded = proc.proc_params["lowering"] == "graded"
            payload_max = sum(proc.proc_params["ratios"]) if graded else 1
            if payload_max <= np.iinfo(np.int8).max:
                model = PyMTNeuronModelFixedInt8
        mapping[proc] = pick(type(proc), model)
    return Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map=mapping)


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

    network, steps = job.network, job.steps
    output = network.output
    t0 = time.perf_counter()
    neurons, acc, recorder, recorded, created = build(job)
    n_steps = physical_steps(network, steps)
    t_build = time.perf_counter()
    ok = False
    try:
        try:
            acc.create_runtime(run_cfg=run_config(created, job.models))
        finally:            # the runtime exists (with workers and segments) even if initialize() raised
            if acc.runtime is not None:
                on_runtime(acc.runtime)
        t_compiled = time.perf_counter()
        packed = {name: np.zeros((steps, job.batch) + tuple(network[name].shape), np.uint8)
                  for name in recorded[:-1]}
        starts = {name: start_step(network[name].depth) for name in recorded[:-1]}
        on_running(True)
        acc.run(condition=RunSteps(num_steps=n_steps, blocking=False))
        accumulator = None
        for t in range(1, n_steps + 1):          # drain as it runs: the Recorder sends one message a step
            *maps, accumulator = recorder.receive()
            for name, data in zip(recorded, maps):
                k = t - starts[name]
                if 0 <= k < steps:
                    packed[name][k] = data
        acc.wait()
        on_running(False)
        t_run = time.perf_counter()
        counts = {name: np.rint(proc.spike_counts.get()).astype(np.int64) for name, proc in neurons.items()
                  if name != output.name}                       # (N_thr, N) per layer
        saturations = {name: np.rint(proc.saturations.get()).astype(np.int64) for name, proc in neurons.items()}
        t_read = time.perf_counter()
        ok = True
    finally:
        on_running(False)
        finish_runtime(acc.runtime, acc.stop, ok)
    t_stop = time.perf_counter()
    return {
        "accumulator": np.asarray(accumulator).astype(np.int64),
        "packed": packed, "spike_counts": counts, "saturations": saturations,
        "timing": {"build_s": t_build - t0, "compile_s": t_compiled - t_build, "run_s": t_run - t_compiled,
                   "read_s": t_read - t_run, "stop_s": t_stop - t_read, "lava_steps": n_steps,
                   "processes": len(created)},
    }

"""run_lava: the lava-cpu backend's public entry; it starts, watches and cleans up the worker (:mod:`.worker`).

Isolation. Lava is never imported in the caller's process. Each call forks one worker process
(multiprocessing 'fork' context) that makes itself a session leader (its own process group),
sets torch to one thread, imports Lava, builds and runs the network and sends the result back
through a pipe. Lava's own workers (one OS process per Lava process, the runtime service, the
shared-memory manager) are forked from it and so belong to its process group. Whatever happens,
the caller ends by killing that whole group (SIGKILL; after a normal exit nothing is left in it),
reaping the worker and unlinking the shared-memory segments the worker reported. So:

* a deadlock (e.g. an exception in a process model: Lava's runtime then waits forever) becomes
  ``BackendError("lava-cpu run timed out after N s")``; a Lava process that dies while the network
  steps is noticed by a watchdog thread in the worker and reported at once as a BackendError
  with its traceback; the worker itself dying (SIGKILL, the OOM killer) is noticed by the caller
  within half a second (its exit status, not the pipe, which Lava's processes hold open) and
  reported as a BackendError, its group killed and its segments unlinked;
* Ctrl-C (KeyboardInterrupt in the caller) kills the group before it propagates; the worker is
  outside the terminal's process group, so it never sees the SIGINT itself;
* if the caller dies, the worker's watchdog notices (parent pid changes) and kills its group;
* the caller's multiprocessing start method is left alone (importing Lava forces 'fork').
"""
from __future__ import annotations

import importlib.util
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ...checks import check_steps
from ...errors import BackendError, ConfigError, ExactnessError
from ...ir import Accumulator, Conv, QuantizedNetwork
from ...lowering.fixed_point import Overflow
from ...simulators.kernels import fixed, image_levels, static_current
from ...simulators.result import SimulationResult
from ...vocab import LOWERINGS, RECORDS, Lowering, Record
from .graph import PROCESSES, Job, ModelOverride
from .patch import INSTALL
from .plan import DELAYS, Delays
from .worker import SHM_DIR, worker_main

DEFAULT_TIMEOUT_S = 600.0
WORKER_EXIT_GRACE_S = 30.0   # a finished worker must exit (stop Lava) within this, or it is killed
WORKER_SAFETY_MARGIN_S = 30.0  # the worker kills itself this long after the caller's timeout


@dataclass
class LavaTiming:
    """Wall times of one :func:`run_lava` call, in seconds.

    ``run_s`` is the stepping alone (Lava's run of ``lava_steps`` steps, with the Recorder drained
    as it goes); ``per_step_s`` = run_s / logical steps T (what one step of the reference
    simulator's T-step run corresponds to, the latency steps included), ``per_lava_step_s`` =
    run_s / lava_steps (= latency + N T for N images). ``total_s`` is end to end: fork, build,
    compile, worker start, run, read back, stop and clean-up.
    """

    total_s: float
    build_s: float
    compile_s: float
    run_s: float
    read_s: float
    stop_s: float
    lava_steps: int
    logical_steps: int
    processes: int

    @property
    def per_step_s(self) -> float:
        return self.run_s / self.logical_steps

    @property
    def per_lava_step_s(self) -> float:
        return self.run_s / self.lava_steps

    def to_dict(self) -> dict[str, float]:
        return {**asdict(self), "per_step_s": self.per_step_s, "per_lava_step_s": self.per_lava_step_s}


@dataclass(frozen=True)
class WorkerRecord:
    """One run's isolated worker, reported to ``on_worker`` once it has been cleaned up."""

    pid: int                    # the worker's pid: also the id of its session and process group
    segments: tuple[str, ...]   # the shared-memory segments it reported (unlinked by now)


def run_lava(network: QuantizedNetwork, images: np.ndarray, steps: int, record: Record = "none",
             timeout_s: float = DEFAULT_TIMEOUT_S, lowering: Lowering | None = None,
             models: Mapping[str, ModelOverride] | None = None,
             on_worker: Callable[[WorkerRecord], None] | None = None, delays: Delays = "line",
             fast: bool = True, free_running: bool | None = None) -> SimulationResult:
    """Run a quantized network on Lava's CPU simulator (``Loihi2SimCfg(select_tag='fixed_pt')``) as a
    :class:`~.procs.network.LavaNetwork` (stock Conv / DelaySparse synapses, this project's neurons).

    ``images``: (N, C, H, W) floats of exactly the network's input shape, turned into integer levels
    by :func:`toolchain.simulators.kernels.image_levels` as the reference simulator does; the N images
    stream through the network one T-step window after the other (latency + N T Lava steps).
    ``lowering`` defaults to the network's (``meta['lowering']``); ``delays`` is LavaNetwork's (how
    concat delays are carried); ``fast``: this toolchain's exact fast models (default), else Lava's
    own stock models (slow); ``free_running``: every model in its AsyncProtocol form
    (:mod:`.free_running`: the same steps, paced by the channels instead of a barrier per step), else
    in LoihiProtocol's lock step; by default the fast models run free and Lava's own models as Lava
    ships them. The result equals ``ReferenceSimulator(network).run(images, steps, record)`` field
    for field; ``spikes`` (when ``record``) is {MT layer: (T, N_thr, N, C, H, W)
    uint8} in logical time, the latency shift undone. ``result.timing`` holds the wall times.
    A synapse group whose sum would wrap in Lava's arithmetic (24-bit Conv) raises
    :class:`~toolchain.errors.ExactnessError` (a BackendError) naming it, rather than giving other spikes
    (with ``fast=False`` Lava's own models wrap unchecked).

    Raises :class:`~toolchain.errors.BackendError` when Lava fails or runs past ``timeout_s``
    (wall-clock seconds for the whole call); nothing is left running either way.

    Seams for tests and instrumentation: ``models`` replaces process models by process class name
    (:data:`~.graph.PROCESSES`; see :func:`~.graph.run_config`), e.g. with a subclass that injects a fault;
    ``on_worker`` is called with a :class:`WorkerRecord` after the worker has been cleaned up, whether the
    run succeeded, failed or was interrupted.
    """
    t0 = time.perf_counter()
    if not isinstance(network, QuantizedNetwork):
        raise ConfigError("the lava-cpu backend runs quantized networks (export first)")
    check_steps(steps)
    if record not in RECORDS:
        raise ConfigError(f"record must be one of {RECORDS}, got {record!r}")
    lowering = lowering or network.lowering
    if lowering not in LOWERINGS:
        raise ConfigError(f"lowering must be one of {LOWERINGS}, got {lowering!r}")
    if not timeout_s > 0:
        raise ConfigError(f"timeout must be positive, got {timeout_s!r}")
    if delays not in DELAYS:
        raise ConfigError(f"delays must be one of {DELAYS}, got {delays!r}")
    models = dict(models or {})
    for name, override in models.items():
        if name not in PROCESSES or not callable(override):
            raise ConfigError(f"models must map process names {PROCESSES} to callables, got {name!r}: {override!r}")
    images = np.asarray(images)
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(network.input.shape) or len(images) == 0:
        raise ConfigError(f"images must be (N, {', '.join(map(str, network.input.shape))}) for this "
                          f"network, got {images.shape}")
    output = network.output
    if not isinstance(getattr(output, "neuron", None), Accumulator):
        raise ConfigError("the network's last layer must be the output accumulator")

    if not lava_installed():
        raise BackendError(f"the lava-cpu backend needs Lava (lava-nc 0.10.0, lava-dl 0.6.0, patched for Python "
                           f"3.11); install it with: {INSTALL}")

    levels = image_levels(images)
    static_overflow = Overflow()          # the host's bias-format overflow, as the reference simulator reports it
    for layer in network.synaptic_layers:
        if isinstance(layer, Conv) and layer.static:
            static_current(layer, levels, static_overflow)
    job = Job(network, levels, steps, record != "none", lowering, delays, bool(fast), models,
              bool(fast) if free_running is None else bool(free_running))
    payload = run_in_worker(job, float(timeout_s), on_worker)

    acc = payload["accumulator"]
    spikes = {}
    for name, packed in payload["packed"].items():
        n_thr = network[name].neuron.compartments  # type: ignore[attr-defined]
        bits = np.arange(n_thr, dtype=np.uint8).reshape(1, n_thr, 1, 1, 1, 1)
        spikes[name] = (packed[:, None] >> bits) & np.uint8(1)
    counts, sats, n = payload["spike_counts"], payload["saturations"], len(images)
    t = payload["timing"]
    timing = LavaTiming(total_s=time.perf_counter() - t0, build_s=t["build_s"], compile_s=t["compile_s"],
                        run_s=t["run_s"], read_s=t["read_s"], stop_s=t["stop_s"], lava_steps=t["lava_steps"],
                        logical_steps=steps, processes=t["processes"])
    count_maps, message_maps = {}, {}
    if record == "counts":
        for name, rec in spikes.items():
            count_maps[name] = rec.sum(axis=0, dtype=np.int64)
            message_maps[name] = rec.any(axis=1).sum(axis=0, dtype=np.int64)
        spikes = {}
    return SimulationResult(
        output=acc / (fixed(output).unit * steps), accumulator=acc, steps=steps,  # type: ignore[arg-type]
        spike_counts={k: v.sum(axis=1).tolist() for k, v in counts.items()},
        saturations={k: int(v.sum()) for k, v in sats.items()},
        image_spike_counts=[{k: v[:, i].tolist() for k, v in counts.items()} for i in range(n)],
        image_saturations=[{k: int(v[i]) for k, v in sats.items()} for i in range(n)],
        static_overflow=static_overflow, spikes=spikes, count_maps=count_maps, message_maps=message_maps,
        timing=timing)


# ----------------------------------------------------------------------------------------- caller side

def lava_installed() -> bool:
    """Whether Lava's runtime can be found, without importing it (``lava`` is a namespace package)."""
    try:
        return importlib.util.find_spec("lava.magma") is not None
    except (ImportError, ValueError):
        return False


def run_in_worker(job: Job, timeout_s: float,
                   on_worker: Callable[[WorkerRecord], None] | None = None) -> dict[str, Any]:
    ctx = multiprocessing.get_context("fork")
    recv_conn, send_conn = ctx.Pipe(duplex=False)
    worker = ctx.Process(target=worker_main, name="lava-cpu-worker",
                         args=(send_conn, job, os.getpid(), timeout_s + WORKER_SAFETY_MARGIN_S))
    shm_names: list[str] = []
    finished = False
    try:
        worker.start()
        send_conn.close()
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BackendError(f"lava-cpu run timed out after {timeout_s:g} s")
            if not recv_conn.poll(min(remaining, 0.5)):
                # The pipe does not report a dead worker (EOF): Lava's processes, forked from it, hold its
                # write end too. So the worker's own exit is watched (a zombie until _reap: its group id
                # stays reserved for the kill there).
                status = _exit_status(worker.pid)
                if status != "still running" and not recv_conn.poll(0):
                    raise BackendError(f"the lava-cpu worker died without a result ({status}; e.g. the "
                                       f"out-of-memory killer); its Lava processes are stopped")
                continue
            try:
                kind, data = recv_conn.recv()
            except EOFError:
                code = _exit_status(worker.pid)
                raise BackendError(f"the lava-cpu worker exited without a result ({code})") from None
            if kind == "shm":
                shm_names.extend(data)
            elif kind == "ok":
                finished = True
                return data
            elif "toolchain.errors.ExactnessError" in str(data):
                raise ExactnessError(f"lava-cpu run stopped: {data}")
            else:
                raise BackendError(f"lava-cpu run failed: {data}")
    finally:
        if not send_conn.closed:
            send_conn.close()
        if worker.pid is not None:
            _reap(worker, recv_conn, shm_names, grace_s=WORKER_EXIT_GRACE_S if finished else 0.0)
        recv_conn.close()
        if on_worker is not None and worker.pid is not None:
            on_worker(WorkerRecord(worker.pid, tuple(shm_names)))


def _exit_status(pid: int | None) -> str:
    if pid is None:
        return "not started"
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return "already reaped"
    if info is None:
        return "still running"
    if info.si_code == os.CLD_EXITED:
        return f"exit status {info.si_status}"
    return f"killed by signal {info.si_status}"


def _reap(worker: Any, conn: Any, shm_names: list[str], grace_s: float) -> None:
    """Wait up to ``grace_s`` for the worker to exit, kill its process group, reap it, unlink its segments
    (``shm_names`` plus any still unread on ``conn``).

    The group is killed before the worker is reaped: an unreaped (zombie) worker keeps its pid, and so
    the group id, from being reused.
    """
    pid = worker.pid
    end = time.monotonic() + grace_s
    while True:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                break
        except ChildProcessError:
            break
        if time.monotonic() >= end:
            break
        time.sleep(0.01)
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    worker.join()
    try:                      # segments announced after the caller stopped reading (timeout, Ctrl-C)
        while not conn.closed and conn.poll(0):
            kind, data = conn.recv()
            if kind == "shm":
                shm_names.extend(data)
    except (EOFError, OSError, ValueError):
        pass
    for name in shm_names:
        try:
            os.unlink(os.path.join(SHM_DIR, name.lstrip("/")))
        except FileNotFoundError:
            pass
        except OSError:
            pass

"""run_lava: the lava-cpu backend's public entry, and the isolated worker it runs Lava in.

Isolation. Lava is never imported in the caller's process. Each call forks one worker process
(multiprocessing 'fork' context) that makes itself a session leader (its own process group),
sets torch to one thread, imports Lava, builds and runs the network and sends the result back
through a pipe. Lava's own workers (one OS process per Lava process, the runtime service, the
shared-memory manager) are forked from it and so belong to its process group. Whatever happens,
the caller ends by killing that whole group (SIGKILL; after a normal exit nothing is left in it),
reaping the worker and unlinking the shared-memory segments the worker reported. So:

* a deadlock (e.g. an exception in a process model: Lava's runtime then waits forever) becomes
  ``BackendError("lava-cpu run timed out after N s")``; a worker that dies while the network
  steps is noticed by a watchdog thread in the worker and reported at once as a BackendError
  with the worker's traceback;
* Ctrl-C (KeyboardInterrupt in the caller) kills the group before it propagates; the worker is
  outside the terminal's process group, so it never sees the SIGINT itself;
* if the caller dies, the worker's watchdog notices (parent pid changes) and kills its group;
* the caller's multiprocessing start method is left alone (importing Lava forces 'fork').
"""
from __future__ import annotations

import importlib.util
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ...checks import check_steps
from ...errors import BackendError, ConfigError
from ...ir import Accumulator, Conv, QuantizedNetwork
from ...lowering.fixed_point import Overflow, to_bias_format
from ...simulators.kernels import fixed, image_levels, static_current
from ...simulators.result import SimulationResult
from ...vocab import LOWERINGS, RECORDS, Lowering, Record
from .graph import Job, runtime_shared_memory, runtime_workers, simulate

DEFAULT_TIMEOUT_S = 600.0
WORKER_EXIT_GRACE_S = 30.0   # a finished worker must exit (stop Lava) within this, or it is killed
WORKER_SAFETY_MARGIN_S = 30.0  # the worker kills itself this long after the caller's timeout
SHM_DIR = "/dev/shm"


@dataclass
class LavaTiming:
    """Wall times of one :func:`run_lava` call, in seconds.

    ``run_s`` is the stepping alone (Lava's run of ``lava_steps`` steps, with the Recorder drained
    as it goes); ``per_step_s`` = run_s / logical steps T (what one step of the reference
    simulator's T-step run corresponds to), ``per_lava_step_s`` = run_s / lava_steps
    (= T + latency). ``total_s`` is end to end: fork, build, compile, worker start, run, read back,
    stop and clean-up.
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


def run_lava(network: QuantizedNetwork, images: np.ndarray, steps: int, record: Record = "none",
             timeout_s: float = DEFAULT_TIMEOUT_S, lowering: Lowering | None = None) -> SimulationResult:
    """Run a quantized network on Lava's CPU simulator (``Loihi2SimCfg(select_tag='fixed_pt')``).

    ``images``: (N, C, H, W) floats of exactly the network's input shape, turned into integer levels
    by :func:`toolchain.simulators.kernels.image_levels` as the reference simulator does; the N images run side
    by side (every process has a batch dimension). ``lowering`` defaults to the network's
    (``meta['lowering']``). The result equals ``ReferenceSimulator(network).run(images, steps,
    record)`` field for field; ``spikes`` (when ``record``) is {MT layer: (T, N_thr, N, C, H, W)
    uint8} in logical time, the latency shift undone. ``result.timing`` holds the wall times.

    Raises :class:`~toolchain.errors.BackendError` when Lava fails or runs past ``timeout_s``
    (wall-clock seconds for the whole call); nothing is left running either way.
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
    images = np.asarray(images)
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(network.input.shape) or len(images) == 0:
        raise ConfigError(f"images must be (N, {', '.join(map(str, network.input.shape))}) for this "
                          f"network, got {images.shape}")
    output = network.output
    if not isinstance(getattr(output, "neuron", None), Accumulator):
        raise ConfigError("the network's last layer must be the output accumulator")

    if not lava_installed():
        raise BackendError("the lava-cpu backend needs Lava (lava-nc 0.10.0, patched for Python 3.11): "
                           "run scripts/env.sh")

    levels = image_levels(images)
    static_overflow = Overflow()
    static_bias = {}
    for layer in network.synaptic_layers:
        if isinstance(layer, Conv) and layer.static:
            current = static_current(layer, levels, static_overflow).numpy()
            static_bias[layer.name] = to_bias_format(current, Overflow())   # exact: it is in the format
    job = Job(network, len(images), steps, record != "none", lowering, static_bias)
    payload = _run_in_worker(job, float(timeout_s))

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


def _run_in_worker(job: Job, timeout_s: float) -> dict[str, Any]:
    ctx = multiprocessing.get_context("fork")
    recv_conn, send_conn = ctx.Pipe(duplex=False)
    worker = ctx.Process(target=_worker_main, name="lava-cpu-worker",
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
            else:
                raise BackendError(f"lava-cpu run failed: {data}")
    finally:
        if not send_conn.closed:
            send_conn.close()
        if worker.pid is not None:
            _reap(worker, recv_conn, shm_names, grace_s=WORKER_EXIT_GRACE_S if finished else 0.0)
        recv_conn.close()


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


# ----------------------------------------------------------------------------------------- worker side

class _Worker:
    """State shared by the worker's main thread and its watchdog thread."""

    def __init__(self, conn: Any, parent_pid: int, limit_s: float) -> None:
        self.conn = conn
        self.parent_pid = parent_pid
        self.deadline = time.monotonic() + limit_s
        self.lock = threading.Lock()
        self.runtime: Any = None
        self.shm: list[str] = []
        self.running = False

    def send(self, message: tuple[str, Any]) -> None:
        with self.lock:
            self.conn.send(message)

    def on_segment(self, name: str) -> None:
        """A shared-memory segment was just created: remember it and tell the caller at once, so
        that whoever kills this run can unlink it."""
        self.shm.append(name)
        self.send(("shm", [name]))

    def on_runtime(self, runtime: Any) -> None:
        self.runtime = runtime
        missed = [name for name in runtime_shared_memory(runtime) if name not in self.shm]
        if missed:
            self.shm.extend(missed)
            self.send(("shm", missed))

    def track_segments(self) -> None:
        """Report every segment Lava's shared-memory manager creates in this worker process."""
        from lava.magma.runtime.message_infrastructure import shared_memory_manager as smm

        create = smm.SharedMemoryManager.create_shared_memory

        def create_shared_memory(manager: Any, size: int) -> Any:
            handle = create(manager, size)
            self.on_segment(handle.name)
            return handle

        smm.SharedMemoryManager.create_shared_memory = create_shared_memory

    def on_running(self, running: bool) -> None:
        self.running = running

    def die(self) -> None:
        """Kill the whole process group (Lava's workers, its shared-memory manager, this worker) at
        once, after unlinking the run's segments (the manager, killed, cannot unlink them)."""
        try:
            for name in self.shm:
                try:
                    os.unlink(os.path.join(SHM_DIR, name.lstrip("/")))
                except OSError:
                    pass
        finally:
            os.killpg(0, signal.SIGKILL)

    def watch(self) -> None:
        while True:
            if os.getppid() != self.parent_pid:
                self.die()
            if time.monotonic() > self.deadline:
                self._fail("the lava-cpu worker ran past its safety limit")
            workers = runtime_workers(self.runtime) if self.running and self.runtime is not None else []
            if not workers:
                time.sleep(0.1)
                continue
            try:
                dead = multiprocessing.connection.wait([w.sentinel for w in workers], timeout=0.1)
            except (ValueError, OSError):   # the run just ended and Lava closed its workers
                continue
            if dead and self.running:
                self._fail(self._describe(workers, dead))

    def _fail(self, message: str) -> None:
        try:
            self.send(("error", message))
        finally:
            self.die()

    @staticmethod
    def _describe(workers: list[Any], dead: list[Any]) -> str:
        parts = []
        for w in workers:
            if w.sentinel not in dead:
                continue
            detail = ""
            try:
                conn = getattr(w, "_pconn", None)
                if conn is not None and conn.poll(1.0):
                    exc = conn.recv()
                    if exc:
                        detail = ":\n" + str(exc[1]).rstrip()
            except Exception:
                pass
            parts.append(f"Lava worker {w.name} died{detail}")
        return "; ".join(parts) or "a Lava worker died"


def _worker_main(conn: Any, job: Job, parent_pid: int, limit_s: float) -> None:
    os.setsid()                                   # own process group: the caller kills it as a whole
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the caller decides (it kills the group on Ctrl-C)
    state = _Worker(conn, parent_pid, limit_s)
    try:
        import torch
        torch.set_num_threads(1)
        if "lava.magma.runtime.message_infrastructure.multiprocessing" not in sys.modules:
            # Lava calls multiprocessing.set_start_method('fork') on import, which raises if a start
            # method was already fixed (in the caller, before the fork). Clear it here, in the worker.
            multiprocessing.set_start_method(None, force=True)
        threading.Thread(target=state.watch, name="lava-cpu-watchdog", daemon=True).start()
        state.track_segments()
        if hasattr(job, "simulate"):      # a stock netx run (.stock.StockJob)
            payload = job.simulate(state.on_runtime, state.on_running)
        else:
            payload = simulate(job, on_runtime=state.on_runtime, on_running=state.on_running)
        state.send(("ok", payload))
    except BaseException:
        try:
            state.send(("error", traceback.format_exc()))
        finally:
            state.die()

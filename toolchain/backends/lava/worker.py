"""The lava-cpu worker process: it runs Lava in its own process group and reports back through a pipe.

See :mod:`.runner` for how the caller starts, watches and cleans up after it. A watchdog thread
here notices a Lava process that dies while the network steps, a caller that dies, and the safety
time limit; each kills the whole process group at once (after unlinking the run's shared-memory
segments, which the killed manager can no longer unlink).
"""
from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
import traceback
from typing import Any

from .graph import Job, runtime_shared_memory, runtime_workers, simulate

SHM_DIR = "/dev/shm"


class WorkerState:
    """State shared by the worker's main thread and its watchdog thread."""

    def __init__(self, conn: Any, parent_pid: int, limit_s: float) -> None:
        self.conn = conn
        self.parent_pid = parent_pid
        self.deadline = time.monotonic() + limit_s
        self.lock = threading.Lock()
        self.runtime: Any = None
        self.shm: list[str] = []
        self.running = False
        self.tracebacks: dict[str, str] = {}    # Lava worker name -> its traceback (read by either thread)

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
                self._fail(self.failure(workers, len(dead)) or "a Lava worker died")

    def _fail(self, message: str) -> None:
        try:
            self.send(("error", message))
        finally:
            self.die()

    def collect(self, workers: list[Any]) -> dict[str, str]:
        """Read the tracebacks Lava's workers sent (each worker's pipe, or the exception Lava's own join
        read from it) into ``tracebacks``, which both threads share: whichever reads first keeps it."""
        with self.lock:
            for w in workers:
                if w.name in self.tracebacks:
                    continue
                exc = getattr(w, "_exception", None)     # read already by Lava's join (its run failed)
                try:
                    conn = getattr(w, "_pconn", None)
                    if not exc and conn is not None and conn.poll(0):
                        exc = conn.recv()
                except Exception:
                    pass
                if exc:
                    self.tracebacks[w.name] = str(exc[1]).rstrip()
            return dict(self.tracebacks)

    def failure(self, workers: list[Any], dead: int = 0, wait_s: float = 2.0) -> str:
        """The failed workers' tracebacks. Lava stops the others when one fails, and the failing one may
        still be sending its traceback when another is seen dead: they are collected for up to
        ``wait_s`` until one arrives; ``dead`` workers without one are counted."""
        deadline = time.monotonic() + wait_s
        found = self.collect(workers)
        while not found and time.monotonic() < deadline:
            time.sleep(0.05)
            found = self.collect(workers)
        details = [f"Lava worker {name} died:\n{tb}" for name, tb in found.items()]
        if dead > len(details):
            details.append(f"{dead - len(details)} Lava worker(s) died" + (" with them" if details else ""))
        return "; ".join(details)


def worker_main(conn: Any, job: Job, parent_pid: int, limit_s: float) -> None:
    os.setsid()                                   # own process group: the caller kills it as a whole
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the caller decides (it kills the group on Ctrl-C)
    state = WorkerState(conn, parent_pid, limit_s)
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
            message = traceback.format_exc()
            workers = runtime_workers(state.runtime) if state.runtime is not None else []
            errors = state.failure(workers, wait_s=2.0 if "Exception(s) occurred" in message else 0.0)
            state.send(("error", errors + "\n" + message if errors else message))
        finally:
            state.die()

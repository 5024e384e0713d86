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

from .graph import Job, runtime_errors, runtime_shared_memory, runtime_workers, simulate

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
    def _describe(workers: list[Any], dead: list[Any], wait_s: float = 2.0) -> str:
        """The failed workers' exceptions. Lava stops the others when one fails, and the failing one may
        still be sending its traceback when another is seen dead: every worker's pipe is read, for up to
        ``wait_s``, until a traceback arrives; workers that died without one are counted."""
        details: list[str] = []
        deadline = time.monotonic() + wait_s
        while True:
            for w in workers:
                try:
                    conn = getattr(w, "_pconn", None)
                    exc = conn.recv() if conn is not None and conn.poll(0) else None
                except Exception:
                    exc = None
                if exc:
                    details.append(f"Lava worker {w.name} died:\n{str(exc[1]).rstrip()}")
            if details or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        silent = sum(1 for w in workers if w.sentinel in dead) - len(details)
        if silent > 0:
            details.append(f"{silent} Lava worker(s) died" + (" with them" if details else ""))
        return "; ".join(details) or "a Lava worker died"


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
            errors = runtime_errors(state.runtime) if state.runtime is not None else []
            state.send(("error", "; ".join(errors) + "\n" + message if errors else message))
        finally:
            state.die()

"""Worker processes that never outlive the process that started them.

A worker forked for a run (a ``simulate --workers`` pool process, a torchrun rank, the lava-cpu worker)
asks the kernel to signal it when its parent dies (Linux ``prctl(PR_SET_PDEATHSIG)``): a parent killed by
SIGKILL or the OOM killer then takes its workers with it instead of leaving them running at 100 % CPU.
The parent may already be gone when the worker asks; :func:`die_with_parent` checks that afterwards and
signals the worker itself. Elsewhere than on Linux it does nothing (and says so). :func:`fork_map` is the
forked worker pool of ``simulate --workers``, built so that no death of a worker or of its parent can make
the other wait for ever.
"""
from __future__ import annotations

import ctypes
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
from collections.abc import Callable, Generator, Sequence
from typing import Any

from .errors import BackendError

PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGKILL, parent: int | None = None) -> bool:
    """Have the kernel send ``sig`` to this process when its parent exits; True if it will.

    ``parent``: the pid the parent had (default: the current parent); if the parent has already changed
    (it died before this call), ``sig`` is sent at once. The kernel's notion of parent is the thread that
    forked this process: call this in a process started from a thread that lives as long as its parent.
    """
    expected = os.getppid() if parent is None else parent
    armed = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
    if os.getppid() != expected or os.getppid() == 1:      # orphaned before the kernel could be asked
        os.kill(os.getpid(), sig)
    return armed


def fork_map(function: Callable[[Any], Any], items: Sequence[Any], workers: int, what: str = "worker",
             initializer: Callable[[], None] | None = None) -> Generator[Any, None, None]:
    """``function(item)`` for every item, yielded in order, computed in ``workers`` forked processes.

    Unlike :class:`multiprocessing.Pool`: every worker has its own pipe (no lock shared with the workers, so
    a worker killed at any moment cannot leave one held; Pool.terminate then waits for ever), a worker that
    dies ends the map at once with a :class:`~toolchain.errors.BackendError` naming ``what`` and how it
    died, workers die with this process (:func:`die_with_parent`), and whatever ends the map (its end, an
    error, Ctrl-C, SIGTERM, the caller closing the generator) kills and reaps every worker. An exception a
    worker raises is raised here. ``function`` and ``items`` reach the workers by fork (``function`` is not
    pickled; each item and result is).
    """
    context = multiprocessing.get_context("fork")
    parent = os.getpid()
    processes: list[Any] = []
    pipes: list[Any] = []
    try:
        for _ in range(max(1, min(workers, len(items)))):
            here, there = context.Pipe(duplex=True)
            process = context.Process(target=_serve, args=(there, function, parent, initializer), daemon=True)
            process.start()
            there.close()
            processes.append(process)
            pipes.append(here)
        busy: dict[int, int] = {}                   # worker -> index of the item it computes
        results: dict[int, Any] = {}
        queue = iter(range(len(items)))

        def dispatch(worker: int) -> None:
            index = next(queue, None)
            if index is not None:
                try:
                    pipes[worker].send((index, items[index]))
                except OSError as exc:               # BrokenPipeError: it died before it took this item
                    raise BackendError(f"a {what} process died before it could start its work") from exc
                busy[worker] = index
        for worker in range(len(processes)):
            dispatch(worker)
        for wanted in range(len(items)):
            while wanted not in results:
                waiting = [pipes[w] for w in busy] + [processes[w].sentinel for w in busy]
                for ready in multiprocessing.connection.wait(waiting):
                    worker = next(w for w in busy if ready in (pipes[w], processes[w].sentinel))
                    try:
                        # a dead worker's pipe reads as EOF: ready (and poll() true) before its sentinel may be
                        if not pipes[worker].poll():
                            raise EOFError
                        index, ok, value = pipes[worker].recv()
                    except (EOFError, OSError):
                        processes[worker].join(timeout=1.0)          # reap it, so that its exit code is known
                        code = processes[worker].exitcode
                        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit status {code}"
                        raise BackendError(f"a {what} process died ({how}; e.g. the out-of-memory killer); the run "
                                           f"stops and its other workers are stopped") from None
                    del busy[worker]
                    if not ok:
                        raise value if isinstance(value, BaseException) else BackendError(f"a {what} failed: {value}")
                    results[index] = value
                    dispatch(worker)
            yield results.pop(wanted)
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
        for process in processes:
            process.join()
        for pipe in pipes:
            pipe.close()


def _serve(pipe: Any, function: Callable[[Any], Any], parent: int, initializer: Callable[[], None] | None) -> None:
    """A fork_map worker: items from its pipe, results back, until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)      # the parent handles Ctrl-C and kills its workers
    signal.signal(signal.SIGTERM, signal.SIG_DFL)     # a worker holds no output: a signal may end it at once
    die_with_parent(signal.SIGKILL, parent)
    if initializer is not None:
        initializer()
    while True:
        try:
            index, item = pipe.recv()
        except (EOFError, OSError):
            os._exit(0)
        try:
            pipe.send((index, True, function(item)))
        except Exception as exc:
            try:
                pipe.send((index, False, exc))
            except Exception:                        # an exception that cannot be pickled
                pipe.send((index, False, f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"))

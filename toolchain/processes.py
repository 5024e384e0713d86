"""Worker processes that never outlive the process that started them.

A worker forked for a run (a ``simulate --workers`` pool process, a torchrun rank, the lava-cpu worker)
asks the kernel to signal it when its parent dies (Linux ``prctl(PR_SET_PDEATHSIG)``): a parent killed by
SIGKILL or the OOM killer then takes its workers with it instead of leaving them running at 100 % CPU.
The parent may already be gone when the worker asks; :func:`die_with_parent` checks that afterwards and
signals the worker itself. Elsewhere than on Linux it does nothing (and says so).
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys

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

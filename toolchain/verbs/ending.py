"""How a verb ends on the command line: its report, or exactly one line on stderr and an exit code.

:func:`run_verb` runs a verb's handler and turns every way it can end into one line, never a traceback:
``error: ...`` (exit 2, or the error's own code) for a :class:`~toolchain.errors.ToolchainError`, a file
that cannot be read or written (a full disk, a folder in the way, no permission), running out of memory,
or input nested too deeply; ``interrupted: ...`` (130) for Ctrl-C and ``terminated: ...`` (143) for
SIGTERM (taken the same clean path: temporary files removed, workers stopped). Anything else is a bug in
the toolchain: ``error: internal error ...`` (exit 1); set ``SPIKING_UNET_TRACEBACK=1`` to see its
traceback. Library messages name settings as `name`; :func:`flags` turns them into command-line flags.
"""
from __future__ import annotations

import os
import re
import signal
import sys
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import ToolchainError, ToolchainWarning
from ..files import os_reason

INTERNAL_EXIT = 1
RESOURCE_EXIT = 2
_OUT_OF_MEMORY = re.compile(r"can't allocate memory|DefaultCPUAllocator|out of memory|Cannot allocate memory",
                            re.IGNORECASE)


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into the same clean exit as Ctrl-C (temporary files removed, Lava stopped)."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


def install_sigterm() -> Any:
    """SIGTERM raises :class:`Terminated` while a verb runs; returns the handler to restore (None if this is
    not the main thread, where signals cannot be handled)."""
    try:
        return signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:
        return None


def stderr_line(text: str) -> None:
    """One line in a single write: lines of several processes (torchrun ranks) never interleave."""
    sys.stderr.write(" ".join(text.split()) + "\n")
    sys.stderr.flush()


def flags(message: str, names: Mapping[str, str]) -> str:
    """Library messages name settings as `name`; on the command line they are flags."""
    return re.sub(r"`(\w+)`", lambda m: names.get(m.group(1), m.group(1)), message)


def os_error_line(exc: OSError) -> str:
    """One line for a file that cannot be read or written: the file and the reason."""
    reason = os_reason(exc)
    where = exc.filename if exc.filename is not None else ""
    other = f" -> {exc.filename2}" if getattr(exc, "filename2", None) else ""
    return f"{where}{other}: {reason}" if where else reason


def out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and bool(_OUT_OF_MEMORY.search(str(exc))))


def interrupt_behind(exc: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C / SIGTERM that caused ``exc``, if any: a signal that arrives inside a C extension (h5py,
    torch) can surface as another exception (SystemError, a reader's 'malformed file') whose chain holds it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _interrupted(interrupt: KeyboardInterrupt) -> int:
    if isinstance(interrupt, Terminated):
        stderr_line("terminated: no partial output was left behind")
        return 128 + signal.SIGTERM
    stderr_line("interrupted: no partial output was left behind")
    return 130


def run_verb(work: Callable[[], Any], names: Mapping[str, str], main_rank: Callable[[], bool]) -> int:
    """Run ``work`` (a verb and the writing of its report); the exit code, after at most one stderr line."""
    previous = install_sigterm()
    shown = warnings.showwarning

    def show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                     file: Any = None, line: str | None = None) -> None:
        if issubclass(category, ToolchainWarning) and main_rank():
            stderr_line(f"warning: {flags(str(message), names)}")

    warnings.showwarning = show_warning
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")       # each distinct warning once
            work()
    except KeyboardInterrupt as exc:
        return _interrupted(exc)
    except Exception as exc:
        interrupt = interrupt_behind(exc)
        return _interrupted(interrupt) if interrupt is not None else _failed(exc, names)
    finally:
        warnings.showwarning = shown
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0


def _failed(exc: Exception, names: Mapping[str, str]) -> int:
    """One error line for an exception of the verb; its exit code."""
    if isinstance(exc, ToolchainError):
        stderr_line(f"error: {flags(str(exc), names)}")
        return exc.exit_code
    if isinstance(exc, OSError):
        stderr_line(f"error: {os_error_line(exc)}")
        return RESOURCE_EXIT
    if isinstance(exc, RecursionError):
        stderr_line("error: input nested too deeply to be processed (a hostile or damaged file?)")
        return RESOURCE_EXIT
    if out_of_memory(exc):
        stderr_line(f"error: out of memory ({type(exc).__name__}); use smaller inputs or batches, or a machine with "
                    f"more memory")
        return RESOURCE_EXIT
    if os.environ.get("SPIKING_UNET_TRACEBACK"):
        raise exc
    detail = " ".join(str(exc).split())[:200]
    stderr_line(f"error: internal error ({type(exc).__name__}: {detail}); this is a bug in the toolchain: please "
                f"report it with the command (SPIKING_UNET_TRACEBACK=1 shows where)")
    return INTERNAL_EXIT

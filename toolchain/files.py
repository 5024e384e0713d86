"""Atomic output: files written to a temporary file beside the target, then renamed; output folders staged
beside the target and swapped in as a whole.

* :func:`atomic_path`: a failure or Ctrl-C at any point leaves either the old file or no file, never a
  half-written one. The temporary name ``.<name>.<pid>-<start>.<random>.part`` identifies its writer
  (process id and start time), so the next write of the same target removes the ``.part`` files a killed
  run left (their writer is gone). An error writing it (a full disk, a folder in the way, no permission)
  is one :class:`~toolchain.errors.OutputError` naming the target.
* :func:`output_folder`: a verb whose output is a folder writes it into a staging folder beside it; on
  success the staging folder replaces the target in one rename (``renameat2(RENAME_EXCHANGE)`` where the
  target exists) and the previous contents are deleted, so a folder never mixes two runs, or new and stale
  results. An exclusive lock refuses a second run into the same folder while one writes it. A target that
  holds anything this toolchain did not write there (e.g. the run's own inputs) is refused, not replaced.
* :func:`safe_name`: a name taken from an input (an image's stem) made into one plain folder name.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import OutputError

MANIFEST = ".spiking-unet-output.json"
_OWNED = re.compile(r"\.(\d+)-(\d+)\.[^./]+\.(part|staging)$")
_REASONS = {errno.ENOSPC: "no space left on the device", errno.EFBIG: "file too large (a file size limit)",
            errno.EDQUOT: "disk quota exceeded", errno.EROFS: "a read-only file system",
            errno.EACCES: "permission denied", errno.EPERM: "operation not permitted",
            errno.EISDIR: "a folder is in the way", errno.ENOTDIR: "a part of its path is not a folder",
            errno.EEXIST: "something is in the way", errno.ENAMETOOLONG: "the name is too long"}


def os_reason(exc: OSError) -> str:
    """A short reason for an OSError (no paths)."""
    return _REASONS.get(exc.errno or 0, exc.strerror or type(exc).__name__)


def _start_time(pid: int) -> int | None:
    """A process's start time (clock ticks after boot, /proc/<pid>/stat field 22); None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat[stat.rindex(")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def owner_tag() -> str:
    """``<pid>-<start time>``: this process, unambiguously (a reused pid has another start time)."""
    return f"{os.getpid()}-{_start_time(os.getpid()) or 0}"


def _writer_alive(pid: int, start: int) -> bool:
    if Path("/proc/self/stat").exists():
        return _start_time(pid) == start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_orphans(folder: Path, name: str) -> list[str]:
    """Remove the ``.part`` files and ``.staging`` folders of ``name`` in ``folder`` whose writer is dead."""
    removed: list[str] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _OWNED.search(entry.name)
        if match is None or entry.name[:match.start()] != f".{name}" or _writer_alive(int(match.group(1)),
                                                                                      int(match.group(2))):
            continue
        with contextlib.suppress(OSError):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed.append(entry.name)
    return removed


def _make_parent(target: Path) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise OutputError(f"{target}: {target.parent} (or a folder above it) is a file, not a folder") from exc
    except OSError as exc:
        raise OutputError(f"{target}: its folder cannot be created ({os_reason(exc)})") from exc


@contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it is renamed onto ``target``."""
    target = Path(target)
    _make_parent(target)
    if target.is_dir() and not target.is_symlink():
        raise OutputError(f"{target}: is a folder; name a file to write")
    clean_orphans(target.parent, target.name)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.{owner_tag()}.", suffix=".part", dir=target.parent)
    except OSError as exc:
        raise OutputError(f"{target}: cannot be written ({os_reason(exc)})") from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())     # mkstemp creates 0600; outputs are ordinary files
        os.replace(tmp, target)
    except OSError as exc:
        raise OutputError(f"{target}: cannot be written ({os_reason(exc)})") from exc
    finally:
        with contextlib.suppress(OSError):
            if tmp.exists():
                tmp.unlink()


def write_json(target: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_bytes(target: str | os.PathLike[str], payload: bytes) -> None:
    """Write bytes atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(payload)


def safe_name(name: str) -> str:
    """``name`` as one plain, visible folder name: separators and NULs become ``_``, and a leading dot too
    (``..`` -> ``_.``; an empty name -> ``_``)."""
    cleaned = re.sub(r"[/\\\x00]", "_", name)
    if cleaned.startswith("."):
        cleaned = "_" + cleaned[1:]
    return cleaned or "_"


def _exchange(a: Path, b: Path) -> bool:
    """Swap two folders in one rename (Linux renameat2); False where the system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if not hasattr(libc, "renameat2"):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if libc.renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL):
        return False
    raise OSError(code, os.strerror(code), str(b))


@contextmanager
def _lock(target: Path) -> Iterator[None]:
    """An exclusive lock of ``target``'s name in its folder (``.<name>.lock``, removed on release; the kernel
    releases it if the process dies). OutputError at once if another run holds it."""
    path = target.parent / f".{target.name}.lock"
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        except OSError as exc:
            raise OutputError(f"{target}: cannot be written ({os_reason(exc)})") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputError(f"{target}: another run is writing this folder right now; wait for it or name "
                              f"another folder") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino     # not a lock file its last holder removed
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)


def _previous_run(target: Path) -> None:
    """``target`` is absent, empty, or exactly what an earlier run of this toolchain wrote there."""
    if not target.exists() and not target.is_symlink():
        return
    if not target.is_dir():
        raise OutputError(f"{target}: exists and is not a folder; name a folder to write")
    entries = sorted(os.listdir(target))
    if not entries:
        return
    listed: set[str] = set()
    if MANIFEST in entries:
        try:
            listed = {str(name) for name in json.loads((target / MANIFEST).read_text())["entries"]}
        except (OSError, ValueError, KeyError, TypeError):
            listed = set()
    foreign = [name for name in entries if name not in listed and name != MANIFEST]
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise OutputError(f"{target}: holds {shown}, which an earlier run of this toolchain did not write there; "
                          f"it would be deleted when the folder is replaced: name a new or empty folder")


@contextmanager
def output_folder(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty staging folder; on success it replaces ``target`` as a whole (module docstring)."""
    target = Path(os.path.abspath(target))
    cwd = os.getcwd()
    if target == Path(target.anchor) or cwd == str(target) or cwd.startswith(str(target) + os.sep):
        raise OutputError(f"{target}: the output folder is (or holds) the current folder; name another folder")
    _make_parent(target)
    with _lock(target):
        _previous_run(target)
        clean_orphans(target.parent, target.name)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.{owner_tag()}.", suffix=".staging",
                                        dir=target.parent))
        try:
            yield staging
            entries = sorted(os.listdir(staging))
            (staging / MANIFEST).write_text(json.dumps({"written_by": "spiking-unet toolchain", "entries": entries},
                                                       indent=1) + "\n")
            os.chmod(staging, 0o777 & ~_umask())
            if not target.exists() and not target.is_symlink():
                os.rename(staging, target)
            elif not _exchange(staging, target):     # staging now holds what was there before (or the link)
                aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.{owner_tag()}.", suffix=".staging",
                                              dir=target.parent))
                os.rename(target, aside / "old")     # no exchange: move the old folder aside, then rename
                os.rename(staging, target)
                staging = aside
        except OSError as exc:
            raise OutputError(f"{target}: cannot be written ({os_reason(exc)})") from exc
        finally:
            with contextlib.suppress(OSError):
                if staging.is_symlink():
                    staging.unlink()
                elif staging.exists():
                    shutil.rmtree(staging)


def _resolved(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.realpath(path))


def _blocking_file(path: Path) -> Path | None:
    """The first existing ancestor of ``path`` that is not a folder (None if there is none)."""
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def check_outputs(files: list[str | os.PathLike[str]], folders: list[str | os.PathLike[str]],
                  inputs: list[str | os.PathLike[str]]) -> None:
    """Before a verb starts: every output file and folder can be where it is asked for, and none would
    overwrite (or, for a folder, replace) one of the verb's inputs. OutputError naming both if not."""
    sources = [(str(p), _resolved(p)) for p in inputs]
    for output, is_folder in [(f, False) for f in files] + [(f, True) for f in folders]:
        path, real = Path(output), _resolved(output)
        for shown, source in sources:
            if real == source or (is_folder and real in source.parents):
                what = "is" if real == source else "holds"
                raise OutputError(f"{output}: {what} this run's input {shown}; writing it would "
                                  f"{'overwrite' if real == source else 'delete'} it: name another output")
        blocker = _blocking_file(real)
        if blocker is not None:
            raise OutputError(f"{output}: {blocker} is a file, not a folder")
        if not is_folder and path.is_dir():
            raise OutputError(f"{output}: is a folder; name a file to write")
        if is_folder and path.exists() and not path.is_dir():
            raise OutputError(f"{output}: exists and is not a folder; name a folder to write")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask

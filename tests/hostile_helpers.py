"""Helpers of the hostile-input tests (tests/hostile/, issue 16): run the CLI in a subprocess under a memory
and time limit, check its one stderr line, and build hostile files (a plain module: pytest puts tests/ on
sys.path). The exact wording of a message is not tested, only the facts it must name (the file, the HDF5 path
or tensor, a keyword)."""
from __future__ import annotations

import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
CLI = str(REPO / "cli.py")
GB = 1 << 30
TINY = ["--width", "4", "--depth", "2", "--epochs", "1", "--batches-per-epoch", "2", "--batch", "2", "--patch", "32"]
LINUX = sys.platform.startswith("linux")


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def last_line(err: str) -> str:
    """The last non-empty line of stderr, progress-bar carriage returns taken as line ends."""
    lines = [ln for ln in re.split(r"[\r\n]", err) if ln.strip()]
    return lines[-1] if lines else ""


def assert_one_error(err: str, *names: str, code: int | None = None, rc: int | None = None) -> str:
    """stderr ends in one 'error:' line naming every ``names``; no traceback anywhere."""
    assert "Traceback" not in err, err[-3000:]
    line = last_line(err)
    assert re.match(r"(error: |\S+: error: )", line), err[-2000:]   # ours, or argparse's 'cli.py VERB: error:'
    for name in names:
        assert str(name) in line, (name, line)
    if code is not None:
        assert rc == code, (rc, line)
    return line


def words(line: str, *paths) -> str:
    """The line with every given path (and its name) removed, lower case: keyword checks must not match a file
    name (pytest's tmp_path holds the test's name)."""
    for path in paths:
        line = line.replace(str(path), "").replace(Path(path).name, "")
    return line.lower()


def run_cli(argv: list, timeout: float = 120, mem: int | None = 3 * GB, fsize: int | None = None,
            cwd: Path | None = None) -> tuple[int, str, str, float]:
    """The CLI in a subprocess (own process group) under RLIMIT_AS ``mem`` and a wall-clock limit;
    returns (rc, stdout, stderr, seconds). A run past ``timeout`` is killed and fails the test."""
    def limits() -> None:
        os.setsid()
        if mem:
            resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))   # Python ignores SIGXFSZ: EFBIG

    t0 = time.monotonic()
    p = subprocess.Popen([sys.executable, CLI, *map(str, argv)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=env(), preexec_fn=limits, cwd=cwd)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        pytest.fail(f"{argv[0]} still running after {timeout} s (had to be killed)")
    return p.returncode, out.decode(errors="replace"), err.decode(errors="replace"), time.monotonic() - t0


def main_fails(capsys, argv: list, *names: str, code: int = 2) -> str:
    """cli.main in this process fails with one line naming ``names``; returns the line."""
    import cli
    capsys.readouterr()
    rc = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    return assert_one_error(err, *names, code=code, rc=rc)


def leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def part_files(folder: Path) -> list[str]:
    """Temporary files and staging folders of this toolchain's atomic writes under ``folder``."""
    return sorted(str(p) for p in folder.rglob("*") if p.name.endswith((".part", ".staging", ".lock")))


def gray(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w), dtype=np.uint8)


def copy(src: Path, dst: Path) -> Path:
    shutil.copyfile(src, dst)
    return dst


def text(path: Path, content: str) -> Path:
    path.write_text(content)
    return path


def procs() -> dict[int, tuple[int, int]]:
    """Every process: pid -> (parent pid, process group), from /proc."""
    out = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            out[int(d.name)] = (int(fields[1]), int(fields[2]))
    return out


def children(pid: int) -> list[int]:
    return [q for q, (pp, _) in procs().items() if pp == pid]


def alive(pid: int) -> bool:
    """Running (a zombie is dead)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False

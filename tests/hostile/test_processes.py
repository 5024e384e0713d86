"""Issue 16, workers (cases 7, 8 and 9 of the issue): a lava-cpu worker that dies ends the run at once with one
line and nothing it started survives; pool workers and torchrun ranks die with the process that started them,
even when it is killed by SIGKILL; a SIGTERM during a pool run ends in one 'terminated:' line."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hostile_helpers import CLI, LINUX, alive, assert_one_error, children, env, last_line, procs


def _segments(pids) -> set[str]:
    names = set()
    for p in pids:
        try:
            with open(f"/proc/{p}/maps") as handle:
                for line in handle:
                    if "/dev/shm/" in line:
                        names.add(line.split("/dev/shm/")[1].split()[0])
        except OSError:
            pass
    return names


# =============================================================== 7. a dead lava-cpu worker

@pytest.mark.lava
@pytest.mark.skipif(not LINUX, reason="inspects /proc")
def test_7_dead_lava_worker_ends_the_run_at_once(files, tmp_path):
    from toolchain.backends.lava.runner import lava_installed
    if not lava_installed():
        pytest.skip("Lava is not installed")
    p = subprocess.Popen([sys.executable, CLI, "simulate", str(files["net"]), "--backend", "lava-cpu", "--steps",
                          "200000", "--timeout", "300", "--input", str(files["img"]), "--out", str(tmp_path / "o")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env())
    worker, group, t0 = None, [], time.monotonic()
    try:
        while time.monotonic() - t0 < 120:
            kids = children(p.pid)
            if kids:
                worker = kids[0]
                group = [q for q, (_, g) in procs().items() if g == worker]
                if len(group) > 3 and _segments(group):
                    break
            time.sleep(0.3)
        assert worker is not None and len(group) > 3, "the Lava run did not start"
        segments = _segments(group)
        os.kill(worker, signal.SIGKILL)                   # as the OOM killer would
        _, err = p.communicate(timeout=30)                # not --timeout's 300 s
    finally:
        if p.poll() is None:
            p.kill()
    assert_one_error(err.decode(), "worker", code=3, rc=p.returncode)
    deadline = time.monotonic() + 10            # SIGKILLed: gone once the kernel has torn them down
    while any(alive(q) for q, (_, g) in procs().items() if g == worker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [q for q, (_, g) in procs().items() if g == worker and alive(q)] == []
    assert [s for s in segments if os.path.exists(f"/dev/shm/{s}")] == []
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(not LINUX, reason="inspects /proc")
def test_7_dead_pool_worker_ends_the_run_at_once(files, tmp_path):
    """multiprocessing.Pool replaces a worker that dies and waits for ever for the result it took along."""
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for k in range(4):
        shutil.copyfile(files["img"], imgs / f"i{k}.png")
    p = subprocess.Popen([sys.executable, CLI, "simulate", str(files["net"]), "--input", str(imgs), "--out",
                          str(tmp_path / "o"), "--workers", "2", "--steps", "20000"], env=env(),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        t0 = time.monotonic()
        while len(children(p.pid)) < 2 and time.monotonic() - t0 < 60:
            time.sleep(0.2)
        workers = children(p.pid)
        assert len(workers) >= 2
        time.sleep(1.0)                                  # both are simulating
        os.kill(workers[0], signal.SIGKILL)
        _, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert_one_error(err.decode(), "worker", "died", code=3, rc=p.returncode)
    time.sleep(1.0)
    assert [w for w in workers if alive(w)] == []
    assert not (tmp_path / "o").exists()


# ====================================================================== 8. orphans

@pytest.mark.skipif(not LINUX, reason="PR_SET_PDEATHSIG is Linux's")
def test_8_pool_workers_die_with_the_main_process(files, tmp_path):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for k in range(4):
        shutil.copyfile(files["img"], imgs / f"i{k}.png")
    p = subprocess.Popen([sys.executable, CLI, "simulate", str(files["net"]), "--input", str(imgs), "--out",
                          str(tmp_path / "o"), "--workers", "2", "--steps", "3000"], env=env(),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    while len(children(p.pid)) < 2 and time.monotonic() - t0 < 60:
        time.sleep(0.2)
    workers = children(p.pid)
    assert len(workers) >= 2
    p.kill()
    p.wait()
    deadline = time.monotonic() + 10
    while any(alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    survivors = [w for w in workers if alive(w)]
    for w in survivors:
        os.kill(w, signal.SIGKILL)
    assert survivors == []


def test_8_die_with_parent_signals_an_orphan_at_once(tmp_path):
    """The race: a parent that is already gone when the child asks. The child then signals itself."""
    code = ("import os, signal, sys, time; from toolchain.processes import die_with_parent\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    time.sleep(0.5)\n"                          # the parent exits meanwhile
            "    die_with_parent(signal.SIGKILL, parent=int(sys.argv[1]))\n"
            "    open(sys.argv[2], 'w').write('survived')\n"
            "    os._exit(0)\n")
    marker = tmp_path / "marker"
    subprocess.run([sys.executable, "-c", code, str(os.getpid() + 10 ** 6), str(marker)], env=env(), check=True)
    time.sleep(1.5)
    assert not marker.exists()


@pytest.mark.skipif(not LINUX or shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None,
                    reason="needs Linux and torchrun")
def test_8_torchrun_ranks_die_with_their_launcher(tmp_path):
    torchrun = str(Path(sys.executable).parent / "torchrun")
    out = tmp_path / "ddp.pt"
    p = subprocess.Popen([torchrun, "--nproc_per_node", "2", "--master_port", str(29500 + os.getpid() % 400), CLI,
                          "train", "--width", "4", "--depth", "2", "--epochs", "200", "--batches-per-epoch", "50",
                          "--batch", "4", "--patch", "32", "--out", str(out)], env=env(),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=os.setsid)
    t0 = time.monotonic()
    ranks: list[int] = []
    while time.monotonic() - t0 < 120 and not (len(ranks) >= 2 and out.exists()):
        ranks = children(p.pid)
        time.sleep(0.5)
    assert len(ranks) >= 2
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    deadline = time.monotonic() + 20
    while any(alive(r) for r in ranks) and time.monotonic() < deadline:
        time.sleep(0.2)
    survivors = [r for r in ranks if alive(r)]
    for r in survivors:
        os.kill(r, signal.SIGKILL)
    assert survivors == []
    err = p.stderr.read().decode(errors="replace")
    assert "Traceback" not in err and err.count("terminated:") >= 1, err[-2000:]


# ============================================================ 9. SIGTERM during a pool run

@pytest.mark.skipif(not LINUX, reason="signals")
def test_9_sigterm_during_a_pool_run_is_one_line(files, tmp_path):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for k in range(40):
        shutil.copyfile(files["img"], imgs / f"i{k}.png")
    for delay in (2.0, 4.0):
        p = subprocess.Popen([sys.executable, CLI, "simulate", str(files["net"]), "--input", str(imgs), "--out",
                              str(tmp_path / "o"), "--workers", "2", "--steps", "5000"], env=env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=os.setsid)
        time.sleep(delay)
        os.killpg(p.pid, signal.SIGTERM)                 # the whole group, as a terminal or systemd does
        _, err = p.communicate(timeout=60)
        err = err.decode(errors="replace")
        assert p.returncode == 143 and "Traceback" not in err and "BrokenPipeError" not in err, err[-2000:]
        assert last_line(err).startswith("terminated:"), err[-500:]        # on a line of its own
        assert not (tmp_path / "o").exists()

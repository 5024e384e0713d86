"""Faults: an interrupted training run resumes to exactly the weights of an uninterrupted one; Ctrl-C
(SIGINT) and a kill (SIGTERM) during training, export and simulation leave no partial or temporary
file and, for lava-cpu and the simulation worker pool, no process or shared-memory segment."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

import cli
import netx_export.writer as writer_module
from toolchain.verbs import runs
from toolchain.frontend.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[2]
TINY = ["--width", "4", "--depth", "2", "--batches-per-epoch", "2", "--batch", "2", "--patch", "32"]
EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}



@pytest.fixture(scope="module")
def chain(tiny, tmp_path_factory):
    d = tmp_path_factory.mktemp("faults")
    img = d / "img.png"
    iio.imwrite(img, np.random.default_rng(0).integers(0, 256, (16, 16), dtype=np.uint8))
    return {"dir": d, "ann": tiny.ann, "snn": tiny.snn, "net": tiny.net(2, 16), "img": img}


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


# ------------------------------------------------------------------------------------------------ resume

def _interrupt_after_epoch(monkeypatch, epoch: int) -> None:
    """Ctrl-C right after the checkpoint of ``epoch`` is written."""
    real = runs.save_checkpoint
    saved = []

    def save(path, checkpoint):
        real(path, checkpoint)
        saved.append(checkpoint.training_state["epoch"])
        if saved[-1] == epoch:
            raise KeyboardInterrupt

    monkeypatch.setattr(runs, "save_checkpoint", save)


@pytest.mark.parametrize("verb", ["train", "finetune"])
def test_resumed_run_equals_uninterrupted_run(chain, tmp_path, monkeypatch, capsys, verb):
    args = {"train": ["train", *TINY, "--epochs", "2"],
            "finetune": ["finetune", str(chain["snn"]), "--steps", "2", *TINY[4:], "--epochs", "2"]}[verb]
    whole, part = tmp_path / "whole.pt", tmp_path / "part.pt"
    assert cli.main([*args, "--out", str(whole)]) == 0

    with monkeypatch.context() as patch:
        _interrupt_after_epoch(patch, 1)
        assert cli.main([*args, "--out", str(part)]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert load_checkpoint(part).training_state["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["part.pt", "whole.pt"]      # no temporary file

    assert cli.main([*args, "--resume", "--out", str(part), "--json", str(tmp_path / "r.json")]) == 0
    a, b = load_checkpoint(whole), load_checkpoint(part)
    for name, tensor in a.state_dict.items():
        assert torch.equal(tensor, b.state_dict[name]), name
    assert a.training_state["history"] == b.training_state["history"]
    assert whole.read_bytes() == part.read_bytes()        # weights, optimizer, generators, report: all of it
    # resuming a finished run changes nothing; asking for more epochs extends it
    assert cli.main([*args, "--resume", "--out", str(part)]) == 0
    assert whole.read_bytes() == part.read_bytes()
    assert cli.main([*args[:-1], "3", "--resume", "--out", str(part)]) == 0
    assert load_checkpoint(part).training_state["epoch"] == 3


def test_resume_without_a_checkpoint_starts_fresh(tmp_path):
    out = tmp_path / "a.pt"
    assert cli.main(["train", *TINY, "--epochs", "1", "--resume", "--out", str(out)]) == 0
    assert load_checkpoint(out).training_state["epoch"] == 1


# ------------------------------------------------------------------------------------- signals: training

def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _sigint_as_at_a_terminal() -> None:
    """Child preexec: SIGINT back to its default disposition.

    A process started in the background by a non-interactive shell (``cmd &``, nohup, some CI
    runners) inherits SIGINT *ignored*, and Python then never raises KeyboardInterrupt. A user at a
    terminal has it enabled: that is the case these tests are about.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def sigint_enabled():
    """SIGINT raises KeyboardInterrupt in this process for the test (whatever the runner inherited)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _wait_for(predicate, proc: subprocess.Popen, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"the command ended before {what}: {proc.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_training_leaves_only_complete_checkpoints(tmp_path, sig):
    out = tmp_path / "run" / "ann.pt"
    proc = subprocess.Popen([sys.executable, str(REPO / "cli.py"), "train", *TINY, "--epochs", "10000",
                             "--out", str(out)], cwd=tmp_path, env=_env(), start_new_session=True,
                            preexec_fn=_sigint_as_at_a_terminal, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        _wait_for(out.exists, proc, 120, "the first checkpoint")
        time.sleep(0.5)                                    # in the middle of later epochs (and saves)
        if sig == signal.SIGINT:
            os.killpg(proc.pid, sig)                       # what a terminal's Ctrl-C does
        else:
            os.kill(proc.pid, sig)                         # what `kill PID` does
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == EXIT[sig], err
    assert err.strip().splitlines()[-1].endswith("no partial output was left behind"), err
    assert "Traceback" not in err, err
    assert _files(out.parent) == ["ann.pt"]                # no *.part temporary file
    ckpt = load_checkpoint(out)                            # complete and valid
    assert ckpt.training_state["epoch"] >= 1


# --------------------------------------------------------------------------------------- signals: export

@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_export_leaves_the_old_file_and_no_temporary(chain, tmp_path, monkeypatch, capsys, sig,
                                                                   sigint_enabled):
    """The signal arrives while the HDF5 file is half written (after a few layers)."""
    target = tmp_path / "out" / "model.net"
    target.parent.mkdir()
    target.write_bytes(b"the previous export")
    real = writer_module.write_layer
    before = signal.getsignal(signal.SIGTERM)

    def write_layer(group, index, entries):
        real(group, index, entries)
        if index == 3:
            os.kill(os.getpid(), sig)           # delivered to this (main) thread: its handler runs here
            time.sleep(1)

    monkeypatch.setattr(writer_module, "write_layer", write_layer)
    assert cli.main(["export", str(chain["snn"]), "-o", str(target), "--input-size", "16"]) == EXIT[sig]
    assert "no partial output" in capsys.readouterr().err
    assert _files(target.parent) == ["model.net"] and target.read_bytes() == b"the previous export"
    assert signal.getsignal(signal.SIGTERM) == before       # cli.main restores the handler it installed


# ------------------------------------------------------------------------------------ signals: simulate

def _processes() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, session id) of every live (non-zombie) process."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        if fields[0] != "Z":
            out[int(entry)] = (int(fields[1]), int(fields[3]))
    return out


def _descendants(root: int) -> dict[int, int]:
    """pid -> session id of every process below ``root``."""
    table = _processes()
    found: dict[int, int] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, sid) in table.items():
            if ppid == parent and pid not in found:
                found[pid] = sid
                frontier.append(pid)
    return found


def _shared_memory(pids) -> set[str]:
    """The /dev/shm segments these processes have mapped."""
    names = set()
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
                if "/dev/shm/" in line:
                    names.add(line.split("/dev/shm/", 1)[1].split()[0])
        except OSError:
            pass
    return names


def _interrupt_simulation(argv: list[str], cwd: Path, sig: int, ready) -> tuple[subprocess.Popen, str, dict, set]:
    """Start ``cli.py simulate``, wait until ``ready(descendants)``, send ``sig``; returns what ran."""
    proc = subprocess.Popen([sys.executable, str(REPO / "cli.py"), *argv], cwd=cwd, env=_env(),
                            start_new_session=True, preexec_fn=_sigint_as_at_a_terminal,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: dict[int, int] = {}
    segments: set[str] = set()
    try:
        def started() -> bool:
            seen.update(_descendants(proc.pid))
            return ready(seen)
        _wait_for(started, proc, 150, "the simulation's workers")
        time.sleep(0.5)
        seen.update(_descendants(proc.pid))
        segments = _shared_memory(seen)
        if sig == signal.SIGINT:
            os.killpg(proc.pid, sig)
        else:
            os.kill(proc.pid, sig)
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc, err, seen, segments


def _assert_nothing_left(seen: dict[int, int], segments: set[str], main_pid: int) -> None:
    sessions = set(seen.values()) - {main_pid}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:                 # SIGKILLed orphans: init reaps them
        alive = {pid for pid, (_, sid) in _processes().items() if pid in seen or sid in sessions}
        if not alive:
            break
        time.sleep(0.1)
    assert not alive, f"processes of the run survived: {sorted(alive)}"
    left = {name for name in segments if os.path.exists(f"/dev/shm/{name}")}
    assert not left, f"shared-memory segments survived: {sorted(left)[:5]}"


@pytest.mark.timeout(240)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_lava_simulation_leaves_nothing_running(chain, tmp_path, sig):
    out = tmp_path / "sim"

    def lava_running(seen: dict[int, int]) -> bool:       # Lava's processes exist and map their channels
        return len(seen) > 3 and bool(_shared_memory(seen))

    proc, err, seen, segments = _interrupt_simulation(
        ["simulate", str(chain["net"]), "--backend", "lava-cpu", "--input", str(chain["img"]), "--steps", "100000",
         "--timeout", "200", "--out", str(out)], tmp_path, sig, lava_running)
    assert proc.returncode == EXIT[sig], err
    assert "Traceback" not in err and "no partial output" in err, err
    assert segments, "the test saw no shared-memory segment of the Lava run"
    assert len(set(seen.values()) - {proc.pid}) >= 1          # the Lava worker's own session
    _assert_nothing_left(seen, segments, proc.pid)
    assert _files(out) == []


@pytest.mark.timeout(180)
def test_sigterm_during_pool_simulation_leaves_no_worker(chain, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for k in range(12):
        iio.imwrite(images / f"im{k:02d}.png", np.random.default_rng(k).integers(0, 256, (24, 24), dtype=np.uint8))
    out = tmp_path / "sim"
    proc, err, seen, _ = _interrupt_simulation(
        ["simulate", str(chain["net"]), "--input", str(images), "--steps", "3000", "--workers", "2",
         "--out", str(out)], tmp_path, signal.SIGTERM, lambda seen: len(seen) >= 2)
    assert proc.returncode == 143, err
    assert "Traceback" not in err, err
    _assert_nothing_left(seen, set(), proc.pid)
    for name in _files(out):                 # finished images are complete; nothing half-written
        assert not name.endswith(".part"), name

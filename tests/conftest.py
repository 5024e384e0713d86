"""Shared pytest fixtures. Keep this file small and generic.

`tests/` is deliberately NOT a package (no __init__.py): lava-nc and lava-dl both install a
top-level package named `tests` into site-packages. Never `import tests...`.
"""
from __future__ import annotations

import multiprocessing
import sys
import threading
from pathlib import Path

import pytest

# Make the repository root importable, so `import toolchain` / `import netx_export` work
# even without `pip install -e .` (scripts/env.sh does install it editable).
REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Every test module runs torch on one thread: the tiny networks of the tests run fastest so, the
    results do not depend on the machine's core count, and nothing oversubscribes the 2 CPUs that CI
    shares with Lava's worker processes (OpenMP threads busy-wait)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A fresh, empty directory that is also the current working directory."""
    d = tmp_path / "work"
    d.mkdir()
    monkeypatch.chdir(d)
    return d


@pytest.fixture
def lava_cleanup():
    """Stop Lava runtimes that a test leaves running.

    Usage::

        def test_x(lava_cleanup):
            lif = LIF(...)
            lava_cleanup(lif)          # any process of the network
            try:
                lif.run(...)
            finally:
                lif.stop()

    A runtime that is never stopped keeps the interpreter from exiting; a runtime whose
    worker raised can make `stop()` block. After the test this fixture stops every
    registered process whose runtime is still started (30 s at most each) and then
    terminates any worker process the test left behind.
    """
    procs = []
    children_before = set(multiprocessing.active_children())

    def register(proc):
        procs.append(proc)
        return proc

    yield register

    for proc in procs:
        runtime = getattr(proc, "_runtime", None)
        if runtime is None or not getattr(runtime, "_is_started", False):
            continue
        t = threading.Thread(target=_quiet_stop, args=(proc,), daemon=True)
        t.start()
        t.join(30)
    for child in set(multiprocessing.active_children()) - children_before:
        child.terminate()
        child.join(5)
        if child.is_alive():
            child.kill()


def _quiet_stop(proc):
    try:
        proc.stop()
    except Exception:  # best effort: the test's own failure is what matters
        pass


TINY_TRAINING = ["--width", "4", "--depth", "2", "--epochs", "1", "--batches-per-epoch", "2", "--batch", "2",
                 "--patch", "32"]


class TinyModels:
    """A tiny denoising U-Net trained, converted and exported once per test session (through the CLI).

    ``ann`` and ``snn`` are checkpoints; ``net(steps, side, lowering)`` exports the SNN once per
    setting. Treat every file here as read-only: copy it before damaging it.
    """

    def __init__(self, folder: Path) -> None:
        import cli
        self.dir = folder
        self.ann, self.snn = folder / "ann.pt", folder / "snn.pt"
        assert cli.main(["train", "--task", "denoise", *TINY_TRAINING, "--out", str(self.ann)]) == 0
        assert cli.main(["convert", str(self.ann), "--calibration", "4", "--patch", "32", "--out", str(self.snn)]) == 0
        self._nets: dict[tuple[int, int, str], Path] = {}

    def net(self, steps: int = 2, side: int = 16, lowering: str = "compartments") -> Path:
        import cli
        key = (steps, side, lowering)
        if key not in self._nets:
            path = self.dir / f"tiny_T{steps}_{side}_{lowering}.net"
            assert cli.main(["export", str(self.snn), "-o", str(path), "--steps", str(steps), "--input-size",
                             str(side), "--mt-lowering", lowering]) == 0
            self._nets[key] = path
        return self._nets[key]


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> TinyModels:
    """The session's tiny trained, converted and exported models (see :class:`TinyModels`)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return TinyModels(tmp_path_factory.mktemp("tiny"))
    finally:
        torch.set_num_threads(before)

"""The examples run: ``examples/lava_network.py`` loads an exported .net file into a LavaNetwork, feeds it
from a RingBuffer, runs it under its own run config (the fast models, and Lava's own models found by
Lava's model discovery) and decodes exactly the reference simulator's output."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from netx_export import read_network
from toolchain.simulators.reference import ReferenceSimulator

REPO = Path(__file__).resolve().parents[1]


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, str(REPO / "examples" / "lava_network.py"), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=240)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)    # nothing may outlive the example
        except ProcessLookupError:
            pass
        proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, "")


@pytest.mark.lava
@pytest.mark.parametrize("models", ["fast", "free-running", "lava"])
def test_lava_example_decodes_the_reference_output(tiny, tmp_path, models):
    net_path = tiny.net(steps=4, side=16, lowering="graded")
    network = read_network(net_path)
    image = np.random.default_rng(0).random(tuple(network.input.shape))
    np.save(tmp_path / "image.npy", image)
    out = tmp_path / "out.npy"
    args = [str(net_path), "--image", str(tmp_path / "image.npy"), "--check", "--out", str(out)]
    done = _run(args + {"fast": [], "free-running": ["--free-running"], "lava": ["--lava-models"]}[models])
    assert done.returncode == 0, done.stdout
    assert "identical to the reference simulator" in done.stdout
    expected = ReferenceSimulator(network).run(image[None], 4).output[0]
    np.testing.assert_allclose(np.load(out), expected, rtol=0, atol=1e-12)

"""The same seed gives the same metrics and byte-identical checkpoints and .net file: the tiny
train -> convert -> finetune -> export -> evaluate chain, run twice in fresh processes with two
torch threads each (torch's CPU kernels are deterministic for a fixed thread count; see README)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = ["--width", "4", "--depth", "2", "--batches-per-epoch", "3", "--batch", "2", "--patch", "32"]
CHAIN = [
    ["train", *TINY, "--epochs", "2", "--seed", "{seed}", "--out", "ann.pt"],
    ["convert", "ann.pt", "--calibration", "4", "--patch", "32", "--seed", "{seed}", "--out", "snn.pt"],
    ["finetune", "snn.pt", "--steps", "3", *TINY[4:], "--epochs", "1", "--seed", "{seed}", "--out", "ft.pt"],
    ["export", "ft.pt", "-o", "model.net", "--input-size", "16"],
    ["evaluate", "ft.pt", "--steps", "3", "--sigma", "25", "--crop", "32", "--json", "metrics.json"],
]
SCRIPT = """
import sys
sys.path.insert(0, {repo!r})
import cli
for argv in {chain!r}:
    code = cli.main(argv)
    if code:
        sys.exit(code)
"""


def _run_chain(folder: Path, seed: int) -> dict[str, bytes]:
    folder.mkdir()
    chain = [[a.format(seed=seed) for a in argv] for argv in CHAIN]
    env = {**os.environ, "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT.format(repo=str(REPO), chain=chain)], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.timeout(600)
def test_same_seed_same_metrics_and_bytes(tmp_path):
    first = _run_chain(tmp_path / "a", seed=5)
    second = _run_chain(tmp_path / "b", seed=5)
    assert sorted(first) == ["ann.pt", "ft.pt", "metrics.json", "model.net", "snn.pt"]
    metrics = [json.loads(run["metrics.json"]) for run in (first, second)]
    assert metrics[0] == metrics[1]
    assert metrics[0]["denoise"][0]["psnr"] > 0
    for name in ("ann.pt", "snn.pt", "ft.pt", "model.net"):
        assert first[name] == second[name], f"{name} differs between two runs with the same seed"

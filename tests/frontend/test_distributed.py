"""Data-parallel training under torchrun: 2 processes (gloo on CPU) with a global batch of 4 give
the weights of 1 process with a batch of 4, for the ANN and for spiking-flow fine-tuning; only
rank 0 writes the checkpoint and prints."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch
from cli_helpers import torchrun

import cli
from toolchain.frontend.checkpoint import load_checkpoint

TINY = ["--width", "4", "--depth", "2", "--epochs", "1", "--batches-per-epoch", "3", "--batch", "4", "--patch", "32"]



def _torchrun(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return torchrun(args, cwd)


def _assert_same(a_path: Path, b_path: Path) -> None:
    a, b = load_checkpoint(a_path), load_checkpoint(b_path)
    assert a.state_dict.keys() == b.state_dict.keys()
    for name, tensor in a.state_dict.items():
        torch.testing.assert_close(b.state_dict[name], tensor, atol=1e-5, rtol=1e-4, msg=name)
    assert a.training_state["history"] == pytest.approx(b.training_state["history"], rel=1e-5)
    assert a.training_state["epoch"] == b.training_state["epoch"] == 1


@pytest.fixture(scope="module")
def snn(tmp_path_factory):
    d = tmp_path_factory.mktemp("ddp")
    assert cli.main(["train", *TINY, "--out", str(d / "ann.pt")]) == 0
    assert cli.main(["convert", str(d / "ann.pt"), "--calibration", "4", "--patch", "32", "--out", str(d / "snn.pt")]) == 0
    return d / "snn.pt"


@pytest.mark.timeout(300)
def test_torchrun_training_matches_one_process(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    assert cli.main(["train", *TINY, "--out", str(one / "ann.pt")]) == 0
    run = _torchrun(["train", *TINY, "--out", str(two / "ann.pt")], tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("trained denoise U-Net") == 1          # rank 0 reports, rank 1 does not
    assert sorted(p.name for p in two.iterdir()) == ["ann.pt"]      # one checkpoint, no temporary files
    _assert_same(one / "ann.pt", two / "ann.pt")


@pytest.mark.timeout(300)
def test_torchrun_finetuning_matches_one_process(snn, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    finetune = ["finetune", str(snn), "--steps", "3", *TINY[4:]]
    assert cli.main([*finetune, "--out", str(one / "ft.pt")]) == 0
    run = _torchrun([*finetune, "--out", str(two / "ft.pt")], tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("fine-tuned at T=3") == 1
    assert sorted(p.name for p in two.iterdir()) == ["ft.pt"]
    _assert_same(one / "ft.pt", two / "ft.pt")
    converted, tuned = load_checkpoint(snn).state_dict, load_checkpoint(two / "ft.pt").state_dict
    assert not torch.equal(converted["head.weight"], tuned["head.weight"])     # fine-tuning did something


@pytest.mark.timeout(300)
def test_batch_must_split_over_the_processes(tmp_path):
    run = _torchrun(["train", *TINY[:-4], "--batch", "3", "--patch", "32", "--out", str(tmp_path / "a.pt")], tmp_path)
    assert run.returncode != 0
    lines = run.stderr.splitlines()
    assert "error: the batch of 3 does not split evenly over 2 processes: use a multiple of 2" in lines
    assert "exitcode  : 2" in run.stderr            # torchrun's summary: a rank exited with our code 2
    assert list(tmp_path.iterdir()) == []

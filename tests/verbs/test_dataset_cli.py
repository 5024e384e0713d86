"""Paper datasets from a user folder through the CLI: the layout is detected, recorded and used (the folder
itself only when the user names it again: a path inside a file is never opened on its own)."""
from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import torch

import cli
from toolchain.frontend.checkpoint import load_checkpoint

TINY = ["--width", "4", "--depth", "2", "--epochs", "1", "--batches-per-epoch", "2", "--batch", "2", "--patch", "32"]


def _photo(seed: int, side: int = 40) -> np.ndarray:
    return (np.random.default_rng(seed).random((side, side)) * 255).astype(np.uint8)


def test_bsd68_layout_is_detected_recorded_and_evaluated(tmp_path):
    torch.manual_seed(0)
    root = tmp_path / "denoising"
    (root / "train").mkdir(parents=True)
    (root / "BSD68").mkdir()
    for k in range(2):
        iio.imwrite(root / "train" / f"img{k}.png", _photo(k))
        iio.imwrite(root / "BSD68" / f"test00{k + 1}.png", _photo(10 + k))
    ann = tmp_path / "ann.pt"
    assert cli.main(["train", "--data", str(root), *TINY, "--out", str(ann)]) == 0
    data = load_checkpoint(ann).meta["data"]
    assert data["layout"] == "bsd68" and data["root"] == str(root)

    report = tmp_path / "r.json"
    assert cli.main(["evaluate", str(ann), "--sigma", "25", "--crop", "0", "--json", str(report)]) == 2
    assert cli.main(["evaluate", str(ann), "--data", str(root), "--sigma", "25", "--crop", "0", "--json",
                     str(report)]) == 0
    images = [row["image"] for row in json.loads(report.read_text())["denoise"][0]["images"]]
    assert images == ["test001", "test002"]


def test_evaluating_on_another_dataset_folder(tmp_path):
    torch.manual_seed(0)
    ann = tmp_path / "ann.pt"
    assert cli.main(["train", *TINY, "--out", str(ann)]) == 0          # the embedded photos
    set12 = tmp_path / "Set12"
    set12.mkdir()
    for k in range(3):
        iio.imwrite(set12 / f"{k + 1:02d}.png", _photo(20 + k, side=36))
    report = tmp_path / "r.json"
    assert cli.main(["evaluate", str(ann), "--data", str(set12), "--layout", "set12", "--sigma", "15",
                     "--crop", "0", "--json", str(report)]) == 0
    rows = json.loads(report.read_text())["denoise"][0]["images"]
    assert [r["image"] for r in rows] == ["01", "02", "03"]
    assert all(np.isfinite(r["psnr"]) for r in rows)

"""The denoiser that ships with the toolchain: the recipe that trains it, its file and its recorded metrics.

Its training (12 000 batches, 12-16 min on one CPU thread) is longer than the demo may run, so the
demo converts and fine-tunes the shipped ANN checkpoint; ``demo --retrain`` (or
``scripts/make_pretrained.py``) runs the recipe again. ``<name>.json`` beside the file records the
command and commit that made it, its SHA-256 and the metrics measured on the held-out photos; a
test reloads the file and measures them again.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import toolchain.data

from ..data.embedded import denoise_split
from ..frontend.checkpoint import file_sha256, load_ann, load_checkpoint, save_checkpoint
from ..frontend.unet import UNetConfig
from ..tasks.sampling import evaluate_denoise
from .evaluate import denoiser
from .runs import Log, Schedule
from .source import DataSource
from .train import TrainReport, TrainSettings, train

PRETRAINED_DIR = Path(toolchain.data.__file__).parent / "pretrained"
SIGMAS = (15.0, 25.0, 50.0)
"""Noise levels (0..255 scale) the recorded metrics are measured at."""
CROP = 256
"""Central crop (px) of every held-out photo that is scored."""


@dataclass(frozen=True)
class Recipe:
    """How a shipped ANN is trained: the CLI's ``train`` with these settings on the embedded photos."""

    name: str
    width: int
    depth: int
    noise_map: bool
    schedule: Schedule
    seed: int = 0

    @property
    def path(self) -> Path:
        return PRETRAINED_DIR / f"{self.name}.pt"

    @property
    def record_path(self) -> Path:
        return PRETRAINED_DIR / f"{self.name}.json"

    def command(self, out: str) -> str:
        """The ``cli.py train`` command line that runs this recipe."""
        s = self.schedule
        flags = [f"--width {self.width}", f"--depth {self.depth}", f"--epochs {s.epochs}",
                 f"--batches-per-epoch {s.batches_per_epoch}", f"--batch {s.batch}", f"--patch {s.patch}",
                 f"--lr {s.lr:g}", *([f"--lr-final {s.lr_final:g}"] if s.lr_final is not None else []),
                 *(["--augment"] if s.augment else []), *(["--by-area"] if s.by_area else []),
                 *(["--noise-map"] if self.noise_map else []), f"--seed {self.seed}"]
        return f"python cli.py train --task denoise {' '.join(flags)} --out {out}"

    @property
    def config(self) -> UNetConfig:
        """The architecture the recipe trains."""
        return UNetConfig("denoise", 1, 1, width=self.width, depth=self.depth, noise_map=self.noise_map)

    def settings(self, out: str | os.PathLike[str]) -> TrainSettings:
        return TrainSettings(DataSource("denoise", 1), out, self.schedule, self.width, self.depth,
                             seed=self.seed, noise_map=self.noise_map)

    def recorded(self) -> dict[str, Any]:
        """The record written beside the shipped file (command, commit, SHA-256, metrics)."""
        return dict(json.loads(self.record_path.read_text()))


DENOISER = Recipe("denoise_gray_w16d2", width=16, depth=2, noise_map=True,
                  schedule=Schedule(12, 1000, 16, 48, lr=1e-3, lr_final=1e-5, augment=True, by_area=True))
"""The default denoiser: gray, told its noise level (a sigma / 255 channel), 130 k parameters."""


def train_recipe(recipe: Recipe, out: str | os.PathLike[str], progress: bool = True,
                 log: Log | None = None) -> TrainReport:
    """Run ``recipe`` and leave at ``out`` the trained ANN without its resumable training state
    (optimizer moments, loss history, random states: two thirds of the file, needed only by --resume)."""
    report = train(recipe.settings(out), progress=progress, log=log)
    ckpt = load_checkpoint(out, expect_kind="ann")
    ckpt.training_state = None
    save_checkpoint(out, ckpt)
    return report


def measure(path: str | os.PathLike[str], seed: int = 0) -> dict[str, dict[str, float]]:
    """Mean PSNR / SSIM of the ANN at ``path`` on the held-out gray photos (central :data:`CROP` px)
    at each of :data:`SIGMAS`, with the evaluation's seeded noise."""
    ann = load_ann(path)[0]
    test = denoise_split(1)[1]
    scores = {}
    for sigma in SIGMAS:
        row = evaluate_denoise(denoiser(ann, 1), test, sigma, seed, CROP)
        scores[f"{sigma:g}"] = {"psnr": float(row["psnr"]), "ssim": float(row["ssim"])}  # type: ignore[arg-type]
    return scores


def record(recipe: Recipe, train_report: dict[str, Any], commit: str) -> dict[str, Any]:
    """What ``<name>.json`` holds for the file at ``recipe.path`` (``train_report``: train's JSON report)."""
    return {"name": recipe.name, "command": recipe.command(f"toolchain/data/pretrained/{recipe.name}.pt"),
            "commit": commit, "file": "the command's checkpoint without its resumable training state "
                                      "(scripts/make_pretrained.py)",
            "sha256": file_sha256(recipe.path), "train": train_report,
            "test_images": list(denoise_split(1)[1].names), "crop": CROP, "seed": 0,
            "metrics": measure(recipe.path)}

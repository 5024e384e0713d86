"""The verbs of the toolchain (train, convert, fine-tune, evaluate), as functions of plain values.

``cli.py`` parses arguments and calls these; the demo chains them. Each returns a JSON-compatible
report and writes its outputs atomically.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .checkpoint import save_checkpoint
from .conversion import ConversionSettings, convert
from .data import embedded, folder
from .data.embedded import ImageSet
from .data.patches import random_patches
from .errors import ConfigError
from .models import ann_checkpoint, load_ann, load_any, load_snn, snn_checkpoint
from .snn import SpikingUNet, check_steps
from .tasks import Sampler, evaluate_denoise, evaluate_segment
from .training import finetune_spiking_flow, train_ann
from .unet import UNet, UNetConfig


@dataclass(frozen=True)
class DataSource:
    """Where a task's images come from: the embedded photos (``root`` None) or a user folder."""

    task: str
    channels: int
    root: str | None = None

    def load(self) -> tuple[ImageSet, ImageSet]:
        if self.root is not None:
            return (folder.load_split(self.root, "train", self.task, self.channels),
                    folder.load_split(self.root, "test", self.task, self.channels))
        if self.task == "segment":
            if self.channels != 1:
                raise ConfigError("the embedded segmentation data is gray: use --channels 1 or --data DIR")
            return embedded.segment_split()
        return embedded.denoise_split(self.channels)

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "channels": self.channels, "root": self.root}

    @classmethod
    def from_meta(cls, meta: dict[str, Any], config: UNetConfig) -> "DataSource":
        data = meta.get("data") or {}
        return cls(config.task, config.in_channels, data.get("root"))


def seeded(seed: int) -> tuple[np.random.Generator, torch.Generator]:
    """Seed torch's initializer and return the generators every random draw uses."""
    torch.manual_seed(seed)
    return np.random.default_rng(seed), torch.Generator().manual_seed(seed)


def positive(name: str, value: int) -> int:
    if not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return value


def train(source: DataSource, width: int, depth: int, epochs: int, batches_per_epoch: int, batch: int,
          patch: int, lr: float, seed: int, out: str | os.PathLike[str], classes: int = 2,
          progress: bool = True) -> dict[str, Any]:
    """Train the ANN and save it; returns the training report."""
    for name, value in (("epochs", epochs), ("batches per epoch", batches_per_epoch), ("batch", batch)):
        positive(name, value)
    out_channels = classes if source.task == "segment" else source.channels
    config = UNetConfig(source.task, source.channels, out_channels, width=width, depth=depth)
    if patch % config.multiple:
        raise ConfigError(f"patch size {patch} must be a multiple of 2**depth = {config.multiple}")
    rng, gen = seeded(seed)
    train_set, _ = source.load()
    ann = UNet(config)
    start = time.perf_counter()
    history = train_ann(ann, Sampler(source.task, train_set, patch, batch, rng, gen),
                        epochs * batches_per_epoch, lr, progress)
    report = {"verb": "train", "config": config.to_dict(), "seed": seed, "epochs": epochs,
              "batches": epochs * batches_per_epoch, "batch": batch, "patch": patch, "lr": lr,
              "final_loss": float(np.mean(history[-20:])), "seconds": time.perf_counter() - start}
    save_checkpoint(out, ann_checkpoint(ann, {"data": source.to_dict(), "train": report}))
    return report


def calibration_batch(source: DataSource, count: int, patch: int, seed: int) -> torch.Tensor:
    """``count`` random training patches (noisy ones for denoising, as the network sees them)."""
    rng, gen = seeded(seed)
    train_set, _ = source.load()
    if source.task == "segment":
        return random_patches(train_set, count, patch, rng)[0]
    return Sampler(source.task, train_set, patch, count, rng, gen)()[0]


def convert_checkpoint(ann_path: str | os.PathLike[str], settings: ConversionSettings, calibration_count: int,
                       patch: int, seed: int, out: str | os.PathLike[str]) -> dict[str, Any]:
    """Convert an ANN checkpoint into a normalized Spiking-UNet checkpoint."""
    ann, ckpt = load_ann(ann_path)
    source = DataSource.from_meta(ckpt.meta, ckpt.config)
    calibration = calibration_batch(source, positive("calibration images", calibration_count), patch, seed)
    snn, spiking = convert(ann, calibration, settings)
    save_checkpoint(out, snn_checkpoint(snn, spiking, {**ckpt.meta, "converted_from": str(ann_path)}))
    return {"verb": "convert", "normalization": settings.normalization, "percentile": settings.percentile,
            "thresholds": list(settings.thresholds), "lambdas": spiking["lambdas"]}


def finetune_checkpoint(snn_path: str | os.PathLike[str], steps: int, epochs: int, batches_per_epoch: int,
                        batch: int, patch: int, lr: float, seed: int, out: str | os.PathLike[str],
                        progress: bool = True) -> dict[str, Any]:
    """Fine-tune a converted SNN with the spiking flow at ``steps`` time steps."""
    snn, ckpt = load_snn(snn_path)
    check_steps(steps)
    source = DataSource.from_meta(ckpt.meta, ckpt.config)
    rng, gen = seeded(seed)
    train_set, _ = source.load()
    snn.train()
    start = time.perf_counter()
    history = finetune_spiking_flow(snn, Sampler(source.task, train_set, patch, positive("batch", batch), rng, gen),
                                    steps, positive("epochs", epochs) * batches_per_epoch, lr, progress)
    report = {"verb": "finetune", "steps": steps, "epochs": epochs, "batches": epochs * batches_per_epoch,
              "lr": lr, "final_loss": float(np.mean(history[-20:])), "seconds": time.perf_counter() - start}
    spiking = {**ckpt.spiking, "finetuned_steps": steps}
    save_checkpoint(out, snn_checkpoint(snn, spiking, {**ckpt.meta, "finetune": report}))
    return report


def predictor(model: UNet | SpikingUNet, steps: int):
    """x -> the model's decoded output (noise map or logits); an SNN runs ``steps`` steps."""
    if isinstance(model, SpikingUNet):
        check_steps(steps)
        return lambda x: model.simulate(x, steps).output
    return lambda x: model(x)


def evaluate_model(model: UNet | SpikingUNet, source: DataSource, steps: int, sigmas: Sequence[float],
                   seed: int, crop: int, test_set: ImageSet | None = None) -> dict[str, Any]:
    """Metrics of a model on the test split: PSNR/SSIM per sigma, or segmentation scores."""
    test_set = test_set or source.load()[1]
    predict = predictor(model, steps)
    kind = "snn" if isinstance(model, SpikingUNet) else "ann"
    report: dict[str, Any] = {"model": kind, "task": source.task, "steps": steps if kind == "snn" else None}
    if source.task == "segment":
        report["segmentation"] = evaluate_segment(predict, test_set, model.config.out_channels)
    else:
        report["denoise"] = [evaluate_denoise(predict, test_set, s, seed, crop) for s in sigmas]
    return report


def evaluate_checkpoint(path: str | os.PathLike[str], steps: int, sigmas: Sequence[float], seed: int,
                        crop: int) -> dict[str, Any]:
    model, ckpt = load_any(path)
    source = DataSource.from_meta(ckpt.meta, ckpt.config)
    return {"checkpoint": str(Path(path)), **evaluate_model(model, source, steps, sigmas, seed, crop)}

"""The training verbs: train the U-Net, fine-tune a Spiking-UNet with the spiking flow (``convert`` is
:mod:`.convert`).

Each takes a frozen settings object (validated when it is made) and returns a typed report whose
``to_dict()`` is what ``--json`` writes; outputs are written atomically.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..checks import check_steps
from ..errors import ConfigError
from ..frontend.checkpoint import (
    Checkpoint,
    ann_checkpoint,
    file_sha256,
    load_snn,
    snn_checkpoint,
)
from ..frontend.snn import SpikingNetwork
from ..frontend.training import SpikingFlow
from ..frontend.unet import UNet, UNetConfig
from .runs import Log, RunStats, Schedule, TrainingRun
from .source import DataSource

Path_ = str | os.PathLike[str]


@dataclass(frozen=True)
class TrainSettings:
    """Train a U-Net of ``width`` and ``depth`` on ``source``; ``classes`` for segmentation."""

    source: DataSource
    out: Path_
    schedule: Schedule
    width: int = 64
    depth: int = 4
    classes: int = 2
    seed: int = 0
    resume: bool = False
    noise_map: bool = False

    @property
    def config(self) -> UNetConfig:
        out_channels = self.classes if self.source.task == "segment" else self.source.channels
        return UNetConfig(self.source.task, self.source.channels, out_channels, width=self.width, depth=self.depth,
                          noise_map=self.noise_map)

    def __post_init__(self) -> None:
        config = self.config
        if self.schedule.patch % config.multiple:
            raise ConfigError(f"patch size {self.schedule.patch} must be a multiple of 2**depth = {config.multiple}")


@dataclass(frozen=True)
class TrainReport:
    config: dict[str, Any]
    seed: int
    epochs: int
    batches: int
    batch: int
    patch: int
    lr: float
    final_loss: float
    run: RunStats = RunStats()
    schedule: dict[str, Any] = field(default_factory=dict)     # Schedule.record(): cosine decay, augmentation

    def record(self) -> dict[str, Any]:
        """What the checkpoint's ``meta["train"]`` records (no timings: checkpoints are byte-reproducible)."""
        return {"verb": "train", "config": self.config, "seed": self.seed, "epochs": self.epochs,
                "batches": self.batches, "batch": self.batch, "patch": self.patch, "lr": self.lr,
                **self.schedule, "final_loss": self.final_loss}

    def to_dict(self) -> dict[str, Any]:
        return {**self.record(), **self.run.to_dict()}


def _resume_keys(schedule: Schedule) -> dict[str, Any]:
    """Schedule settings a resumed run must share (a cosine decay is laid out over the epochs given)."""
    extra = schedule.record()
    return {**extra, "epochs": schedule.epochs} if schedule.lr_final is not None else extra


def train(settings: TrainSettings, progress: bool = True, log: Log | None = None) -> TrainReport:
    """Train the ANN, saving a resumable checkpoint to ``settings.out`` after every epoch.

    ``resume``: continue from the checkpoint at ``out`` if there is one (the same settings; more
    epochs extend the run). Under torchrun the run is data-parallel.
    """
    s, config, source = settings.schedule, settings.config, settings.source

    def report(epoch: int, losses: list[float], run: RunStats = RunStats()) -> TrainReport:
        return TrainReport(config.to_dict(), settings.seed, epoch, epoch * s.batches_per_epoch, s.batch, s.patch,
                           s.lr, float(np.mean(losses[-20:])), run, s.record())

    run = TrainingRun(
        kind="ann", out=settings.out, source=source, schedule=s, seed=settings.seed,
        settings={"verb": "train", "config": config.to_dict(), "data": source.to_dict(), "seed": settings.seed,
                  "batches_per_epoch": s.batches_per_epoch, "batch": s.batch, "patch": s.patch, "lr": s.lr,
                  **_resume_keys(s)},
        model=lambda: UNet(config), forward=lambda ann: ann,
        checkpoint=lambda ann, epoch, losses: ann_checkpoint(ann, {"data": source.to_dict(),  # type: ignore[arg-type]
                                                                   "train": report(epoch, losses).record()}),
        classes=config.out_channels, noise_map=config.noise_map, desc="train ANN", resume=settings.resume,
        progress=progress, log=log)
    _, outcome = run.execute()
    return report(s.epochs, outcome.history, outcome.stats)


@dataclass(frozen=True)
class FinetuneSettings:
    """Fine-tune the SNN checkpoint ``checkpoint`` with the spiking flow at ``steps`` time steps: one T,
    or several that batch k cycles through (``steps[k % n]``), which keeps the model good at every T
    from the smallest up (one T fits the weights to that T's simulation error)."""

    checkpoint: Path_
    out: Path_
    steps: int | tuple[int, ...]
    schedule: Schedule
    seed: int = 0
    resume: bool = False

    def __post_init__(self) -> None:
        steps = (self.steps,) if isinstance(self.steps, int) else tuple(self.steps)
        if not steps:
            raise ConfigError("fine-tuning needs at least one T (`steps`)")
        object.__setattr__(self, "steps", tuple(check_steps(t) for t in steps))

    @property
    def all_steps(self) -> tuple[int, ...]:
        assert isinstance(self.steps, tuple)
        return self.steps


@dataclass(frozen=True)
class FinetuneReport:
    steps: tuple[int, ...]
    epochs: int
    batches: int
    batch: int
    lr: float
    final_loss: float
    run: RunStats = RunStats()

    def record(self) -> dict[str, Any]:
        return {"verb": "finetune", "steps": list(self.steps), "epochs": self.epochs, "batches": self.batches,
                "batch": self.batch, "lr": self.lr, "final_loss": self.final_loss}

    def to_dict(self) -> dict[str, Any]:
        return {**self.record(), **self.run.to_dict()}


def finetune_checkpoint(settings: FinetuneSettings, progress: bool = True, log: Log | None = None) -> FinetuneReport:
    """Fine-tune a converted SNN, saving a resumable checkpoint after every epoch (as :func:`train`)."""
    snn, ckpt = load_snn(settings.checkpoint)
    s, steps = settings.schedule, settings.all_steps
    source = DataSource.from_meta(ckpt.meta, ckpt.spec)
    # finetuned_steps: the smallest T (the export default, good from there up); all of them beside it
    spiking = {**ckpt.spiking, "finetuned_steps": min(steps), "finetuned_steps_all": list(steps)}
    flow = SpikingFlow(snn, steps)
    label = ",".join(str(t) for t in steps)

    def report(epoch: int, losses: list[float], run: RunStats = RunStats()) -> FinetuneReport:
        return FinetuneReport(steps, epoch, epoch * s.batches_per_epoch, s.batch, s.lr,
                              float(np.mean(losses[-20:])), run)

    def checkpoint(module: torch.nn.Module, epoch: int, losses: list[float]) -> Checkpoint:
        assert isinstance(module, SpikingNetwork)
        return snn_checkpoint(module, spiking, {**ckpt.meta, "finetune": report(epoch, losses).record()})

    run = TrainingRun(
        kind="snn", out=settings.out, source=source, schedule=s, seed=settings.seed,
        settings={"verb": "finetune", "source_sha256": file_sha256(settings.checkpoint), "steps": list(steps),
                  "seed": settings.seed, "batches_per_epoch": s.batches_per_epoch, "batch": s.batch,
                  "patch": s.patch, "lr": s.lr, **_resume_keys(s)},
        model=lambda: snn, forward=lambda _module: flow, on_batch=flow.at_batch,
        checkpoint=checkpoint, classes=ckpt.spec.out_channels, noise_map=ckpt.spec.noise_map,
        desc=f"fine-tune (spiking flow, T={label})",
        resume=settings.resume, progress=progress, log=log)
    _, outcome = run.execute()
    return report(s.epochs, outcome.history, outcome.stats)


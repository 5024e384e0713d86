"""The verbs of the toolchain (train, convert, fine-tune, evaluate), as functions of plain values.

``cli.py`` parses arguments and calls these; the demo chains them. Each returns a JSON-compatible
report and writes its outputs atomically.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from toolchain.frontend import distributed
from toolchain.frontend.checkpoint import Checkpoint, file_sha256, load_checkpoint, load_state_strict, save_checkpoint
from toolchain.frontend.conversion import ConversionSettings, convert
from toolchain.data import embedded
from toolchain.data.embedded import ImageSet
from toolchain.data import readers
from toolchain.data.readers import random_fov_patches
from toolchain.frontend.distributed import Context
from toolchain.errors import CheckpointError, ConfigError
from toolchain.frontend.models import ann_checkpoint, load_ann, load_any, load_snn, snn_checkpoint
from toolchain.frontend.snn import SpikingUNet, check_steps
from toolchain.tasks.sampling import Sampler, evaluate_denoise, evaluate_segment
from toolchain.frontend.training import SpikingFlow, train_epochs
from toolchain.frontend.unet import UNet, UNetConfig


@dataclass(frozen=True)
class DataSource:
    """Where a task's images come from: the embedded photos (``root`` None) or a user folder in one
    of the layouts of :mod:`toolchain.data.readers` (``folder``, ``drive``, ``isbi2012``, ``camseq01``,
    ``bsd68``, ``cbsd68``, ``set12``; "auto" is resolved by :meth:`resolved`)."""

    task: str
    channels: int
    root: str | None = None
    layout: str | None = None

    def resolved(self) -> "DataSource":
        """The same source with "auto" replaced by the detected layout (checkpoints record the name).

        A folder that matches no paper dataset is read as the plain ``folder`` layout, whose reader
        then says exactly which file or folder is missing.
        """
        if self.root is None or self.layout not in (None, "auto"):
            return self
        found = readers.detect_layout(self.root) if self.layout == "auto" else None
        return DataSource(self.task, self.channels, self.root, found or "folder")

    def load(self) -> tuple[ImageSet, ImageSet]:
        if self.root is not None:
            return readers.load_dataset(self.root, self.layout or "folder", self.task, self.channels)
        if self.task == "segment":
            if self.channels != 1:
                raise ConfigError("the embedded segmentation data is gray: use --channels 1 or --data DIR")
            return embedded.segment_split()
        return embedded.denoise_split(self.channels)

    def load_test(self) -> ImageSet:
        """The test split alone (a folder without training images is fine, e.g. BSD68)."""
        if self.root is not None:
            return readers.load_test_set(self.root, self.layout or "folder", self.task, self.channels)
        return self.load()[1]

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "channels": self.channels, "root": self.root, "layout": self.layout}

    @classmethod
    def from_meta(cls, meta: dict[str, Any], config: UNetConfig) -> "DataSource":
        data = meta.get("data") or {}
        return cls(config.task, config.in_channels, data.get("root"), data.get("layout"))


def seeded(seed: int) -> tuple[np.random.Generator, torch.Generator]:
    """Seed torch's initializer and return the generators every random draw uses."""
    torch.manual_seed(seed)
    return np.random.default_rng(seed), torch.Generator().manual_seed(seed)


def positive(name: str, value: int) -> int:
    if not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return value


def positive_rate(name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive number, got {value!r}")
    return float(value)


# ----------------------------------------------------------------------------- resumable training runs

def training_state(epoch: int, settings: dict[str, Any], optimizer: torch.optim.Optimizer, history: list[float],
                   rng: np.random.Generator, gen: torch.Generator) -> dict[str, Any]:
    """What a checkpoint needs so that ``--resume`` continues the run exactly (tensors and plain data)."""
    return {"epoch": epoch, "settings": settings, "optimizer": optimizer.state_dict(),
            "history": [float(v) for v in history],
            "rng": {"numpy": rng.bit_generator.state, "torch": gen.get_state(),
                    "torch_global": torch.get_rng_state()}}


def _check_schedule(epochs: int, batches_per_epoch: int, batch: int, lr: float) -> None:
    for name, value in (("epochs", epochs), ("batches per epoch", batches_per_epoch), ("batch", batch)):
        positive(name, value)
    positive_rate("learning rate", lr)


def _continue_from(previous: tuple[Path, Checkpoint] | None, module: torch.nn.Module,
                   optimizer: torch.optim.Optimizer, rng: np.random.Generator,
                   gen: torch.Generator) -> tuple[int, list[float]]:
    """(first epoch, loss history) of a run: (0, []) for a new one; for one that continues the checkpoint
    ``previous`` (see :func:`resume_point`), after restoring its weights, optimizer and generator states."""
    if previous is None:
        return 0, []
    path, ckpt = previous
    state = ckpt.training_state
    assert state is not None
    load_state_strict(module, ckpt.state_dict, str(path))
    params = [p for group in optimizer.param_groups for p in group["params"]]
    try:
        saved = state["optimizer"]
        for index, entry in dict(saved.get("state") or {}).items():
            param = params[index]
            for key, value in dict(entry).items():
                if isinstance(value, torch.Tensor) and value.ndim and value.shape != param.shape:
                    raise ValueError(f"optimizer {key} of parameter {index} has shape {tuple(value.shape)}, "
                                     f"the parameter {tuple(param.shape)}")
        optimizer.load_state_dict(saved)
        rng.bit_generator.state = state["rng"]["numpy"]
        gen.set_state(state["rng"]["torch"])
        torch.set_rng_state(state["rng"]["torch_global"])
    except (ValueError, TypeError, KeyError, IndexError, RuntimeError, AttributeError) as exc:
        detail = " ".join(str(exc).split())[:100]
        raise CheckpointError(f"{path}: its training state cannot be restored ({type(exc).__name__}: {detail})") from exc
    return state["epoch"], state["history"]


def resume_point(out: str | os.PathLike[str], kind: str, settings: dict[str, Any], epochs: int,
                 batches_per_epoch: int) -> tuple[Path, Checkpoint] | None:
    """The checkpoint at ``out`` to continue from, checked against this run's settings (None: none yet)."""
    path = Path(out)
    if not path.exists():
        return None
    ckpt = load_checkpoint(path, expect_kind=kind)
    state = ckpt.training_state
    if state is None:
        raise CheckpointError(f"{path}: holds no training state to resume from (written by another verb "
                              f"or an older version)")
    saved = state["settings"]
    for key, value in settings.items():
        if saved.get(key) != value:
            raise ConfigError(f"{path}: cannot resume: it was trained with {key} = {saved.get(key)!r}, "
                              f"this run asks for {value!r}")
    done = state["epoch"]
    if len(state["history"]) != done * batches_per_epoch:
        raise CheckpointError(f"{path}: training_state history holds {len(state['history'])} losses for "
                              f"{done} epochs of {batches_per_epoch} batches")
    if done > epochs:
        raise ConfigError(f"{path}: cannot resume: it has already trained {done} epochs, this run asks for {epochs}")
    return path, ckpt


class EpochSaver:
    """Writes the resumable checkpoint after every epoch (rank 0 only) and says so."""

    def __init__(self, out: str | os.PathLike[str], epochs: int, batches_per_epoch: int, ctx: Context,
                 progress: bool, build: Callable[[int, list[float]], Checkpoint]) -> None:
        self.out, self.epochs, self.batches = out, epochs, batches_per_epoch
        self.ctx, self.progress, self.build = ctx, progress, build

    def __call__(self, epoch: int, history: list[float]) -> None:
        if self.ctx.is_main:
            save_checkpoint(self.out, self.build(epoch, history))
            if self.progress:
                loss = float(np.mean(history[-self.batches:]))
                print(f"epoch {epoch}/{self.epochs}: loss {loss:.4f}, checkpoint {self.out}", flush=True)
        distributed.barrier(self.ctx)


def train(source: DataSource, width: int, depth: int, epochs: int, batches_per_epoch: int, batch: int,
          patch: int, lr: float, seed: int, out: str | os.PathLike[str], classes: int = 2,
          progress: bool = True, resume: bool = False) -> dict[str, Any]:
    """Train the ANN, saving a resumable checkpoint to ``out`` after every epoch; returns the report.

    ``resume``: continue from the checkpoint at ``out`` if there is one (the same settings; more
    epochs extend the run). Under torchrun the run is data-parallel (see :mod:`toolchain.distributed`).
    """
    _check_schedule(epochs, batches_per_epoch, batch, lr)
    out_channels = classes if source.task == "segment" else source.channels
    config = UNetConfig(source.task, source.channels, out_channels, width=width, depth=depth)
    if patch % config.multiple:
        raise ConfigError(f"patch size {patch} must be a multiple of 2**depth = {config.multiple}")
    settings = {"verb": "train", "config": config.to_dict(), "data": source.to_dict(), "seed": seed,
                "batches_per_epoch": batches_per_epoch, "batch": batch, "patch": patch, "lr": lr}
    with distributed.session() as ctx:
        distributed.check_batch(batch, ctx)
        previous = resume_point(out, "ann", settings, epochs, batches_per_epoch) if resume else None
        rng, gen = seeded(seed)
        train_set, _ = source.load()
        ann = UNet(config)
        optimizer = torch.optim.Adam(ann.parameters(), lr=lr)
        start_epoch, history = _continue_from(previous, ann.core, optimizer, rng, gen)
        ann.train()
        start = time.perf_counter()

        def report(epoch: int, losses: list[float]) -> dict[str, Any]:
            return {"verb": "train", "config": config.to_dict(), "seed": seed, "epochs": epoch,
                    "batches": epoch * batches_per_epoch, "batch": batch, "patch": patch, "lr": lr,
                    "final_loss": float(np.mean(losses[-20:]))}

        def build(epoch: int, losses: list[float]) -> Checkpoint:
            ckpt = ann_checkpoint(ann, {"data": source.to_dict(), "train": report(epoch, losses)})
            ckpt.training_state = training_state(epoch, settings, optimizer, losses, rng, gen)
            return ckpt

        saver = EpochSaver(out, epochs, batches_per_epoch, ctx, progress, build)
        history = train_epochs(distributed.wrap(ann, ctx), optimizer,
                               Sampler(source.task, train_set, patch, batch, rng, gen), source.task, epochs,
                               batches_per_epoch, start_epoch=start_epoch, history=history, on_epoch=saver,
                               ctx=ctx, desc="train ANN", progress=progress)
        ann.cpu()
    return {**report(epochs, history), "seconds": time.perf_counter() - start, "resumed_from_epoch": start_epoch,
            "processes": ctx.world_size}


def calibration_batch(source: DataSource, count: int, patch: int, seed: int) -> torch.Tensor:
    """``count`` random training patches (noisy ones for denoising, as the network sees them)."""
    rng, gen = seeded(seed)
    train_set, _ = source.load()
    if source.task == "segment":
        return random_fov_patches(train_set, count, patch, rng)[0]
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
                        progress: bool = True, resume: bool = False) -> dict[str, Any]:
    """Fine-tune a converted SNN with the spiking flow at ``steps`` time steps, saving a resumable
    checkpoint to ``out`` after every epoch (``resume`` and torchrun as for :func:`train`)."""
    snn, ckpt = load_snn(snn_path)
    check_steps(steps)
    _check_schedule(epochs, batches_per_epoch, batch, lr)
    source = DataSource.from_meta(ckpt.meta, ckpt.config)
    settings = {"verb": "finetune", "source_sha256": file_sha256(snn_path), "steps": steps, "seed": seed,
                "batches_per_epoch": batches_per_epoch, "batch": batch, "patch": patch, "lr": lr}
    with distributed.session() as ctx:
        distributed.check_batch(batch, ctx)
        previous = resume_point(out, "snn", settings, epochs, batches_per_epoch) if resume else None
        rng, gen = seeded(seed)
        train_set, _ = source.load()
        optimizer = torch.optim.Adam(snn.parameters(), lr=lr)
        start_epoch, history = _continue_from(previous, snn.core, optimizer, rng, gen)
        snn.train()
        start = time.perf_counter()
        spiking = {**ckpt.spiking, "finetuned_steps": steps}

        def report(epoch: int, losses: list[float]) -> dict[str, Any]:
            return {"verb": "finetune", "steps": steps, "epochs": epoch, "batches": epoch * batches_per_epoch,
                    "batch": batch, "lr": lr, "final_loss": float(np.mean(losses[-20:]))}

        def build(epoch: int, losses: list[float]) -> Checkpoint:
            result = snn_checkpoint(snn, spiking, {**ckpt.meta, "finetune": report(epoch, losses)})
            result.training_state = training_state(epoch, settings, optimizer, losses, rng, gen)
            return result

        saver = EpochSaver(out, epochs, batches_per_epoch, ctx, progress, build)
        history = train_epochs(distributed.wrap(SpikingFlow(snn, steps), ctx), optimizer,
                               Sampler(source.task, train_set, patch, batch, rng, gen), source.task, epochs,
                               batches_per_epoch, steps, start_epoch=start_epoch, history=history,
                               on_epoch=saver, ctx=ctx, desc=f"fine-tune (spiking flow, T={steps})",
                               progress=progress)
        snn.cpu()
    return {**report(epochs, history), "seconds": time.perf_counter() - start, "resumed_from_epoch": start_epoch,
            "processes": ctx.world_size}


def predictor(model: UNet | SpikingUNet, steps: int):
    """x -> the model's decoded output (noise map or logits); an SNN runs ``steps`` steps."""
    if isinstance(model, SpikingUNet):
        check_steps(steps)
        return lambda x: model.simulate(x, steps).output
    return lambda x: model(x)


def evaluate_model(model: UNet | SpikingUNet, source: DataSource, steps: int, sigmas: Sequence[float],
                   seed: int, crop: int, test_set: ImageSet | None = None) -> dict[str, Any]:
    """Metrics of a model on the test split: PSNR/SSIM per sigma, or segmentation scores."""
    test_set = test_set or source.load_test()
    predict = predictor(model, steps)
    kind = "snn" if isinstance(model, SpikingUNet) else "ann"
    report: dict[str, Any] = {"model": kind, "task": source.task, "steps": steps if kind == "snn" else None}
    if source.task == "segment":
        report["segmentation"] = evaluate_segment(predict, test_set, model.config.out_channels)
    else:
        report["denoise"] = [evaluate_denoise(predict, test_set, s, seed, crop) for s in sigmas]
    return report


def evaluate_checkpoint(path: str | os.PathLike[str], steps: int, sigmas: Sequence[float], seed: int,
                        crop: int, data: str | None = None, layout: str | None = None) -> dict[str, Any]:
    """Evaluate on the checkpoint's own test split, or on ``data`` (a folder in ``layout``)."""
    model, ckpt = load_any(path)
    source = DataSource.from_meta(ckpt.meta, ckpt.config)
    if data is not None:
        source = DataSource(source.task, source.channels, data, layout or "auto").resolved()
    return {"checkpoint": str(Path(path)), **evaluate_model(model, source, steps, sigmas, seed, crop)}

"""Resumable training runs: the one loop ``train`` and ``finetune`` share.

A run saves a checkpoint at ``out`` after every epoch holding, besides the weights, what
``--resume`` needs to continue exactly (tensors and plain data, so it loads with
``weights_only=True``)::

    {"epoch": completed epochs, "settings": {the run's settings, compared on resume},
     "optimizer": optimizer.state_dict(), "history": [loss per batch],
     "rng": {"numpy": Generator.bit_generator.state, "torch": Generator.get_state(),
             "torch_global": torch.get_rng_state()}}

Under torchrun the run is data-parallel (:mod:`toolchain.frontend.distributed`); only rank 0 writes.
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checks import positive_int, positive_number
from ..data.folder import check_masks
from ..data.patches import augmented
from ..errors import CheckpointError, ConfigError
from ..frontend import distributed
from ..frontend.checkpoint import Checkpoint, load_checkpoint, load_state_strict, save_checkpoint
from ..frontend.training import train_epochs
from ..tasks.sampling import Sampler
from .source import DataSource, seeded

Log = Callable[[str], None]


@dataclass(frozen=True)
class Schedule:
    """Epochs of batches of patches and Adam's learning rate: constant, or with ``lr_final`` a cosine
    decay lr_final + (lr - lr_final) (1 + cos(pi k / K)) / 2 over the K batches of the run. ``augment``
    trains on every image at scales 1, 0.75, 0.5 and transposed (:func:`toolchain.data.patches.augmented`);
    ``by_area`` draws images with probability proportional to their area."""

    epochs: int
    batches_per_epoch: int = 100
    batch: int = 16
    patch: int = 48
    lr: float = 1e-3
    lr_final: float | None = None
    augment: bool = False
    by_area: bool = False

    def __post_init__(self) -> None:
        for name, value in (("epochs", self.epochs), ("batches per epoch", self.batches_per_epoch),
                            ("batch", self.batch), ("patch", self.patch)):
            positive_int(name, value)
        positive_number("learning rate", self.lr)
        if self.lr_final is not None:
            positive_number("final learning rate", self.lr_final)

    def lr_at(self, batch_index: int) -> float:
        """The learning rate of batch ``batch_index`` (0-based, counted over the whole run)."""
        if self.lr_final is None:
            return self.lr
        total = self.epochs * self.batches_per_epoch
        return self.lr_final + (self.lr - self.lr_final) * (1 + math.cos(math.pi * batch_index / total)) / 2

    def record(self) -> dict[str, Any]:
        """The schedule's settings beyond epochs, batches and lr (recorded only when used)."""
        out: dict[str, Any] = {}
        if self.lr_final is not None:
            out["lr_final"] = self.lr_final
        if self.augment:
            out["augment"] = True
        if self.by_area:
            out["by_area"] = True
        return out


@dataclass(frozen=True)
class RunStats:
    """How a training run went: wall time, the epoch it resumed from, the processes it ran on."""

    seconds: float = 0.0
    resumed_from_epoch: int = 0
    processes: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "resumed_from_epoch": self.resumed_from_epoch, "processes": self.processes}


@dataclass(frozen=True)
class RunOutcome:
    history: list[float]
    stats: RunStats


@dataclass
class TrainingRun:
    """What differs between the verbs: the model (built after seeding), its forward pass, the
    settings record compared on resume, and the checkpoint written after each epoch."""

    kind: str                                              # checkpoint kind: "ann" or "snn"
    out: str | os.PathLike[str]
    source: DataSource
    schedule: Schedule
    seed: int
    settings: dict[str, Any]
    model: Callable[[], torch.nn.Module]                   # the trained module (its state is checkpointed)
    forward: Callable[[torch.nn.Module], torch.nn.Module]   # the module to train on (DDP wraps it)
    checkpoint: Callable[[torch.nn.Module, int, list[float]], Checkpoint]
    on_batch: Callable[[int], None] | None = None   # runs before batch k (the spiking flow picks its T)
    classes: int = 2                 # segmentation: every mask label must be one of the network's classes
    noise_map: bool = False          # denoising: the network takes the noise level as one more channel
    desc: str = "training"
    resume: bool = False
    progress: bool = True
    log: Log | None = None

    def execute(self) -> tuple[torch.nn.Module, RunOutcome]:
        s = self.schedule
        with distributed.session() as ctx:
            distributed.check_batch(s.batch, ctx)
            previous = self._resume_point() if self.resume else None
            rng, gen = seeded(self.seed)
            train_set, _ = self.source.load()
            if self.source.task == "segment":
                check_masks(train_set, self.classes)
            if s.augment:
                train_set = augmented(train_set)
            module = self.model()
            optimizer = torch.optim.Adam(module.parameters(), lr=s.lr)
            start_epoch, history = _continue_from(previous, _state_module(module), optimizer, rng, gen)
            module.train()
            start = time.perf_counter()

            def on_epoch(epoch: int, losses: list[float]) -> None:
                if ctx.is_main:
                    ckpt = self.checkpoint(module, epoch, losses)
                    ckpt.training_state = {"epoch": epoch, "settings": self.settings,
                                           "optimizer": optimizer.state_dict(),
                                           "history": [float(v) for v in losses],
                                           "rng": {"numpy": rng.bit_generator.state, "torch": gen.get_state(),
                                                   "torch_global": torch.get_rng_state()}}
                    save_checkpoint(self.out, ckpt)
                    if self.log is not None:
                        loss = float(np.mean(losses[-s.batches_per_epoch:]))
                        self.log(f"epoch {epoch}/{s.epochs}: loss {loss:.4f}, checkpoint {self.out}")
                distributed.barrier(ctx)

            history = train_epochs(distributed.wrap(self.forward(module), ctx), optimizer,
                                   Sampler(self.source.task, train_set, s.patch, s.batch, rng, gen, self.noise_map,
                                           s.by_area),
                                   self.source.task, s.epochs, s.batches_per_epoch, lr_at=s.lr_at,
                                   on_batch=self.on_batch,
                                   start_epoch=start_epoch, history=history, on_epoch=on_epoch, ctx=ctx,
                                   desc=self.desc, progress=self.progress)
            module.cpu()
        return module, RunOutcome(history, RunStats(time.perf_counter() - start, start_epoch, ctx.world_size))

    def _resume_point(self) -> tuple[Path, Checkpoint] | None:
        """The checkpoint at ``out`` to continue from, checked against this run's settings (None: none yet)."""
        path = Path(self.out)
        if not path.exists():
            return None
        ckpt = load_checkpoint(path, expect_kind=self.kind)
        state = ckpt.training_state
        if state is None:
            raise CheckpointError(f"{path}: holds no training state to resume from (written by another verb "
                                  f"or an older version)")
        saved = state["settings"]
        for key, value in self.settings.items():
            if saved.get(key) != value:
                raise ConfigError(f"{path}: cannot resume: it was trained with {key} = {saved.get(key)!r}, "
                                  f"this run asks for {value!r}")
        done = state["epoch"]
        if len(state["history"]) != done * self.schedule.batches_per_epoch:
            raise CheckpointError(f"{path}: training_state history holds {len(state['history'])} losses for "
                                  f"{done} epochs of {self.schedule.batches_per_epoch} batches")
        if done > self.schedule.epochs:
            raise ConfigError(f"{path}: cannot resume: it has already trained {done} epochs, this run asks for "
                              f"{self.schedule.epochs}")
        return path, ckpt


def _state_module(module: torch.nn.Module) -> torch.nn.Module:
    """The submodule whose state dict a checkpoint holds (``.core`` of the U-Net and of the SNN)."""
    return module.core if isinstance(getattr(module, "core", None), torch.nn.Module) else module  # type: ignore[return-value]


def _continue_from(previous: tuple[Path, Checkpoint] | None, module: torch.nn.Module,
                   optimizer: torch.optim.Optimizer, rng: np.random.Generator,
                   gen: torch.Generator) -> tuple[int, list[float]]:
    """(first epoch, loss history) of a run: (0, []) for a new one; for one that continues the checkpoint
    ``previous``, after restoring its weights, optimizer and generator states."""
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
        raise CheckpointError(f"{path}: its training state cannot be restored "
                              f"({type(exc).__name__}: {detail})") from exc
    return state["epoch"], state["history"]

"""Where a task's images come from: the embedded photos or a user's dataset folder."""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import embedded, readers
from ..data.embedded import ImageSet
from ..data.folder import MASK_KINDS, MaskKind
from ..data.readers import random_fov_patches
from ..errors import CheckpointError, ConfigError
from ..memory import MemoryLimit
from ..tasks.sampling import Sampler
from ..tasks.spec import TaskSpec
from ..vocab import LAYOUTS, Layout, Task


@dataclass(frozen=True)
class DataSource:
    """The embedded photos (``root`` None) or a user folder in one of the layouts of
    :mod:`toolchain.data.readers` (``"auto"`` is resolved by :meth:`resolved`)."""

    task: Task
    channels: int
    root: str | None = None
    layout: Layout | None = None
    masks: MaskKind = "auto"         # how a ``folder`` layout's mask files are read (toolchain.data.folder)
    memory: MemoryLimit = MemoryLimit()   # what the files of one load may decode to (not recorded)

    def __post_init__(self) -> None:
        if self.masks not in MASK_KINDS:
            raise ConfigError(f"`masks` must be one of {', '.join(MASK_KINDS)}, got {self.masks!r}")

    def resolved(self) -> DataSource:
        """The same source with "auto" replaced by the detected layout (checkpoints record the name).

        A folder that matches no paper dataset is read as the plain ``folder`` layout, whose reader
        then says exactly which file or folder is missing.
        """
        if self.root is None or self.layout not in (None, "auto"):
            return self
        found = readers.detect_layout(self.root) if self.layout == "auto" else None
        layout: Layout = "folder"
        for name in LAYOUTS:
            if name == found:
                layout = name
        return DataSource(self.task, self.channels, self.root, layout, self.masks, self.memory)

    def load(self) -> tuple[ImageSet, ImageSet]:
        if self.root is not None:
            return readers.load_dataset(self.root, self.layout or "folder", self.task, self.channels,
                                        self.memory.budget(), **self._options())
        if self.task == "segment":
            if self.channels != 1:
                raise ConfigError("the embedded segmentation data is gray: use 1 `channels` or your own `data`")
            return embedded.segment_split()
        return embedded.denoise_split(self.channels)

    def load_test(self) -> ImageSet:
        """The test split alone (a folder without training images is fine, e.g. BSD68)."""
        if self.root is not None:
            return readers.load_test_set(self.root, self.layout or "folder", self.task, self.channels,
                                         self.memory.budget(), **self._options())
        return self.load()[1]

    def _options(self) -> dict[str, Any]:
        if self.masks == "auto":
            return {}
        if (self.layout or "folder") != "folder":
            raise ConfigError(f"`masks` applies to the folder layout; the {self.layout} layout defines its masks")
        return {"masks": self.masks}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"task": self.task, "channels": self.channels, "root": self.root, "layout": self.layout}
        if self.masks != "auto":
            out["masks"] = self.masks
        return out

    @classmethod
    def for_checkpoint(cls, path: str | os.PathLike[str], meta: Mapping[str, Any], spec: TaskSpec,
                       data: str | None = None, layout: Layout = "auto", masks: MaskKind = "auto",
                       memory: MemoryLimit = MemoryLimit()) -> DataSource:
        """The data a verb reads for a checkpoint: ``data`` if the user names a folder (read in the recorded
        layout when it is the recorded folder and ``layout`` is auto), the embedded photos if the
        checkpoint records none; a folder recorded inside the file is never read unless the user names it
        (ConfigError naming the folder and `data`)."""
        root, recorded_layout, recorded_masks = recorded_data(path, meta)
        if data is not None:
            if root is not None and layout == "auto" and masks == "auto" and _same_folder(root, data):
                return cls(spec.task, spec.in_channels, data, recorded_layout, recorded_masks, memory).resolved()
            return cls(spec.task, spec.in_channels, data, layout, masks, memory).resolved()
        if root is not None:
            raise ConfigError(f"{path}: trained on the data folder {root!r} (recorded in the checkpoint); a folder "
                              f"named inside a file is read only when you name it: give it (or another folder) "
                              f"with `data`")
        return cls(spec.task, spec.in_channels, memory=memory)


def recorded_data(path: str | os.PathLike[str], meta: Mapping[str, Any]) -> tuple[str | None, Any, Any]:
    """(root, layout, masks) a checkpoint's ``meta["data"]`` records, each of its type (CheckpointError if not)."""
    data = meta.get("data") or {}
    if not isinstance(data, Mapping):
        raise CheckpointError(f"{path}: meta data must be a mapping, got {type(data).__name__}")
    root, layout, masks = data.get("root"), data.get("layout"), data.get("masks") or "auto"
    if root is not None and (not isinstance(root, str) or not root or "\0" in root):
        raise CheckpointError(f"{path}: meta data root must be a folder name, got {type(root).__name__}")
    if layout is not None and (not isinstance(layout, str) or layout not in LAYOUTS):
        raise CheckpointError(f"{path}: meta data layout must be one of {', '.join(LAYOUTS)}, got "
                              f"{str(layout)[:40]!r}")
    if not isinstance(masks, str) or masks not in MASK_KINDS:
        raise CheckpointError(f"{path}: meta data masks must be one of {', '.join(MASK_KINDS)}, got "
                              f"{str(masks)[:40]!r}")
    return root, layout, masks


def _same_folder(a: str, b: str) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except (OSError, RuntimeError):
        return False


def seeded(seed: int) -> tuple[np.random.Generator, torch.Generator]:
    """Seed torch's initializer and return the generators every random draw uses."""
    torch.manual_seed(seed)
    return np.random.default_rng(seed), torch.Generator().manual_seed(seed)


def calibration_batch(source: DataSource, count: int, patch: int, seed: int, noise_map: bool = False) -> torch.Tensor:
    """``count`` random training patches as the network sees them (noisy ones for denoising, with the
    noise-level channel for a told denoiser)."""
    rng, gen = seeded(seed)
    train_set, _ = source.load()
    if source.task == "segment":
        return random_fov_patches(train_set, count, patch, rng)[0]
    return Sampler(source.task, train_set, patch, count, rng, gen, noise_map)()[0]

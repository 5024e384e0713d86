"""Where a task's images come from: the embedded photos or a user's dataset folder."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..data import embedded, readers
from ..data.embedded import ImageSet
from ..data.folder import MASK_KINDS, MaskKind
from ..data.readers import random_fov_patches
from ..errors import ConfigError
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
        return DataSource(self.task, self.channels, self.root, layout, self.masks)

    def load(self) -> tuple[ImageSet, ImageSet]:
        if self.root is not None:
            return readers.load_dataset(self.root, self.layout or "folder", self.task, self.channels, **self._options())
        if self.task == "segment":
            if self.channels != 1:
                raise ConfigError("the embedded segmentation data is gray: use 1 `channels` or your own `data`")
            return embedded.segment_split()
        return embedded.denoise_split(self.channels)

    def load_test(self) -> ImageSet:
        """The test split alone (a folder without training images is fine, e.g. BSD68)."""
        if self.root is not None:
            return readers.load_test_set(self.root, self.layout or "folder", self.task, self.channels,
                                         **self._options())
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
    def from_meta(cls, meta: Mapping[str, Any], spec: TaskSpec) -> DataSource:
        data = meta.get("data") or {}
        return cls(spec.task, spec.in_channels, data.get("root"), data.get("layout"), data.get("masks") or "auto")


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

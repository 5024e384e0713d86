"""What a network does, independent of its architecture: the task and its channel counts.

Denoising networks predict the noise map (the residual: denoised = noisy - output, as this
toolchain's own U-Net and DnCNN do) with one output channel per image channel; segmentation
networks output one logit map per class (2 or more; the prediction is their argmax).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import CheckpointError, ConfigError
from ..vocab import TASKS, Task

MAX_CHANNELS = 1 << 16          # channel counts beyond this are not an image network this toolchain makes


@dataclass(frozen=True)
class TaskSpec:
    """The task, the image channels in and the output channels (classes, or image channels)."""

    task: Task
    in_channels: int
    out_channels: int

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"task must be one of {TASKS}, got {self.task!r}")
        for name in ("in_channels", "out_channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_CHANNELS:
                raise ConfigError(f"{name} must be an integer in 1..{MAX_CHANNELS}, got {value!r}")
        if self.task == "segment" and self.out_channels < 2:
            raise ConfigError("segmentation needs out_channels (classes) >= 2: one logit map per class "
                              "(a single sigmoid map is two classes: use logits [-z, z] or retrain with 2 outputs)")
        if self.task == "denoise" and self.out_channels != self.in_channels:
            raise ConfigError(f"a denoiser predicts one noise map per image channel: out_channels "
                              f"{self.out_channels} != in_channels {self.in_channels}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> TaskSpec:
        if not isinstance(data, Mapping):
            raise CheckpointError("task spec is not a mapping")
        names = {"task", "in_channels", "out_channels"}
        if set(data) != names:
            raise CheckpointError(f"task spec must have exactly the keys {sorted(names)}, got {sorted(map(str, data))}")
        try:
            return cls(**{k: data[k] for k in names})
        except ConfigError as exc:
            raise CheckpointError(f"bad task spec: {exc}") from exc

"""What a network does, independent of its architecture: the task and its channel counts.

Denoising networks predict the noise map (the residual: denoised = noisy - output, as this
toolchain's own U-Net and DnCNN do) with one output channel per image channel; a denoiser with
``noise_map`` is told its noise level as one more input channel holding sigma / 255 everywhere
(FFDNet's conditioning; :func:`toolchain.tasks.sampling.denoiser_input`). Segmentation networks
output one logit map per class (2 or more; the prediction is their argmax).
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
    noise_map: bool = False

    @property
    def input_channels(self) -> int:
        """Channels the network takes: the image's, plus the noise-level channel of a conditioned denoiser."""
        return self.in_channels + int(self.noise_map)

    def __post_init__(self) -> None:
        if not isinstance(self.noise_map, bool):
            raise ConfigError(f"noise_map must be true or false, got {self.noise_map!r}")
        if self.noise_map and self.task != "denoise":
            raise ConfigError("a noise-level input channel is for denoising networks")
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
        out = asdict(self)
        if not self.noise_map:
            del out["noise_map"]          # a blind network's record, as before the noise-level input existed
        return out

    @classmethod
    def from_dict(cls, data: Any) -> TaskSpec:
        if not isinstance(data, Mapping):
            raise CheckpointError("task spec is not a mapping")
        names = {"task", "in_channels", "out_channels"}
        if not names <= set(data) <= names | {"noise_map"}:
            raise CheckpointError(f"task spec must have the keys {sorted(names)} (and optionally noise_map), "
                                  f"got {sorted(map(str, data))}")
        try:
            return cls(**{k: data[k] for k in set(data)})
        except ConfigError as exc:
            raise CheckpointError(f"bad task spec: {exc}") from exc

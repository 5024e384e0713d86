"""The paper's U-Net: configurable width and depth, average pooling, no BatchNorm, biases on.

The network is split in two: :class:`UNetCore` works on inputs whose sides are multiples of
2**depth and is what conversion and export see (torch.fx-traceable, activations injected), and
:class:`UNet` pads any input to that multiple (replicate padding) and crops the output back.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from toolchain.errors import CheckpointError, ConfigError
from toolchain.tasks.spec import TaskSpec
from toolchain.vocab import TASKS, Task

ActivationFactory = Callable[[str], nn.Module]


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of a U-Net; JSON-compatible so that checkpoints carry it beside the weights.

    ``out_channels`` is the number of classes for segmentation (2 for binary) and the number of
    image channels for denoising (the network predicts the noise map). ``noise_map``: a denoiser
    told its noise level (one more input channel, sigma / 255; see :mod:`toolchain.tasks.spec`).
    """

    task: Task
    in_channels: int
    out_channels: int
    width: int = 64
    depth: int = 4
    noise_map: bool = False

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"task must be one of {TASKS}, got {self.task!r}")
        for name in ("in_channels", "out_channels", "width", "depth"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.task == "segment" and self.out_channels < 2:
            raise ConfigError("segmentation needs out_channels (classes) >= 2")
        if self.depth > 8:
            raise ConfigError(f"depth {self.depth} is beyond what this toolchain supports (<= 8)")
        _ = self.spec                  # the task spec's checks (noise_map only for denoising, ...)

    @property
    def channels(self) -> list[int]:
        """Channels per level: width * 2**i for i = 0..depth (the last is the bottleneck)."""
        return [self.width * 2 ** i for i in range(self.depth + 1)]

    @property
    def spec(self) -> TaskSpec:
        """The task and channel counts (what every verb needs of a network, whatever its architecture)."""
        return TaskSpec(self.task, self.in_channels, self.out_channels, self.noise_map)

    @property
    def multiple(self) -> int:
        """Input sides must be multiples of this (inputs are padded to it)."""
        return 2 ** self.depth

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if not self.noise_map:
            del out["noise_map"]          # a blind U-Net's record, as before the noise-level input existed
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UNetConfig:
        if not isinstance(data, Mapping):
            raise CheckpointError("architecture config is not a mapping")
        names = {"task", "in_channels", "out_channels", "width", "depth"}
        missing = names - set(data)
        if missing:
            raise CheckpointError(f"architecture config lacks keys: {sorted(missing)}")
        try:
            return cls(**{k: data[k] for k in names}, noise_map=data.get("noise_map", False))
        except ConfigError as exc:
            raise CheckpointError(f"bad architecture config: {exc}") from exc


def relu_activations(kind: str) -> nn.Module:
    """ANN activations: ReLU after convolutions, nothing after pooling."""
    return nn.ReLU() if kind == "relu" else nn.Identity()


class DoubleConv(nn.Module):
    """Two 3x3 convolutions (padding 1), each followed by an activation."""

    def __init__(self, c_in: int, c_out: int, act: ActivationFactory) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.act1 = act("relu")
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.act2 = act("relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act2(self.conv2(self.act1(self.conv1(x))))


class ScaledAvgPool2d(nn.Module):
    """y = scale * AvgPool2d(k)(x). ``scale`` is 1 in the ANN; conversion sets it to lambda_in / lambda_out."""

    scale: torch.Tensor

    def __init__(self, kernel: int = 2, scale: float = 1.0) -> None:
        super().__init__()
        self.kernel = kernel
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32))

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, self.kernel) * self.scale


class Down(nn.Module):
    """Scaled AvgPool2d(2) and the activation after it (an MT neuron in the SNN, identity in the ANN)."""

    def __init__(self, act: ActivationFactory) -> None:
        super().__init__()
        self.pool = ScaledAvgPool2d(2)
        self.act = act("pool")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.pool(x))


class Up(nn.Module):
    """ConvTranspose2d(k3, s2, p1, op1) + activation halving channels, concat(skip, up), DoubleConv."""

    def __init__(self, c_in: int, c_out: int, act: ActivationFactory) -> None:
        super().__init__()
        self.upconv = nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1)
        self.act = act("relu")
        self.convs = DoubleConv(2 * c_out, c_out, act)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = self.act(self.upconv(x))
        return self.convs(torch.cat([skip, up], dim=1))


class UNetCore(nn.Module):
    """U-Net on inputs whose sides are multiples of 2**depth; activations come from ``act``."""

    def __init__(self, config: UNetConfig, act: ActivationFactory = relu_activations) -> None:
        super().__init__()
        ch = config.channels
        self.encoders = nn.ModuleList(
            DoubleConv(config.spec.input_channels if i == 0 else ch[i - 1], ch[i], act) for i in range(config.depth))
        self.downs = nn.ModuleList(Down(act) for _ in range(config.depth))
        self.bottleneck = DoubleConv(ch[-2], ch[-1], act)
        self.ups = nn.ModuleList(Up(ch[i + 1], ch[i], act) for i in reversed(range(config.depth)))
        kernel = 1 if config.task == "segment" else 3
        self.head = nn.Conv2d(ch[0], config.out_channels, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            x = encoder(x)
            skips.append(x)
            x = down(x)
        x = self.bottleneck(x)
        for up, skip in zip(self.ups, reversed(skips)):
            x = up(x, skip)
        return self.head(x)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Replicate-pad the bottom/right of an NCHW batch to sides that are multiples of ``multiple``."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x, (h, w)


class UNet(nn.Module):
    """The ANN: pads to a multiple of 2**depth, runs :class:`UNetCore`, crops back to the input size."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        self.core = UNetCore(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded, (h, w) = pad_to_multiple(x, self.config.multiple)
        return self.core(padded)[..., :h, :w]

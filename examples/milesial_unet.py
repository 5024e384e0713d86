"""The most common PyTorch U-Net, milesial/Pytorch-UNet (``unet_model.py``, ``unet_parts.py``), as its users
write it: Conv3x3 without bias -> BatchNorm -> ReLU(inplace) twice; MaxPool2d(2) down; bilinear Upsample or
ConvTranspose2d(k2, s2) up; ``F.pad`` to the skip's size with ``x.size()`` arithmetic; ``torch.cat([skip,
up])``; a 1x1 head. ``width`` replaces milesial's fixed 64, ``depth`` its 4, and ``pool="avg"`` trains
it with AvgPool2d instead of MaxPool2d (the choice that converts without changing the function).

The toolchain never imports this class: it captures instances with ``torch.export`` (the tests,
the README's example and ``python -m experiments foreign_unet`` use it as a foreign model).
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn


class DoubleConv(nn.Module):
    def __init__(self, c_in: int, c_out: int, mid: int | None = None) -> None:
        super().__init__()
        mid = mid or c_out
        self.double_conv = nn.Sequential(
            nn.Conv2d(c_in, mid, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
            nn.Conv2d(mid, c_out, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.double_conv(x)


class Down(nn.Module):
    def __init__(self, c_in: int, c_out: int, pool: Literal["max", "avg"] = "max") -> None:
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2) if pool == "max" else nn.AvgPool2d(2), DoubleConv(c_in, c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool_conv(x)


class Up(nn.Module):
    def __init__(self, c_in: int, c_out: int, bilinear: bool, align_corners: bool = True) -> None:
        super().__init__()
        if bilinear:
            self.up: nn.Module = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=align_corners)
            self.conv = DoubleConv(c_in, c_out, c_in // 2)
        else:
            self.up = nn.ConvTranspose2d(c_in, c_in // 2, kernel_size=2, stride=2)
            self.conv = DoubleConv(c_in, c_out)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        x1 = self.up(x1)
        dy = x2.size()[2] - x1.size()[2]
        dx = x2.size()[3] - x1.size()[3]
        x1 = F.pad(x1, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(torch.cat([x2, x1], dim=1))


class MilesialUNet(nn.Module):
    def __init__(self, n_channels: int, n_classes: int, bilinear: bool = False, width: int = 64, depth: int = 4,
                 pool: Literal["max", "avg"] = "max", align_corners: bool = True) -> None:
        super().__init__()
        factor = 2 if bilinear else 1
        ch = [width * 2 ** i for i in range(depth + 1)]
        self.inc = DoubleConv(n_channels, ch[0])
        self.downs = nn.ModuleList(Down(ch[i], ch[i + 1] // (factor if i == depth - 1 else 1), pool)
                                   for i in range(depth))
        self.ups = nn.ModuleList(Up(ch[i + 1], ch[i] // (factor if i > 0 else 1), bilinear, align_corners)
                                 for i in reversed(range(depth)))
        self.outc = nn.Conv2d(ch[0], n_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        x = skips.pop()
        for up in self.ups:
            x = up(x, skips.pop())
        return self.outc(x)

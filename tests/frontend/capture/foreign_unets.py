"""U-Nets written the way their users write them (not this toolchain's class), for the capture tests.

* :class:`~examples.milesial_unet.MilesialUNet` (the README's example): milesial/Pytorch-UNet's
  structure, with BatchNorm, MaxPool, bilinear or ConvTranspose upsampling and ``F.pad``.
* :class:`DepthwiseUNet`: depthwise-separable blocks (groups = C 3x3, then 1x1) with ``F.relu``,
  ``torch.relu_`` and ``.relu()``, AvgPool2d, nearest Upsample and ``torch.cat([up, skip])``.
* :class:`UpFirstUNet`: plain convs, ``nn.AvgPool2d``, ConvTranspose + ReLU and the concat order
  ``[up, skip]``, with a final softmax (segmentation).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from examples.milesial_unet import MilesialUNet


class DepthwiseSeparable(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in)
        self.pw = nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu_(self.pw(F.relu(self.dw(x))))


class DepthwiseUNet(nn.Module):
    def __init__(self, c_in: int = 1, c_out: int = 2, width: int = 4, depth: int = 2) -> None:
        super().__init__()
        ch = [width * 2 ** i for i in range(depth + 1)]
        self.stem = nn.Conv2d(c_in, ch[0], 3, padding=1)
        self.enc = nn.ModuleList(DepthwiseSeparable(ch[0] if i == 0 else ch[i - 1], ch[i]) for i in range(depth))
        self.pool = nn.AvgPool2d(2)
        self.mid = DepthwiseSeparable(ch[-2], ch[-1])
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.reduce = nn.ModuleList(nn.Conv2d(ch[i + 1], ch[i], 1) for i in reversed(range(depth)))
        self.dec = nn.ModuleList(DepthwiseSeparable(2 * ch[i], ch[i]) for i in reversed(range(depth)))
        self.head = nn.Conv2d(ch[0], c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem(x))
        skips = []
        for enc in self.enc:
            x = enc(x)
            skips.append(x)
            x = self.pool(x)
        x = self.mid(x)
        for reduce, dec, skip in zip(self.reduce, self.dec, reversed(skips)):
            x = reduce(self.up(x)).relu()
            x = dec(torch.cat([x, skip], 1))
        return self.head(x)


class UpFirstUNet(nn.Module):
    def __init__(self, c_in: int = 1, classes: int = 2, width: int = 4) -> None:
        super().__init__()
        self.enc1 = nn.Sequential(nn.Conv2d(c_in, width, 3, padding=1), nn.ReLU())
        self.enc2 = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU())
        self.up = nn.Sequential(nn.ConvTranspose2d(2 * width, width, 3, stride=2, padding=1, output_padding=1),
                                nn.ReLU())
        self.dec = nn.Sequential(nn.Conv2d(2 * width, width, 3, padding=1), nn.ReLU())
        self.head = nn.Conv2d(width, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.enc1(x)
        x = self.up(self.enc2(skip))
        return torch.softmax(self.head(self.dec(torch.cat([x, skip], dim=1))), dim=1)


def randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine parameters (a fresh BatchNorm is the identity), with
    positive shifts so that no layer of these narrow random nets is dead (all zero after its ReLU)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(c, generator=g) * 0.5 + 0.1)
    return model


def milesial(bilinear: bool, align_corners: bool = True, channels: int = 1, classes: int = 2,
             seed: int = 0) -> MilesialUNet:
    torch.manual_seed(seed)
    net = MilesialUNet(channels, classes, bilinear=bilinear, width=4, depth=2, align_corners=align_corners)
    randomize_batchnorm(net, seed)
    return net.eval()

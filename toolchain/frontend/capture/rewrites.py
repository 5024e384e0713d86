"""The rewrites that turn common PyTorch U-Net operations into spiking layers, and their record.

* BatchNorm (eval) after a conv, folded into it (exact): with s = gamma / sqrt(var + eps) per
  output channel, W' = W * s and b' = (b - mean) * s + beta (b = 0 without a bias).
* Nearest upsampling x s: a fixed depthwise ConvTranspose (kernel s, stride s, weight 1), exact.
* Bilinear upsampling x2 (align_corners=False): a fixed depthwise ConvTranspose (kernel 4, stride 2,
  padding 1) with weight k k^T, k = [1, 3, 3, 1] / 4. Exact inside the image; torch clamps source
  positions at the border where the convolution sees zeros, so the outermost rows and columns come
  out at 3/4 of torch's value and the corners at 9/16. align_corners=True has no fixed-stride kernel.
* A layer without activation whose output may be negative (a linear ConvTranspose before a concat):
  a signed pair, z -> [ReLU(z), ReLU(-z)] (weights [W; -W], bias [b; -b]), and every consumer reads
  the pair with [K, -K], so K z = K ReLU(z) - K ReLU(-z) (exact).
* A linear operation whose output is provably >= 0 (non-negative weights, no negative bias, on
  neuron outputs: pooling and upsampling of ReLU outputs) gets a ReLU neuron layer (exact).
* MaxPool2d -> AvgPool2d of the same kernel (``maxpool="avg"``): changes the function.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

RewriteKind = Literal["batchnorm-folded", "scale-folded", "nearest-upsample", "bilinear-upsample",
                      "rectified-nonnegative", "signed-pair", "maxpool-as-avgpool", "pad-dropped",
                      "softmax-dropped", "identity-dropped"]


@dataclass(frozen=True)
class Rewrite:
    """One rewrite conversion made: the layer it shaped, the model's module, what and whether exact."""

    layer: str
    module: str
    kind: RewriteKind
    exact: bool
    note: str

    def to_dict(self) -> dict[str, object]:
        return {"layer": self.layer, "module": self.module, "kind": self.kind, "exact": self.exact, "note": self.note}


def fold_batchnorm(weight: np.ndarray, bias: np.ndarray | None, transposed: bool, groups: int,
                   gamma: np.ndarray | None, beta: np.ndarray | None, mean: np.ndarray, var: np.ndarray,
                   eps: float) -> tuple[np.ndarray, np.ndarray]:
    """(W', b') of a conv (or convT) followed by eval-mode BatchNorm (float64; see the module docstring)."""
    scale = (np.ones_like(mean) if gamma is None else gamma) / np.sqrt(var + eps)
    if transposed:           # (C_in, C_out / g, k, k): output channel o = group * (C_out / g) + column
        c_in, per_group = weight.shape[:2]
        grouped = weight.reshape(groups, c_in // groups, per_group, *weight.shape[2:])
        folded = (grouped * scale.reshape(groups, 1, per_group, 1, 1)).reshape(weight.shape)
    else:
        folded = weight * scale.reshape(-1, 1, 1, 1)
    b = np.zeros_like(mean) if bias is None else bias
    return folded, (b - mean) * scale + (0.0 if beta is None else beta)


def nearest_kernel(channels: int, scale: int) -> np.ndarray:
    """Depthwise ConvTranspose weight (C, 1, s, s) of nearest upsampling by s (stride s, no padding)."""
    return np.ones((channels, 1, scale, scale))


BILINEAR_TAPS = np.array([1.0, 3.0, 3.0, 1.0]) / 4


def bilinear_kernel(channels: int) -> np.ndarray:
    """Depthwise ConvTranspose weight (C, 1, 4, 4) of bilinear upsampling x2 (stride 2, padding 1)."""
    return np.broadcast_to(np.outer(BILINEAR_TAPS, BILINEAR_TAPS), (channels, 1, 4, 4)).copy()


def signed_pair(weight: np.ndarray, bias: np.ndarray | None, transposed: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Weights and bias of the pair [z; -z] of a layer's output channels (ungrouped layers)."""
    axis = 1 if transposed else 0
    return (np.concatenate([weight, -weight], axis=axis),
            None if bias is None else np.concatenate([bias, -bias]))


def read_pairs(weight: np.ndarray, parts: list[tuple[int, bool]], axis: int) -> np.ndarray:
    """A consumer's weights over parts of (model channels, is a signed pair): K -> [K, -K] for pairs."""
    pieces, offset = [], 0
    for channels, paired in parts:
        piece = np.take(weight, range(offset, offset + channels), axis=axis)
        pieces += [piece, -piece] if paired else [piece]
        offset += channels
    return np.concatenate(pieces, axis=axis)

"""Small public wrappers around the reference simulator's exact integer helpers.

The Lava process models must compute exactly what :mod:`toolchain.refsim` computes, so they call
the same functions; refsim keeps them private (``_synapse``, ``_part_weight``), these wrappers give
the backend a stable name for them. No Lava import here.
"""
from __future__ import annotations

import numpy as np
import torch

from toolchain.ir.graph import Layer
from toolchain.simulators.reference import _part_weight, _synapse


def synapse_current(kind: str, x: torch.Tensor, weight: np.ndarray, payload_max: int, kernel: int = 1,
                    stride: int = 1, padding: int = 0, output_padding: int = 0) -> torch.Tensor:
    """conv / convT / sum-pool of integer payloads ``x`` (N, C, H, W) with integer mantissas, exact, int64.

    Exactly :func:`toolchain.refsim._synapse` (float32 where every partial sum is an exact integer,
    float64 otherwise); ``payload_max`` bounds |x|.
    """
    layer = Layer("synapse", kind, (0, 0, 0), kernel=kernel, stride=stride, padding=padding,
                  output_padding=output_padding)
    return _synapse(layer, x, weight, payload_max)


def part_weight(layer: Layer, offset: int, count: int) -> np.ndarray:
    """The mantissas of ``layer`` fed by input channels [offset, offset + count) (one concat part)."""
    return _part_weight(layer, offset, count)

"""Exact connectivity of conv / convT / pool layers, border- and stride-exact, per spatial axis.

A 2-D convolution's connectivity is separable: output pixel (o_y, o_x) reads input pixel (i_y, i_x)
through a tap exactly when the row axis connects o_y to i_y and the column axis connects o_x to i_x.
So everything is computed from two small matrices per layer, ``rows`` (H_out x H_in) and ``cols``
(W_out x W_in), whose entry [o, i] is the number of kernel taps linking o and i (0 or 1):

* conv / pool: o reads i = o * stride - padding + k for k in 0..kernel-1 (when 0 <= i < n_in);
* convT:       i writes o = i * stride - padding + k (when 0 <= o < n_out, output padding included).

Then, per (input channel, output channel) pair that the layer connects:

* synapses (taps between valid pixels) = rows.sum() * cols.sum()
  (= the sum of conv2d(ones, ones kernel) for a conv; tests check this against torch);
* fan-out of source pixel (i_y, i_x) = rows.sum(0)[i_y] * cols.sum(0)[i_x]
  (= the gradient of sum(conv(x)) with respect to x for an all-ones kernel).

Channel connectivity: conv / convT connect every input channel of group j to every output channel
of group j (``groups`` = 1: all pairs); pools and depthwise convolutions connect channel c to channel
c only. The core mapper models depthwise layers exactly and other grouped layers as dense (an
upper bound on their per-core fan-in and synaptic memory; the report's notes say so).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..ir import Conv, ConvTranspose, Layer, QuantizedNetwork, SpatialLayer, SumPool, SynapticLayer


def axis_taps(transposed: bool, n_in: int, n_out: int, kernel: int, stride: int, padding: int) -> np.ndarray:
    """(n_out, n_in) int64 matrix: taps connecting output index o and input index i along one axis
    (``transposed``: a transposed convolution, where input i writes output i * stride - padding + k)."""
    m = np.zeros((n_out, n_in), dtype=np.int64)
    if not transposed:
        for o in range(n_out):
            for k in range(kernel):
                i = o * stride - padding + k
                if 0 <= i < n_in:
                    m[o, i] += 1
    else:
        for i in range(n_in):
            for k in range(kernel):
                o = i * stride - padding + k
                if 0 <= o < n_out:
                    m[o, i] += 1
    return m


@dataclass(frozen=True)
class Part:
    """One synaptic input part of a layer: its source neuron layer, extra delay and channel offset."""

    source: Layer
    delay: int
    offset: int

    @property
    def channels(self) -> int:
        return self.source.shape[0]


class Geometry:
    """Connectivity of one synaptic layer (conv, convT or pool) of a network."""

    def __init__(self, network: QuantizedNetwork, layer: SynapticLayer) -> None:
        if not isinstance(layer, (Conv, ConvTranspose, SumPool)):
            raise ValueError(f"layer {layer.name} ({layer.kind}) has no spatial synapses")
        self.layer: SpatialLayer = layer
        self.static = isinstance(layer, Conv) and layer.static
        if self.static:
            self.parts = [Part(network.input, 0, 0)]
        else:
            self.parts = [Part(src, delay, offset) for src, delay, offset in network.parts(layer)]
        _, h_in, w_in = self.parts[0].source.shape      # all parts of a concat share H, W
        _, h_out, w_out = layer.shape
        self.in_hw = (h_in, w_in)
        transposed = isinstance(layer, ConvTranspose)
        self.rows = axis_taps(transposed, h_in, h_out, layer.kernel[0], layer.stride[0], layer.padding[0])
        self.cols = axis_taps(transposed, w_in, w_out, layer.kernel[1], layer.stride[1], layer.padding[1])

    @property
    def groups(self) -> int:
        """Channel groups: input group j feeds output group j only (a pool: one group per channel)."""
        return self.layer.shape[0] if isinstance(self.layer, SumPool) else self.layer.groups

    @property
    def depthwise(self) -> bool:
        """Channel c feeds channel c only (pools, depthwise convolutions); else groups of channel pairs."""
        return isinstance(self.layer, SumPool) or (self.groups == self.layer.shape[0] == self.in_channels)

    @property
    def in_channels(self) -> int:
        return sum(p.channels for p in self.parts)

    def channel_pairs(self, part: Part | None = None) -> int:
        """Connected (input channel, output channel) pairs, for one part or all."""
        c_out = self.layer.shape[0]
        c_in = part.channels if part is not None else self.in_channels
        return c_in if self.depthwise else c_in * c_out // self.groups

    @cached_property
    def taps(self) -> int:
        """Synapses per connected channel pair: taps joining valid input and output pixels."""
        return int(self.rows.sum() * self.cols.sum())

    def synapses(self, part: Part | None = None) -> int:
        """Valid weight taps (one per source neuron, i.e. graded / single-compartment count)."""
        return self.channel_pairs(part) * self.taps

    @cached_property
    def fanout_map(self) -> np.ndarray:
        """(H_in, W_in): synapses per source neuron per connected output channel, border-exact."""
        return np.outer(self.rows.sum(0), self.cols.sum(0)).astype(np.int64)

    @property
    def channel_fanout(self) -> int:
        """Output channels each source channel reaches."""
        return 1 if self.depthwise else self.layer.shape[0] // self.groups

    def synops(self, counts: np.ndarray) -> float:
        """Exact synaptic events of source activity ``counts`` (C_src, H_in, W_in): sum of counts x fan-out."""
        spatial = np.asarray(counts, dtype=np.float64).sum(axis=0)
        return float((spatial * self.fanout_map).sum()) * self.channel_fanout

    def thop_macs(self) -> int:
        """The ANN's MACs of this layer in the paper's counting convention (thop): output elements x
        (input channels x kernel^2 + 1 bias add); pool: output elements x (kernel^2 + 1 division).

        Reproduces the paper's Table 5: the 256x256 U-Net (width 64, depth 4) gives 6.55e10."""
        c_out, h, w = self.layer.shape
        k2 = self.layer.kernel[0] * self.layer.kernel[1]
        if self.depthwise:
            return c_out * h * w * (k2 + 1)
        bias = 1     # every quantized layer has a bias (zeros where the float layer had none)
        return c_out * h * w * (self.in_channels // self.groups * k2 + bias)

    def valid_macs(self) -> int:
        """MACs that touch a valid (non-padding) input pixel: the border-exact count."""
        return self.synapses()

    # Per-band quantities, used by the mapper (bands are contiguous ranges of output rows / cols).
    @staticmethod
    def bands(n: int, size: int) -> list[tuple[int, int]]:
        return [(a, min(a + size, n)) for a in range(0, n, size)]

    @staticmethod
    def band_reads(m: np.ndarray, bands: list[tuple[int, int]]) -> np.ndarray:
        """Distinct input indices read by each band of output indices."""
        return np.array([int((m[a:b].sum(0) > 0).sum()) for a, b in bands], dtype=np.int64)

    @staticmethod
    def band_taps(m: np.ndarray, bands: list[tuple[int, int]]) -> np.ndarray:
        """Taps (per channel pair) landing in each band of output indices."""
        return np.array([int(m[a:b].sum()) for a, b in bands], dtype=np.int64)

    @staticmethod
    def band_matrix(m: np.ndarray, bands: list[tuple[int, int]]) -> np.ndarray:
        """(n_in, n_bands): taps from input index i into band b (for per-core synaptic events)."""
        return np.stack([m[a:b].sum(0) for a, b in bands], axis=1)


def consumers(network: QuantizedNetwork) -> dict[str, list[tuple[SynapticLayer, Part]]]:
    """For each neuron layer, the synaptic layers its spikes reach and through which part."""
    out: dict[str, list[tuple[SynapticLayer, Part]]] = {layer.name: [] for layer in network.neuron_layers}
    for layer in network.synaptic_layers:
        if isinstance(layer, Conv) and layer.static:
            continue
        for part in Geometry(network, layer).parts:
            out[part.source.name].append((layer, part))
    return out

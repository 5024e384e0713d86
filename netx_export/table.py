"""The per-layer table of a network: shapes, neurons, synapses, exponents, depths, delays, clipping.

Synapse counts are exact logical connections (one per (source neuron, target neuron) pair joined by a
weight tap), borders included: a tap that falls on zero padding connects nothing. They are computed
by running the layer's own convolution on an all-ones input with an all-ones kernel (``synapses``)
or with the indicator of the nonzero weight mantissas (``nonzero``). A multi-compartment MT source
uses one axon per compartment on the hardware; the counts here are per logical neuron pair.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from toolchain.ir import (
    Concat,
    Conv,
    ConvTranspose,
    FixedSynapses,
    Layer,
    Network,
    SumPool,
    SynapticLayer,
)
from toolchain.lowering.quantize import LayerQuantReport

COLUMNS = ("index", "name", "type", "shape", "neurons", "synapses", "nonzero", "weight_exp", "depth",
           "delays", "clipped_weights", "clipped_biases")
HEADERS = {"index": "#", "name": "layer", "type": "type", "shape": "CxHxW", "neurons": "neurons",
           "synapses": "synapses", "nonzero": "nonzero", "weight_exp": "w_exp", "depth": "depth",
           "delays": "delays", "clipped_weights": "clip_w", "clipped_biases": "clip_b"}


def _taps(layer: Conv | ConvTranspose, in_hw: tuple[int, int], kernel: torch.Tensor, channels_in: int,
          groups: int = 1) -> int:
    """Sum over the layer's output of the synaptic taps landing on real input pixels, for ``kernel``."""
    ones = torch.ones((1, channels_in, *in_hw), dtype=torch.float64)
    if isinstance(layer, Conv):
        out = F.conv2d(ones, kernel, stride=layer.stride, padding=layer.padding, groups=groups)
    else:
        assert isinstance(layer, ConvTranspose)
        out = F.conv_transpose2d(ones, kernel, stride=layer.stride, padding=layer.padding,
                                 output_padding=layer.output_padding, groups=groups)
    return int(round(float(out.sum())))


def synapse_counts(network: Network, layer: Layer) -> tuple[int, int]:
    """(all connections, connections with a nonzero weight) of one layer; (0, 0) without synapses."""
    if not isinstance(layer, SynapticLayer):
        return 0, 0
    src = network[layer.source_name]
    c_in, in_h, in_w = src.shape
    c_out, out_h, out_w = layer.shape
    weight = np.asarray(layer.synapses.weight)
    if isinstance(layer, SumPool):
        dense = c_out * out_h * out_w * layer.kernel[0] * layer.kernel[1]
        return dense, dense if np.any(weight != 0) else 0
    assert isinstance(layer, (Conv, ConvTranspose))
    pairs = c_in * c_out // layer.groups      # connected (input channel, output channel) pairs
    dense = pairs * _taps(layer, (in_h, in_w), torch.ones((1, 1, *layer.kernel), dtype=torch.float64), 1)
    nonzero = torch.from_numpy(weight != 0).to(torch.float64)
    return dense, _taps(layer, (in_h, in_w), nonzero, c_in, layer.groups)


def _join(values: Sequence[Any]) -> str:
    return ",".join(str(int(v)) for v in values)


def layer_table(network: Network, reports: Sequence[LayerQuantReport] | None = None) -> list[dict[str, Any]]:
    """One row per layer (keys :data:`COLUMNS`); clipped counts come from the quantization reports
    when given (None otherwise, and for layers without a report)."""
    by_name = {report.name: report for report in reports or ()}
    rows = []
    for index, layer in enumerate(network.layers):
        synapses, nonzero = synapse_counts(network, layer)
        report = by_name.get(layer.name)
        rows.append({
            "index": index, "name": layer.name, "type": layer.kind,
            "shape": "x".join(str(s) for s in layer.shape), "neurons": layer.neurons,
            "synapses": synapses, "nonzero": nonzero,
            "weight_exp": _join(layer.synapses.weight_exp) if isinstance(layer, SynapticLayer)
            and isinstance(layer.synapses, FixedSynapses) else "",
            "depth": layer.depth, "delays": _join(layer.delays) if isinstance(layer, Concat) else "",
            "clipped_weights": report.weight_overflow.count if report else None,
            "clipped_biases": report.bias_overflow.count if report else None,
        })
    return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Aligned text: numbers right-aligned, text left-aligned, missing values as '-', and a total line
    for neurons and synapses."""
    if not rows:
        return ""
    columns = list(rows[0])
    cells = [[HEADERS.get(c, c) for c in columns]]
    cells += [["-" if row.get(c) is None or row.get(c) == "" else str(row[c]) for c in columns] for row in rows]
    total = {c: sum(int(row.get(c) or 0) for row in rows) for c in ("neurons", "synapses", "nonzero") if c in columns}
    if total:
        cells.append(["" if c not in total else str(total[c]) for c in columns])
        cells[-1][1 if len(columns) > 1 else 0] = "total"
    numeric = {c for c in columns if all(isinstance(row.get(c), (int, float, type(None))) for row in rows)}
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = []
    for line in cells:
        parts = [text.rjust(width) if column in numeric else text.ljust(width)
                 for text, width, column in zip(line, widths, columns)]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)

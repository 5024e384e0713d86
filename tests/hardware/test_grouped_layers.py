"""Grouped and depthwise layers in the hardware model, against their dense block-diagonal equivalents.

Oracle: a grouped convolution is the ungrouped one whose weight is zero between groups. Expanding
every grouped layer of a depthwise-separable U-Net so gives a network with the same spikes; the
report's synaptic operations on non-zero weights must then be equal layer by layer, while the
grouped layers' connection counts and synaptic memory must be smaller (by the group count for
the connections).
"""
from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "frontend" / "capture"))
from foreign_unets import DepthwiseUNet  # noqa: E402

from toolchain.backends import get_backend  # noqa: E402
from toolchain.frontend.capture import from_model  # noqa: E402
from toolchain.hardware import load_profile, profile_network  # noqa: E402
from toolchain.ir import Conv, ConvTranspose, QuantizedNetwork  # noqa: E402
from toolchain.lowering.lower import export_network  # noqa: E402
from toolchain.lowering.quantize import QuantSettings  # noqa: E402
from toolchain.tasks.spec import TaskSpec  # noqa: E402

T = 4


def _dense(network: QuantizedNetwork) -> QuantizedNetwork:
    """Every grouped conv as the ungrouped conv with a block-diagonal weight (the same function)."""
    layers = []
    for layer in network.layers:
        if isinstance(layer, Conv | ConvTranspose) and layer.groups > 1:
            w, g = layer.synapses.weight, layer.groups
            c_in = network[layer.source_name].shape[0]
            if isinstance(layer, Conv):
                dense = np.zeros((w.shape[0], c_in, *w.shape[2:]), w.dtype)
                per_out, per_in = w.shape[0] // g, c_in // g
                for j in range(g):
                    dense[j * per_out:(j + 1) * per_out, j * per_in:(j + 1) * per_in] = w[j * per_out:(j + 1) * per_out]
            else:
                c_out = w.shape[1] * g
                dense = np.zeros((c_in, c_out, *w.shape[2:]), w.dtype)
                per_out, per_in = w.shape[1], c_in // g
                for j in range(g):
                    dense[j * per_in:(j + 1) * per_in, j * per_out:(j + 1) * per_out] = w[j * per_in:(j + 1) * per_in]
            layer = replace(layer, groups=1, synapses=replace(layer.synapses, weight=dense))
        layers.append(layer)
    return network.with_layers(layers)


def test_grouped_layers_cost_as_their_dense_equivalent_says():
    torch.manual_seed(0)
    snn, info = from_model(DepthwiseUNet().eval(), torch.rand(4, 1, 16, 16), TaskSpec("segment", 1, 2))
    grouped, _ = export_network(snn, info, (16, 16), QuantSettings(steps=T))
    dense = _dense(grouped)
    x = np.random.default_rng(0).random((1, 1, 16, 16))
    runs = {name: get_backend("reference", net).run(net, x, T, record="counts")
            for name, net in (("grouped", grouped), ("dense", dense))}
    assert runs["grouped"].spike_counts == runs["dense"].spike_counts          # the same function
    np.testing.assert_array_equal(runs["grouped"].accumulator, runs["dense"].accumulator)
    reports = {name: profile_network(net, runs[name], load_profile("loihi2"))
               for name, net in (("grouped", grouped), ("dense", dense))}
    rows = {name: {row["layer"]: row for row in r["layers"]} for name, r in reports.items()}
    depthwise = [lay.name for lay in grouped.synaptic_layers if getattr(lay, "groups", 1) > 1]
    assert depthwise
    for name in rows["grouped"]:
        g, d = rows["grouped"][name], rows["dense"][name]
        assert g["synops_nonzero"] == d["synops_nonzero"], name
        if name in depthwise:
            groups = grouped[name].groups
            assert g["connections"] * groups == d["connections"], name
            assert g["synmem_words"] < d["synmem_words"], name
        else:
            assert g["connections"] == d["connections"] and g["synops"] == d["synops"], name

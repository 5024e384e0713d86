"""Grouped and depthwise layers on LavaNetwork: spikes identical to the reference simulator.

A small U-Net-shaped graph captured from an ``nn.Module`` (as ``tests/frontend/capture`` builds foreign
U-Nets) with a grouped conv (groups 2), a depthwise conv, a learned grouped ConvTranspose, and the fixed
depthwise ConvTransposes that capture makes of bilinear and nearest upsampling, concatenated into one
decoder conv (a skip with a delay). Stock Conv carries every one of them with its ``groups`` (a grouped
transposed conv as a grouped phase conv and a pixel shuffle). With Lava's own stock models (both
lowerings), and at a width whose depthwise layers have more groups than Lava's int8 ``groups`` holds
(block-diagonal groups, fast models), every layer's spikes at every step equal the reference's.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from toolchain.backends.lava import run_lava
from toolchain.backends.lava.layout import MAX_GROUPS
from toolchain.backends.lava.plan import plan_network
from toolchain.frontend.capture import CaptureOptions, from_model
from toolchain.frontend.conversion import ConversionSettings
from toolchain.ir import ConvTranspose, QuantizedNetwork
from toolchain.lowering.lower import export_network
from toolchain.lowering.quantize import QuantSettings
from toolchain.simulators.reference import ReferenceSimulator
from toolchain.tasks.spec import TaskSpec

pytestmark = pytest.mark.lava
T = 4


class GroupedNet(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        w = width
        self.stem = nn.Conv2d(1, w, 3, padding=1)
        self.grouped = nn.Conv2d(w, 2 * w, 3, padding=1, groups=2)
        self.pool = nn.AvgPool2d(2)
        self.dw = nn.Conv2d(2 * w, 2 * w, 3, padding=1, groups=2 * w)
        self.up_t = nn.ConvTranspose2d(2 * w, 2 * w, 2, stride=2, groups=2)
        self.dec = nn.Conv2d(6 * w, w, 3, padding=1)
        self.head = nn.Conv2d(w, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = F.relu(self.grouped(F.relu(self.stem(x))))                          # S x S, groups 2
        d = F.relu(self.dw(self.pool(g)))                                       # S/2, depthwise
        u = F.relu(self.up_t(d))                                                # S, grouped ConvTranspose
        b = F.interpolate(self.pool(d), scale_factor=2, mode="bilinear", align_corners=False)   # S/4 -> S/2
        n = F.interpolate(b, scale_factor=2, mode="nearest")                    # S/2 -> S
        return self.head(F.relu(self.dec(torch.cat([u, g, n], 1))))


@functools.cache
def _network(width: int, side: int, lowering: str) -> QuantizedNetwork:
    torch.manual_seed(0)
    snn, info = from_model(GroupedNet(width).eval(), torch.rand(4, 1, side, side), TaskSpec("segment", 1, 2),
                           ConversionSettings(), CaptureOptions())
    net, _ = export_network(snn, info, (side, side), QuantSettings(steps=T), lowering=lowering)
    return net


def _check(net: QuantizedNetwork, fast: bool, images: int = 1) -> None:
    x = np.random.default_rng(1).random((images,) + tuple(net.input.shape))
    ref = ReferenceSimulator(net).run(x, T, record="spikes")
    got = run_lava(net, x, T, record="spikes", timeout_s=280, fast=fast)
    np.testing.assert_array_equal(got.accumulator, ref.accumulator)
    assert got.spike_counts == ref.spike_counts and got.saturations == ref.saturations
    assert got.spikes.keys() == ref.spikes.keys()
    for name, expected in ref.spikes.items():
        assert expected.sum() > 0, f"layer {name} never spikes: the comparison would be empty"
        np.testing.assert_array_equal(got.spikes[name], expected, err_msg=name)


def _grouped(net: QuantizedNetwork) -> dict[str, int]:
    return {layer.name: layer.groups for layer in net.synaptic_layers if getattr(layer, "groups", 1) > 1}


@pytest.mark.parametrize("lowering", ["compartments", "graded"])
def test_grouped_depthwise_and_upsampling_layers_on_lava_s_stock_models(lowering):
    net = _network(4, 16, lowering)
    grouped = _grouped(net)
    convT = {layer.name for layer in net.synaptic_layers if isinstance(layer, ConvTranspose) and layer.groups > 1}
    assert sorted(grouped.values()) == [2, 2, 8, 8, 8] and len(convT) == 3     # up_t, bilinear, nearest
    plan = plan_network(net)
    by_target = {g.target: g for g in plan.convs}
    assert all(by_target[name].groups == groups for name, groups in grouped.items())
    assert all(by_target[name].shuffle == (2, 2) and by_target[name].shuffle_groups == grouped[name]
               for name in convT)
    assert any(g.delay for g in plan.convs) and plan.unproven() == []
    _check(net, fast=False, images=2)


def test_more_groups_than_lava_s_int8_holds_become_block_diagonal_groups():
    net = _network(68, 8, "compartments")                                     # depthwise layers of 136 groups
    plan = plan_network(net)
    wide = [g for g in plan.convs if _grouped(net).get(g.target, 1) > MAX_GROUPS]
    assert len(wide) == 3 and all(g.groups == 68 for g in wide)
    _check(net, fast=True)

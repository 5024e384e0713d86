"""The capture rewrites against the PyTorch modules they replace (float64), and the lowering's refusals.

Oracles: ``nn.BatchNorm2d`` after ``nn.Conv2d`` / ``nn.ConvTranspose2d`` (folding must be exact),
``F.interpolate`` (nearest exact; bilinear exact inside, 3/4 on edges, 9/16 at corners), the
signed pair against the linear layer it encodes, and this toolchain's U-Net captured by torch.export
against the fx tracer that has always described it.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from foreign_unets import DepthwiseUNet, UpFirstUNet, milesial
from torch import nn

from toolchain.errors import ConversionError
from toolchain.frontend.capture import CaptureOptions, capture_module
from toolchain.frontend.capture.rewrites import bilinear_kernel, fold_batchnorm, nearest_kernel, read_pairs, signed_pair
from toolchain.frontend.trace import trace_network
from toolchain.frontend.unet import UNet, UNetConfig
from toolchain.ir import FloatSynapses, SynapticLayer


def _bn(c: int, seed: int) -> nn.BatchNorm2d:
    g = torch.Generator().manual_seed(seed)
    bn = nn.BatchNorm2d(c).double().eval()
    bn.running_mean.copy_(torch.randn(c, generator=g, dtype=torch.float64))
    bn.running_var.copy_(torch.rand(c, generator=g, dtype=torch.float64) + 0.2)
    bn.weight.data.copy_(torch.randn(c, generator=g, dtype=torch.float64))
    bn.bias.data.copy_(torch.randn(c, generator=g, dtype=torch.float64))
    return bn


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("groups", [1, 2, 4])
@pytest.mark.parametrize("bias", [False, True])
def test_batchnorm_folds_exactly(transposed, groups, bias):
    torch.manual_seed(groups)
    cls = nn.ConvTranspose2d if transposed else nn.Conv2d
    conv = cls(4, 8, 3, padding=1, groups=groups, bias=bias).double().eval()
    bn = _bn(8, groups)
    x = torch.randn(2, 4, 7, 7, dtype=torch.float64)
    weight, b = fold_batchnorm(conv.weight.detach().numpy(), None if conv.bias is None else conv.bias.detach().numpy(),
                               transposed, groups, bn.weight.detach().numpy(), bn.bias.detach().numpy(),
                               bn.running_mean.numpy(), bn.running_var.numpy(), bn.eps)
    op = F.conv_transpose2d if transposed else F.conv2d
    folded = op(x, torch.from_numpy(weight), torch.from_numpy(b), padding=1, groups=groups)
    assert torch.allclose(folded, bn(conv(x)), rtol=0, atol=1e-12)


@pytest.mark.parametrize("scale", [2, 3])
def test_nearest_upsampling_is_a_fixed_depthwise_convT(scale):
    x = torch.rand(2, 3, 5, 6, dtype=torch.float64)
    up = F.conv_transpose2d(x, torch.from_numpy(nearest_kernel(3, scale)), stride=scale, groups=3)
    assert torch.equal(up, F.interpolate(x, scale_factor=scale, mode="nearest"))


def test_bilinear_upsampling_is_exact_inside_and_scaled_on_the_border():
    x = torch.rand(1, 2, 8, 8, dtype=torch.float64) + 0.5
    up = F.conv_transpose2d(x, torch.from_numpy(bilinear_kernel(2)), stride=2, padding=1, groups=2)
    ref = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    assert torch.allclose(up[..., 1:-1, 1:-1], ref[..., 1:-1, 1:-1], rtol=0, atol=1e-12)
    corner = up[..., 0, 0] / ref[..., 0, 0]
    assert torch.allclose(corner, torch.full_like(corner, 9 / 16), atol=1e-12)
    # an edge pixel away from the corners sees 3/4 of the clamped source: constant images show it
    ones = torch.ones(1, 1, 8, 8, dtype=torch.float64)
    edge = F.conv_transpose2d(ones, torch.from_numpy(bilinear_kernel(1)), stride=2, padding=1, groups=1)
    assert torch.allclose(edge[0, 0, 0, 2:-2], torch.full((12,), 0.75, dtype=torch.float64))


def test_a_signed_pair_reads_back_the_linear_layer_exactly():
    g = torch.Generator().manual_seed(0)
    w, b = torch.randn(3, 2, 2, 2, generator=g, dtype=torch.float64), torch.randn(2, generator=g, dtype=torch.float64)
    k = torch.randn(5, 4 + 2, 3, 3, generator=g, dtype=torch.float64)       # reads [skip (4), up (2)]
    skip, x = torch.rand(1, 4, 8, 8, dtype=torch.float64), torch.rand(1, 3, 4, 4, dtype=torch.float64)
    z = F.conv_transpose2d(x, w, b, stride=2)
    reference = F.conv2d(torch.cat([skip, z], 1), k, padding=1)
    pw, pb = signed_pair(w.numpy(), b.numpy(), transposed=True)
    pair = torch.relu(F.conv_transpose2d(x, torch.from_numpy(pw), torch.from_numpy(pb), stride=2))
    pk = read_pairs(k.numpy(), [(4, False), (2, True)], axis=1)
    assert torch.allclose(F.conv2d(torch.cat([skip, pair], 1), torch.from_numpy(pk), padding=1), reference,
                          rtol=0, atol=1e-12)


def _weights_equal(a: SynapticLayer, b: SynapticLayer) -> bool:
    sa, sb = a.synapses, b.synapses
    assert isinstance(sa, FloatSynapses) and isinstance(sb, FloatSynapses)
    same_bias = (sa.bias is None) == (sb.bias is None) and (sa.bias is None or np.array_equal(sa.bias, sb.bias))
    return np.array_equal(sa.weight, sb.weight) and same_bias


@pytest.mark.parametrize("task,depth", [("denoise", 2), ("segment", 3)])
def test_this_toolchains_unet_captures_to_the_traced_graph(task, depth):
    torch.manual_seed(depth)
    config = UNetConfig(task, 1, 2 if task == "segment" else 1, width=4, depth=depth)
    ann = UNet(config).eval()
    x = torch.rand(2, 1, 2 ** depth * 2, 2 ** depth * 2)
    captured = capture_module(ann.core, x)
    traced = trace_network(ann.core, (1, *x.shape[2:]))
    assert captured.multiple == config.multiple
    assert [(lay.name, lay.kind, lay.shape, lay.inputs, lay.depth) for lay in captured.network.layers] == \
        [(lay.name, lay.kind, lay.shape, lay.inputs, lay.depth) for lay in traced.layers]
    for a, b in zip(captured.network.synaptic_layers, traced.synaptic_layers):
        assert type(a.neuron) is type(b.neuron) and _weights_equal(a, b), a.name
    assert all(f.max_abs_error == 0.0 for f in captured.report.fidelity)


@pytest.mark.parametrize("name,model,options,kinds,exact", [
    ("milesial convT", lambda: milesial(False), CaptureOptions(maxpool="avg", linear="pair"),
     {"batchnorm-folded", "maxpool-as-avgpool", "signed-pair", "rectified-nonnegative"}, False),
    ("milesial bilinear", lambda: milesial(True, align_corners=False), CaptureOptions(maxpool="avg"),
     {"batchnorm-folded", "maxpool-as-avgpool", "bilinear-upsample", "rectified-nonnegative"}, False),
    ("depthwise", lambda: DepthwiseUNet().eval(), CaptureOptions(), {"nearest-upsample", "rectified-nonnegative"},
     True),
    ("up first", lambda: UpFirstUNet().eval(), CaptureOptions(), {"rectified-nonnegative", "softmax-dropped"}, False),
])
def test_foreign_unets_capture_with_their_rewrites(name, model, options, kinds, exact):
    torch.manual_seed(1)
    x = torch.rand(3, 1, 16, 16)
    net = model()
    captured = capture_module(net, x, options)
    assert {r.kind for r in captured.report.rewrites} == kinds
    assert captured.report.exact == exact
    ann = captured.ann()
    with torch.no_grad():
        if name == "up first":                      # the softmax is dropped: the logits' argmax is kept
            assert torch.equal(ann.ann_forward(x).argmax(1), net(x).argmax(1))
            return
        if "maxpool-as-avgpool" in kinds:           # the same graph as the model with AvgPool2d in its place
            for down in net.downs:
                down.maxpool_conv[0] = nn.AvgPool2d(2)
        error = float((ann.ann_forward(x) - net(x)).abs().max())
    if "bilinear-upsample" in kinds:
        assert error > 1e-4                         # the border: see test_bilinear_border_error_is_measured
    else:
        assert error < 1e-5                         # exact up to float32 rounding of the folded weights


def test_bilinear_border_error_is_measured_and_interior_exact():
    torch.manual_seed(2)
    net = milesial(True, align_corners=False)
    for down in net.downs:
        down.maxpool_conv[0] = nn.AvgPool2d(2)
    x = torch.rand(2, 1, 16, 16)
    captured = capture_module(net, x)
    assert {r.kind for r in captured.report.rewrites} >= {"bilinear-upsample"}
    assert not captured.report.exact and captured.report.fidelity[0].max_abs_error > 1e-4


class _Net(nn.Module):
    def __init__(self, forward, **modules) -> None:
        super().__init__()
        self._forward = forward
        for name, module in modules.items():
            self.add_module(name, module)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(self, x)


def _c(i: int = 1, o: int = 2, **kw) -> nn.Conv2d:
    return nn.Conv2d(i, o, 3, padding=1, **kw)


REFUSALS = {
    "maxpool": (lambda: milesial(False), CaptureOptions(), 16,
                "downs.0.maxpool_conv.0 (MaxPool2d) at graph node max_pool2d_with_indices", "`maxpool` avg"),
    "linear convT before concat": (lambda: milesial(False), CaptureOptions(maxpool="avg"), 16,
                                   "ups.0.up (ConvTranspose2d)", "`linear` pair"),
    "align_corners": (lambda: milesial(True), CaptureOptions(maxpool="avg"), 16,
                      "ups.0.up (Upsample)", "`align_corners` approx"),
    "pad at a non-multiple size": (lambda: milesial(False), CaptureOptions(maxpool="avg", linear="pair"), 18,
                                   "F.pad by", "multiples of 2**"),
    "leaky relu": (lambda: _Net(lambda m, x: m.h(m.a(m.c(x))), c=_c(), a=nn.LeakyReLU(), h=_c(2, 1)),
                   CaptureOptions(), 8, "a (LeakyReLU)", "use ReLU"),
    "overlapping pool": (lambda: _Net(lambda m, x: m.h(F.relu(m.c2(m.p(F.relu(m.c(x)))))), c=_c(),
                                      p=nn.AvgPool2d(3, 2, 1), c2=_c(2, 2), h=_c(2, 1)),
                         CaptureOptions(), 8, "p (AvgPool2d)", "non-overlapping pooling"),
    "batchnorm after relu": (lambda: _Net(lambda m, x: m.h(m.bn(F.relu(m.c(x)))), c=_c(), bn=nn.BatchNorm2d(2),
                                          h=_c(2, 1)), CaptureOptions(), 8, "bn (BatchNorm2d)", "before the ReLU"),
    "residual add": (lambda: _Net(lambda m, x: m.h(F.relu(m.c(x)) + F.relu(m.c2(x))), c=_c(), c2=_c(),
                                  h=_c(2, 1)), CaptureOptions(), 8, "at graph node add", "Conv2d"),
    "final relu": (lambda: _Net(lambda m, x: F.relu(m.h(F.relu(m.c(x)))), c=_c(), h=_c(2, 1)),
                   CaptureOptions(), 8, "graph node relu_1", "no final ReLU"),
    "sigmoid": (lambda: _Net(lambda m, x: torch.sigmoid(m.h(F.relu(m.c(x)))), c=_c(), h=_c(2, 1)),
                CaptureOptions(), 8, "sigmoid", "use ReLU"),
    "pool of the image": (lambda: _Net(lambda m, x: m.h(F.relu(m.c(m.p(x)))), p=nn.AvgPool2d(2), c=_c(),
                                       h=_c(2, 1)), CaptureOptions(), 8, "pooling of the image", "convolution"),
    "dilation": (lambda: _Net(lambda m, x: m.h(F.relu(m.c(x))), c=nn.Conv2d(1, 2, 3, padding=2, dilation=2),
                              h=_c(2, 1)), CaptureOptions(), 8, "c (Conv2d)", "dilation 1"),
    "non-square stride": (lambda: _Net(lambda m, x: m.h(F.relu(m.c(x))), c=nn.Conv2d(1, 2, 3, stride=(1, 2)),
                                       h=_c(2, 1)), CaptureOptions(), 8, "c (Conv2d)", "square"),
    "training-mode batchnorm": (lambda: _Net(lambda m, x: m.h(F.relu(F.batch_norm(m.c(x), None, None,
                                                                                  training=True))),
                                             c=_c(), h=_c(2, 1)), CaptureOptions(), 8, "training mode", "eval()"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_every_refusal_names_the_module_and_the_fix(case):
    build, options, side, where, fix = REFUSALS[case]
    torch.manual_seed(0)
    with pytest.raises(ConversionError) as info:
        capture_module(build(), torch.rand(2, 1, side, side), options)
    message = str(info.value)
    assert where in message and fix in message and "\n" not in message, message

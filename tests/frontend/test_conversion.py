"""ANN -> SNN conversion: convergence at large T, layer-wise and connection-wise normalization
(paper eqs. 7, 8 and Fig. 3), pooling scales, percentiles, settings validation."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import toolchain.frontend.unet as unet_module
from toolchain.frontend.conversion import ConversionSettings, convert
from toolchain.errors import ConfigError
from toolchain.frontend.unet import DoubleConv, UNet, UNetConfig

CONFIG = UNetConfig("denoise", 1, 1, width=4, depth=2)

# (synapse, the layer whose lambda is its lambda_in; None = the raw image, lambda 1) for depth 2.
# The layers after a concat are handled separately.
SINGLE_INPUT = [("encoders.0.conv1", None), ("encoders.0.conv2", "encoders.0.conv1"),
                ("encoders.1.conv1", "downs.0.pool"), ("encoders.1.conv2", "encoders.1.conv1"),
                ("bottleneck.conv1", "downs.1.pool"), ("bottleneck.conv2", "bottleneck.conv1"),
                ("ups.0.upconv", "bottleneck.conv2"), ("ups.0.convs.conv2", "ups.0.convs.conv1"),
                ("ups.1.upconv", "ups.0.convs.conv2"), ("ups.1.convs.conv2", "ups.1.convs.conv1")]
# layer after each concat: (synapse, skip part, upsampled part, concat name)
AFTER_CONCAT = [("ups.0.convs.conv1", "encoders.1.conv2", "ups.0.upconv", "concat0"),
                ("ups.1.convs.conv1", "encoders.0.conv2", "ups.1.upconv", "concat1")]



def _ann(seed: int = 0, config: UNetConfig = CONFIG) -> UNet:
    torch.manual_seed(seed)
    return UNet(config).eval()


def _boost_skips(ann: UNet, factor: float) -> UNet:
    """Make every skip part ``factor`` times larger; the encoder path after it is compensated."""
    core = ann.core
    following = [e.conv1 for e in core.encoders[1:]] + [core.bottleneck.conv1]
    with torch.no_grad():
        for encoder, nxt in zip(core.encoders, following):
            encoder.conv2.weight.mul_(factor)
            encoder.conv2.bias.mul_(factor)
            nxt.weight.div_(factor)
    return ann


def _rel_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().mean() / b.abs().mean())


def _r2(x: torch.Tensor, y: torch.Tensor) -> float:
    """R^2 of the least-squares line y = a x + c over all neurons."""
    x, y = x.detach().reshape(-1).double(), y.detach().reshape(-1).double()
    design = torch.stack([x, torch.ones_like(x)], 1)
    fit = design @ torch.linalg.lstsq(design, y[:, None]).solution[:, 0]
    return float(1 - (y - fit).pow(2).sum() / (y - y.mean()).pow(2).sum())


def test_snn_output_converges_to_ann():
    ann = _ann(0)
    with torch.no_grad():
        ann.core.head.bias.zero_()     # so that the comparison measures the spiking part, not a constant
    torch.manual_seed(1)
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        target = ann(x)
    snn, _ = convert(ann, x, ConversionSettings())
    errors = [_rel_error(snn.simulate(x, T).output, target) for T in (10, 100, 1000)]
    assert errors[1] < errors[0] / 3 and errors[2] < errors[1] / 3, errors
    assert errors[2] < 0.05, errors


def _weight(module: nn.Module, name: str) -> torch.Tensor:
    return dict(module.named_modules())[name].weight.detach()


def _bias(module: nn.Module, name: str) -> torch.Tensor:
    return dict(module.named_modules())[name].bias.detach()


def _check_single_input_layers(ann, snn, lambdas):
    for name, source in SINGLE_INPUT:
        lam_in = 1.0 if source is None else lambdas[source]
        lam_out = lambdas[name]
        assert torch.allclose(_weight(snn.core, name), _weight(ann.core, name) * lam_in / lam_out, rtol=1e-5), name
        assert torch.allclose(_bias(snn.core, name), _bias(ann.core, name) / lam_out, rtol=1e-5), name
    # the output layer keeps ANN units: lambda_out = 1
    lam_in = lambdas["ups.1.convs.conv2"]
    assert torch.allclose(_weight(snn.core, "head"), _weight(ann.core, "head") * lam_in, rtol=1e-5)
    assert torch.equal(_bias(snn.core, "head"), _bias(ann.core, "head"))


class UnequalUp(nn.Module):
    """An Up block whose upsampled part has 3 more channels than the skip part."""

    def __init__(self, c_in, c_out, act):
        super().__init__()
        self.upconv = nn.ConvTranspose2d(c_in, c_out + 3, 3, stride=2, padding=1, output_padding=1)
        self.act = act("relu")
        self.convs = DoubleConv(2 * c_out + 3, c_out, act)

    def forward(self, x, skip):
        return self.convs(torch.cat([skip, self.act(self.upconv(x))], dim=1))


@pytest.mark.parametrize("unequal", [False, True])
def test_connection_wise_scales_every_channel_of_every_part(unequal, monkeypatch):
    if unequal:
        monkeypatch.setattr(unet_module, "Up", UnequalUp)
    ann = _boost_skips(_ann(3), 3.0)
    torch.manual_seed(4)
    x = torch.rand(4, 1, 32, 32)
    snn, info = convert(ann, x, ConversionSettings("connection"))
    lambdas = info["lambdas"]
    assert set(lambdas) == {n for n, _ in SINGLE_INPUT} | {a[0] for a in AFTER_CONCAT} | {
        a[2] for a in AFTER_CONCAT} | {"downs.0.pool", "downs.1.pool", "concat0", "concat1"}
    _check_single_input_layers(ann, snn, lambdas)
    for name, skip, up, _ in AFTER_CONCAT:
        w_ann, w_snn = _weight(ann.core, name), _weight(snn.core, name)
        c_skip = _weight(ann.core, skip).shape[0]
        c_up = _weight(ann.core, up).shape[1]          # convT weights are (in, out, k, k)
        assert w_ann.shape[1] == c_skip + c_up
        assert (c_up == c_skip + 3) if unequal else (c_up == c_skip)
        lam_out = lambdas[name]
        factors = [lambdas[skip] / lam_out] * c_skip + [lambdas[up] / lam_out] * c_up
        # the test must be able to see a missed channel: the factors differ from 1 and from each other
        assert abs(factors[0] - 1) > 0.01 and abs(factors[-1] - 1) > 0.01
        assert abs(factors[0] / factors[-1] - 1) > 0.05
        for channel, factor in enumerate(factors):     # every channel, the last of each part included
            assert torch.allclose(w_snn[:, channel], w_ann[:, channel] * factor, rtol=1e-5), (name, channel)
        assert torch.allclose(_bias(snn.core, name), _bias(ann.core, name) / lam_out, rtol=1e-5)
    if unequal:   # and the converted network with unequal parts still reproduces the ANN
        with torch.no_grad():
            ann.core.head.bias.zero_()
            snn.core.head.bias.zero_()
            target = ann(x[:1])
        assert _rel_error(snn.simulate(x[:1], 300).output, target) < 0.02


def test_layer_wise_uses_the_concat_lambda():
    ann = _ann(3)
    torch.manual_seed(4)
    x = torch.rand(4, 1, 32, 32)
    snn, info = convert(ann, x, ConversionSettings("layer"))
    lambdas = info["lambdas"]
    assert info["normalization"] == "layer"
    _check_single_input_layers(ann, snn, lambdas)
    for name, _, _, concat in AFTER_CONCAT:
        factor = lambdas[concat] / lambdas[name]
        assert torch.allclose(_weight(snn.core, name), _weight(ann.core, name) * factor, rtol=1e-5)


def test_convert_leaves_the_ann_alone_and_reports():
    ann = _ann(5)
    before = {k: v.clone() for k, v in ann.core.state_dict().items()}
    torch.manual_seed(6)
    x = torch.rand(3, 1, 30, 30)                      # padded to 32x32 for calibration
    snn, info = convert(ann, x, ConversionSettings(percentile=99.0, thresholds=(1.0, 0.5)))
    assert all(torch.equal(before[k], v) for k, v in ann.core.state_dict().items())
    assert snn.thresholds == (1.0, 0.5)
    assert all(n.thresholds == (1.0, 0.5) for _, n in snn.neurons())
    assert len(snn.neurons()) == 12 + 2                # 12 ReLU layers + 2 pooling neuron layers
    assert info["calibration_images"] == 3 and info["percentile"] == 99.0
    assert info["thresholds"] == [1.0, 0.5]
    with torch.no_grad():
        padded = torch.nn.functional.pad(x, (0, 2, 0, 2), mode="replicate")
        assert info["output_abs_max"] == pytest.approx(float(ann.core(padded).abs().max()), rel=1e-6)


def _fig3_r2(norm: str) -> float:
    """R^2 between ANN activation and SNN spike rate of the layer right after the last concat."""
    ann = _ann(0)
    with torch.no_grad():   # skip part ~20x larger than the upsampled part; the rest of the net unchanged
        ann.core.encoders[0].conv2.weight.mul_(20)
        ann.core.encoders[0].conv2.bias.mul_(20)
        ann.core.encoders[1].conv1.weight.div_(20)
    torch.manual_seed(1)
    x = torch.rand(2, 1, 32, 32)
    captured = {}
    hooks = [ann.core.ups[1].convs.act1.register_forward_hook(lambda _m, _i, o: captured.update(act=o)),
             ann.core.ups[1].act.register_forward_hook(lambda _m, _i, o: captured.update(up=o)),
             ann.core.encoders[0].act2.register_forward_hook(lambda _m, _i, o: captured.update(skip=o))]
    with torch.no_grad():
        ann(x)
    for h in hooks:
        h.remove()
    assert float(captured["skip"].max()) > 10 * float(captured["up"].max())
    snn, _ = convert(ann, x, ConversionSettings(norm))
    steps = 100
    with torch.no_grad():
        state = snn.run(x, steps, record_flow=True).states["ups.1.convs.conv1"]
    assert state.steps == steps
    return _r2(captured["act"], state.flow_out / steps)


def test_fig3_connection_wise_keeps_activation_and_rate_linear():
    connection, layer = _fig3_r2("connection"), _fig3_r2("layer")
    assert connection > 0.99
    assert connection > layer + 0.1, (connection, layer)


def test_pool_scale_is_lambda_in_over_lambda_pool():
    ann = _ann(2)
    torch.manual_seed(2)
    x = torch.rand(2, 1, 32, 32)
    for norm in ("connection", "layer"):
        snn, info = convert(ann, x, ConversionSettings(norm))
        lam = info["lambdas"]
        for i in range(2):
            expected = lam[f"encoders.{i}.conv2"] / lam[f"downs.{i}.pool"]
            assert float(snn.core.downs[i].pool.scale) == pytest.approx(expected, rel=1e-6)
            assert abs(expected - 1) > 1e-3                 # visible if the scale were left at 1
            assert float(ann.core.downs[i].pool.scale) == 1.0


def _relu_outputs(ann, x):
    captured = {}
    hooks = [ann.core.encoders[0].act1.register_forward_hook(lambda _m, _i, o: captured.update(e0=o)),
             ann.core.encoders[0].act2.register_forward_hook(lambda _m, _i, o: captured.update(skip=o)),
             ann.core.ups[1].act.register_forward_hook(lambda _m, _i, o: captured.update(up=o))]
    with torch.no_grad():
        ann(x)
    for h in hooks:
        h.remove()
    return captured


def test_percentile_max_and_value():
    ann = _ann(7)
    torch.manual_seed(7)
    x = torch.rand(2, 1, 32, 32)
    acts = _relu_outputs(ann, x)
    _, info_max = convert(ann, x, ConversionSettings(percentile=None))
    lam = info_max["lambdas"]
    assert info_max["percentile"] is None
    assert lam["encoders.0.conv1"] == pytest.approx(float(acts["e0"].max()), rel=1e-6)
    # the concat's lambda is that of the joined activation: with 'max', the larger of its parts
    assert lam["concat1"] == pytest.approx(max(float(acts["skip"].max()), float(acts["up"].max())), rel=1e-6)
    _, info_p = convert(ann, x, ConversionSettings(percentile=90.0))
    expected = float(np.percentile(acts["e0"].double().numpy().ravel(), 90.0))
    assert info_p["lambdas"]["encoders.0.conv1"] == pytest.approx(expected, rel=1e-6)
    assert info_p["lambdas"]["encoders.0.conv1"] < lam["encoders.0.conv1"]
    _, info_100 = convert(ann, x, ConversionSettings(percentile=100.0))
    assert info_100["lambdas"] == pytest.approx(lam)


def test_dead_layer_keeps_its_weights():
    ann = _ann(8)
    with torch.no_grad():
        ann.core.encoders[0].conv1.bias.fill_(-100.0)      # ReLU output all zero
    x = torch.rand(1, 1, 16, 16)
    snn, info = convert(ann, x, ConversionSettings())
    assert info["lambdas"]["encoders.0.conv1"] == 1.0
    assert torch.equal(snn.core.encoders[0].conv1.weight, ann.core.encoders[0].conv1.weight)


@pytest.mark.parametrize("kwargs", [dict(normalization="channel"), dict(normalization=""),
                                    dict(percentile=0.0), dict(percentile=-5.0), dict(percentile=100.5),
                                    dict(thresholds=(1.0, 2.0)), dict(thresholds=()),
                                    dict(thresholds=(1.0, 0.0))])
def test_settings_validation(kwargs):
    with pytest.raises(ConfigError):
        ConversionSettings(**kwargs)


def test_settings_defaults():
    s = ConversionSettings()
    assert (s.normalization, s.percentile, s.thresholds) == ("connection", 99.9, (2.0, 1.0, 0.5, 0.25))
    assert ConversionSettings(percentile=100.0).percentile == 100.0

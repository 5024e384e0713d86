"""The paper's U-Net: shapes, padding/cropping, heads, the paper configuration, config validation."""
from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from toolchain.errors import CheckpointError, ConfigError
from toolchain.frontend.unet import (DoubleConv, ScaledAvgPool2d, UNet, UNetConfig, UNetCore, Up, pad_to_multiple,
                            relu_activations)



def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("size", [(32, 32), (30, 37), (17, 9)])
def test_shapes_and_crop(depth, size):
    torch.manual_seed(depth)
    config = UNetConfig("denoise", 1, 1, width=4, depth=depth)
    net = UNet(config).eval()
    seen = {}
    net.core.register_forward_hook(lambda _m, i, o: seen.update(inp=i[0].shape, out=o.shape))
    x = torch.rand(2, 1, *size)
    with torch.no_grad():
        y = net(x)
    m = 2 ** depth
    padded = tuple(-(-s // m) * m for s in size)
    assert y.shape == (2, 1, *size)
    assert tuple(seen["inp"]) == (2, 1, *padded)
    assert tuple(seen["out"]) == (2, 1, *padded)


def test_padding_is_replicate_then_cropped():
    torch.manual_seed(0)
    config = UNetConfig("denoise", 1, 1, width=4, depth=2)
    net = UNet(config).eval()
    x = torch.rand(1, 1, 30, 37)
    padded, (h, w) = pad_to_multiple(x, 4)
    assert (h, w) == (30, 37) and padded.shape == (1, 1, 32, 40)
    assert torch.equal(padded[..., :30, :37], x)
    assert torch.equal(padded[..., 31, :37], x[..., 29, :])        # bottom rows repeat the last row
    assert torch.equal(padded[..., :30, 39], x[..., :, 36])        # right columns repeat the last column
    assert torch.equal(padded[..., 31, 39], x[..., 29, 36])
    with torch.no_grad():
        assert torch.equal(net(x), net.core(F.pad(x, (0, 3, 0, 2), mode="replicate"))[..., :30, :37])
    same, size = pad_to_multiple(torch.ones(1, 1, 8, 12), 4)
    assert same.shape == (1, 1, 8, 12) and size == (8, 12)


def test_segmentation_head_and_classes():
    config = UNetConfig("segment", 3, 5, width=4, depth=2)
    net = UNet(config)
    assert net.core.head.kernel_size == (1, 1) and net.core.head.out_channels == 5
    assert net.core.encoders[0].conv1.in_channels == 3
    with torch.no_grad():
        assert net(torch.rand(1, 3, 20, 24)).shape == (1, 5, 20, 24)


def test_denoise_head_is_3x3():
    config = UNetConfig("denoise", 3, 3, width=4, depth=2)
    net = UNet(config)
    assert net.core.head.kernel_size == (3, 3) and net.core.head.padding == (1, 1)
    assert net.core.head.out_channels == 3
    with torch.no_grad():
        assert net(torch.rand(1, 3, 16, 16)).shape == (1, 3, 16, 16)


def test_small_net_structure():
    net = UNetCore(UNetConfig("denoise", 1, 1, width=4, depth=2))
    assert [e.conv2.out_channels for e in net.encoders] == [4, 8]
    assert net.bottleneck.conv2.out_channels == 16
    # ups go from the bottom: 16 -> 8 then 8 -> 4, each convT halving the channels
    assert [(u.upconv.in_channels, u.upconv.out_channels) for u in net.ups] == [(16, 8), (8, 4)]
    assert [u.convs.conv1.in_channels for u in net.ups] == [16, 8]
    assert all(isinstance(d.act, nn.Identity) for d in net.downs)                 # no activation after pooling
    assert all(isinstance(m, nn.ReLU) for m in (net.encoders[0].act1, net.ups[0].act))
    conv_like = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert all(m.bias is not None for m in conv_like)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())


def test_up_concatenates_skip_first():
    torch.manual_seed(0)
    up = Up(8, 4, relu_activations).eval()
    with torch.no_grad():
        up.convs.conv1.weight[:, 4:] = 0.0       # cut the second (upsampled) part off
    skip = torch.rand(1, 4, 8, 8)
    with torch.no_grad():
        a = up(torch.rand(1, 8, 4, 4), skip)
        b = up(torch.rand(1, 8, 4, 4) * 5, skip)
    assert torch.equal(a, b)                     # output depends on the skip only
    with torch.no_grad():
        up.upconv.weight.zero_()
        assert up.upconv(torch.rand(1, 8, 4, 4)).shape == (1, 4, 8, 8)   # stride 2, output_padding 1


def test_scaled_avg_pool():
    pool = ScaledAvgPool2d(2)
    assert float(pool.scale) == 1.0 and "scale" in dict(pool.named_buffers())
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert pool(x).tolist() == [[[[2.5, 4.5], [10.5, 12.5]]]]
    pool.scale.fill_(2.0)
    assert pool(x).tolist() == [[[[5.0, 9.0], [21.0, 25.0]]]]


def test_double_conv_count():
    dc = DoubleConv(3, 5, relu_activations)
    assert _params(dc) == 9 * 3 * 5 + 5 + 9 * 5 * 5 + 5


def test_paper_configuration():
    config = UNetConfig("segment", 1, 2)                 # defaults: width 64, depth 4
    assert config.channels == [64, 128, 256, 512, 1024]
    assert config.multiple == 16
    net = UNet(config)
    # Parameter count by hand (3x3 conv: 9*cin*cout + cout; convT 3x3 likewise; 1x1 head):
    # enc1 (1->64->64)      9*1*64+64 + 9*64*64+64            =     37,568
    # enc2 (64->128->128)   9*64*128+128 + 9*128*128+128      =    221,440
    # enc3 (128->256->256)  294,912+256 + 589,824+256         =    885,248
    # enc4 (256->512->512)  1,179,648+512 + 2,359,296+512     =  3,539,968
    # bottleneck 512->1024->1024  4,718,592+1,024 + 9,437,184+1,024 = 14,157,824
    # up 1024->512: convT 4,719,104 + conv 1024->512 4,719,104 + conv 512->512 2,359,808 = 11,798,016
    # up 512->256:  convT 1,179,904 + 1,179,904 + 590,080 =  2,949,888
    # up 256->128:  convT   295,040 +   295,040 + 147,584 =    737,664
    # up 128->64:   convT    73,792 +    73,792 +  36,928 =    184,512
    # head 1x1 64->2: 128 + 2 = 130                       total 34,512,258
    assert _params(net) == 34_512_258
    assert net.core.head.kernel_size == (1, 1)
    assert [u.upconv.out_channels for u in net.core.ups] == [512, 256, 128, 64]
    # the denoising variant differs only in its 3x3 head: 9*64*1 + 1 = 577 instead of 130
    assert _params(UNet(UNetConfig("denoise", 1, 1))) == 34_512_258 - 130 + 577


@pytest.mark.parametrize("kwargs", [
    dict(task="classify", in_channels=1, out_channels=1),
    dict(task="denoise", in_channels=0, out_channels=1),
    dict(task="denoise", in_channels=1, out_channels=0),
    dict(task="denoise", in_channels=1, out_channels=1, width=0),
    dict(task="denoise", in_channels=1, out_channels=1, width=-4),
    dict(task="denoise", in_channels=1, out_channels=1, depth=0),
    dict(task="denoise", in_channels=1, out_channels=1, depth=9),
    dict(task="denoise", in_channels=1, out_channels=1, width=4.0),
    dict(task="denoise", in_channels=True, out_channels=1),
    dict(task="denoise", in_channels="1", out_channels=1),
    dict(task="segment", in_channels=1, out_channels=1),
])
def test_config_validation(kwargs):
    with pytest.raises(ConfigError):
        UNetConfig(**kwargs)


def test_config_limits_accepted():
    assert UNetConfig("denoise", 1, 1, width=1, depth=8).multiple == 256
    assert UNetConfig("segment", 1, 2, width=1, depth=1).channels == [1, 2]


def test_config_round_trip_and_frozen():
    config = UNetConfig("segment", 3, 4, width=8, depth=3)
    data = config.to_dict()
    assert data == {"task": "segment", "in_channels": 3, "out_channels": 4, "width": 8, "depth": 3}
    assert UNetConfig.from_dict(data) == config
    assert UNetConfig.from_dict({**data, "extra": 1}) == config
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.width = 16  # type: ignore[misc]


@pytest.mark.parametrize("drop", ["task", "in_channels", "out_channels", "width", "depth"])
def test_from_dict_missing_key(drop):
    data = UNetConfig("denoise", 1, 1, width=4, depth=2).to_dict()
    del data[drop]
    with pytest.raises(CheckpointError, match=drop):
        UNetConfig.from_dict(data)


@pytest.mark.parametrize("bad", [None, [1, 2], "denoise",
                                 {"task": "denoise", "in_channels": 1, "out_channels": 1, "width": 0, "depth": 2}])
def test_from_dict_bad(bad):
    with pytest.raises(CheckpointError):
        UNetConfig.from_dict(bad)

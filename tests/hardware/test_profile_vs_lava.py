"""The Loihi 2 profile counts the spikes the lava-cpu backend actually produces on the same input, and a profile
of the lava-cpu backend's own activity (collect_activity through the backend interface) is the reference's."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from toolchain.backends import BackendOptions, get_backend
from toolchain.backends.lava import run_lava
from toolchain.frontend.conversion import ConversionSettings, convert
from toolchain.frontend.unet import UNet, UNetConfig
from toolchain.hardware import collect_activity, load_profile, profile_network
from toolchain.lowering.lower import export_network
from toolchain.lowering.quantize import QuantSettings

STEPS = 4


@pytest.mark.lava
@pytest.mark.parametrize("lowering", ["compartments", "graded"])
def test_profile_spike_counts_equal_lava_cpu(lowering):
    torch.manual_seed(3)
    ann = UNet(UNetConfig("denoise", 1, 1, width=4, depth=2))
    calibration = torch.rand(4, 1, 16, 16)
    snn, info = convert(ann, calibration, ConversionSettings())
    network, _ = export_network(snn, info, (16, 16), QuantSettings(steps=STEPS), lowering)
    image = np.random.default_rng(3).random((1, 1, 16, 16))

    result, activity = collect_activity(network, image, STEPS)
    report = profile_network(network, result, load_profile("loihi2"), STEPS, activity=activity)
    lava = run_lava(network, image, STEPS, timeout_s=240)

    profiled = {row["layer"]: row["spikes_per_threshold"] for row in report["layers"] if row["spikes_per_threshold"]}
    assert profiled, "the profile reported no spiking layer"
    assert set(profiled) == set(lava.spike_counts)
    for name, counts in lava.spike_counts.items():
        assert [int(c) for c in profiled[name]] == [int(c) for c in counts], name
    assert report["totals"]["spikes"] == sum(sum(c) for c in lava.spike_counts.values()) > 0

    lava_result, lava_activity = collect_activity(network, image, STEPS,
                                                  backend=get_backend("lava-cpu", network, BackendOptions(timeout_s=240)))
    assert lava_activity.exact and lava_activity.totals == activity.totals
    for name, counts in activity.counts.items():
        np.testing.assert_array_equal(lava_activity.counts[name], counts, err_msg=name)
        np.testing.assert_array_equal(lava_activity.messages[name], activity.messages[name], err_msg=name)
    from_lava = profile_network(network, lava_result, load_profile("loihi2"), STEPS, activity=lava_activity)
    assert from_lava["layers"] == report["layers"] and from_lava["totals"] == report["totals"]

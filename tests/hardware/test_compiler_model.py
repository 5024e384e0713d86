"""The calibrated Loihi 2 resource, time and energy model (compiler profile) on hand-built layers and networks:
SynMem words, tilings, limits as data with a fits() check, per-core loads, time and energy by hand, bands.
Against Intel's measured runs: test_loihi2_calibration.py."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_hardware_profile import HAND_EVENTS, hand_result, three_layer_net, two_layer_net

from toolchain.hardware import (Activity, ChipLayer, ChipPart, CoreLimits, chip_layers, compile_network, fits,
                                load_profile, profile_network, quantized_activity)
from toolchain.hardware.compiler import conv_tile, dense_cores, dense_words, kernel_words
from toolchain.hardware.compiler import fits as compiler_fits

PJ = 1e-12


def loihi2(*extra: str):
    return load_profile("loihi2", list(extra))


def conv(name, shape, c_in, k=3, units=1, src_units=1, stride=1):
    return ChipLayer(name, "conv", shape, units=units, parts=(ChipPart("src", c_in, src_units, 0, 0, (64, 64)),),
                     kernel=(k, k), stride=(stride, stride), padding=(k // 2, k // 2))


def test_synmem_words_by_hand():
    lim = CoreLimits.of(loihi2())
    # PilotNet conv1: 3 input channels x 9 taps x ceil(24 x 8 / 64) = 27 x 3 = 81 words (compiler table: 81)
    assert kernel_words(conv("c", (24, 32, 99), 3), 24, lim) == 81
    # under the compartments lowering every source compartment has its own kernel rows
    assert kernel_words(conv("c", (16, 8, 8), 16, src_units=4), 16, lim) == 16 * 4 * 9 * 2
    # a 2x2 sum pool reads its own channel: 32 channels x 4 compartments x 4 taps x 8 bits = 64 words
    pool = ChipLayer("p", "pool", (32, 8, 8), parts=(ChipPart("src", 32, 4, 0, 0, (16, 16)),), kernel=(2, 2),
                     stride=(2, 2))
    assert kernel_words(pool, 32, lim) == 64
    # dense 2560 -> 100 at netx's 3 weight bits: 2560 x ceil((100 x 15 + 16) / 64) = 61440 (the compiler's violation)
    assert dense_words(2560, 100, 3, lim) == 61440 and dense_words(2560, 17, 3, lim) == 12800
    dense = ChipLayer("d", "dense", (100, 1, 1), parts=(ChipPart("src", 2560, 1),), weight_bits=3)
    assert dense_cores(dense, lim) == 12                      # 1 -> 6 (12800 words) -> 12 (7680 words), as logged


def test_tiling_is_x_first_powers_of_two():
    lim = CoreLimits.of(loihi2())
    assert conv_tile(ChipLayer("in", "input", (3, 66, 200)), lim) == (3, 66, 16)          # 13 cores of PilotNet
    assert conv_tile(conv("c", (36, 15, 49), 24), lim) == (36, 15, 4)
    assert conv_tile(conv("c", (1, 64, 64), 16), lim) == (1, 64, 32)                  # 4096 neurons > 4095
    # the compartments lowering: 4 compartments per neuron count against the 4095 neurons of a core
    assert conv_tile(conv("c", (16, 64, 64), 16, units=4), lim) == (16, 32, 1)
    lim_small = CoreLimits.of(loihi2("core.synmem_words=500"))
    assert conv_tile(conv("c", (64, 8, 8), 64), lim_small) is None                     # 64 x 9 rows > 500 words


@settings(max_examples=40, deadline=None)
@given(c=st.integers(1, 70), h=st.integers(1, 40), w=st.integers(1, 40), c_in=st.integers(1, 80),
       units=st.integers(1, 4), neurons=st.integers(8, 5000), words=st.integers(40, 20000))
def test_every_core_within_limits_and_every_neuron_placed_once(c, h, w, c_in, units, neurons, words):
    profile = loihi2(f"core.neurons={neurons}", f"core.synmem_words={words}")
    layer = conv("c", (c, h, w), c_in, units=units)
    cmap = compile_network([layer], profile)
    lim = cmap.limits
    if not cmap.fits:
        assert cmap.reasons and "layer c" in cmap.reasons[0]
        assert units > neurons or kernel_words(layer, 1, lim) > words or units > lim.neuron_groups
        return
    lc = cmap.layer("c")
    for r in ("neurons", "synmem_words", "neuron_groups"):
        assert lc.usage[r].max() <= lim.limit(r), r
    placed = np.zeros((c, h, w), int)
    for c0, c1 in lc.groups[0]:
        for y0, y1 in lc.groups[1]:
            for x0, x1 in lc.groups[2]:
                placed[c0:c1, y0:y1, x0:x1] += 1
    assert (placed == 1).all() and lc.usage["neurons"].sum() == c * h * w * units
    tc, ty, tx = lc.tile
    assert lc.cores == math.ceil(c / tc) * math.ceil(h / ty) * math.ceil(w / tx)


def test_limits_as_data_with_fits():
    lim = CoreLimits.of(loihi2())
    ok = {"neurons": 4095, "synmem_words": 12000, "axons_in": 16000, "neuron_groups": 8}
    assert lim.fits(ok) == [] and lim.fits({**ok, "neurons": 4096, "axons_in": 16001}) == ["neurons", "axons_in"]
    with pytest.raises(Exception, match="compiler resource model"):
        CoreLimits.of(load_profile("loihi1"))
    wide = ChipLayer("d", "dense", (10, 1, 1), parts=(ChipPart("src", 20000, 1),), weight_bits=4)
    ok_, reasons = compiler_fits([wide], loihi2())
    assert not ok_ and "one neuron's synapses needs synmem words 20000 > loihi2's per-core limit 12000" in reasons[0]
    ok_, reasons = compiler_fits([wide], loihi2("core.synmem_words=100000"))     # then the input axons bind
    assert not ok_ and "axons in 20000 > loihi2's per-core limit 16000" in reasons[0]


def test_hand_network_cores_time_and_energy():
    """two_layer_net: static conv 2x4x4 (4 thresholds) -> 1x1 head (ACC); T = 2, 4 spikes (test_hardware_profile)."""
    net = two_layer_net()
    result = hand_result(net, 2, HAND_EVENTS)
    p = loihi2("energy.scale=1")
    report = profile_network(net, result, p)
    m = {x["layer"]: x for x in report["mapping"]["layers"]}
    assert report["mapping"]["cores"] == 2 and report["mapping"]["chips"] == 1
    # conv1: 32 neurons x 4 compartments on one core, 4 neuron groups (one per threshold), no SynMem (host input)
    assert m["conv1"]["neurons_util_max"] == pytest.approx(128 / 4095) and m["conv1"]["neuron_groups_util_max"] == 0.5
    # head: 2 channels x 4 compartments x 1 tap x ceil(1 x 8 / 64) = 8 words; one source core -> 1 input axon
    assert m["head"]["synmem_words"] == 8 and m["head"]["axons_in_util_max"] == pytest.approx(1 / 16000)
    head_w = np.asarray(net["head"].synapses.weight)
    assert (head_w != 0).all()                               # so every synop is on a non-zero weight
    e = report["energy"]["profile"]
    # the energy of test_hardware_profile's hand count: synops 4 x 23.6 + updates 4 x 81 + 252 x 52 + 32 x 52
    # + packets 4 x (1.7 + 2 x 3.5) + host 320 x 4.6 pJ; static: 0.275 W x 1 chip x 2 steps x the 30.98 us floor
    dynamic = (94.4 + 13428 + 1664 + 34.8 + 1472) * PJ
    assert e["dynamic_j"]["value"] == pytest.approx(dynamic)
    assert report["timing"]["time_per_step_s"] == pytest.approx(30.98e-6) and report["timing"]["floor_bound"]
    assert e["static_j"]["value"] == pytest.approx(0.275 * 2 * 30.98e-6)
    assert e["energy_j"] == pytest.approx(dynamic + 0.275 * 2 * 30.98e-6)
    assert e["static_j"]["low"] == pytest.approx(0.178 * 2 * 30.98e-6)                # bands from the profile's ends
    assert e["static_j"]["high"] == pytest.approx(0.382 * 2 * 30.98e-6)


def test_time_per_step_is_the_busiest_core_by_hand():
    net = three_layer_net()
    events = {"conv1": [(t, 3, c, y, x) for t in range(4) for c in range(2) for y in range(4) for x in range(4)]}
    result = hand_result(net, 4, events)
    p = loihi2("time.floor=0", "time.synop=2")
    layers = chip_layers(net, "compartments")
    act = quantized_activity(net, layers, Activity.from_result(net, result), "compartments")
    nz = (np.asarray(net["conv2"].synapses.weight) != 0)
    expected = float(act.synops["conv2"].sum())
    # every conv1 neuron spikes once per step on one compartment: conv2 receives, per output neuron, its non-zero taps
    import torch
    ref = torch.nn.functional.conv2d(torch.full((1, 2, 4, 4), 4.0), torch.from_numpy(nz.astype(np.float32)), padding=1)
    assert expected == pytest.approx(float(ref.sum()))
    report = profile_network(net, result, p)
    # conv2 is 3x4x4 x 4 compartments = 192 neurons on one core: time = its synops / T x 2 ns
    assert report["timing"]["busiest_layer"] == "conv2"
    assert report["timing"]["time_per_step_s"] == pytest.approx(expected / 4 * 2e-9)


def test_network_that_does_not_fit_names_the_layer_and_limit():
    net = three_layer_net()
    ok, reasons = fits(net, loihi2("core.synmem_words=20"))
    # conv2 reads 2 channels x 4 compartments x 9 taps = 72 kernel rows > 20 words; graded: 18 rows fit
    assert not ok and "layer conv2" in reasons[0] and "synmem words 72" in reasons[0]
    assert fits(net, loihi2("core.synmem_words=20"), "graded") == (True, [])
    ok, reasons = fits(net, loihi2("core.neuron_groups=2"))
    assert not ok and "neuron groups 4" in reasons[0]
    ok, reasons = fits(net, loihi2("chip.usable_cores_per_chip=1", "chip.max_chips=2"))
    assert not ok and "3 chips" in reasons[0] and "kapoho_point" in reasons[0]
    with pytest.raises(Exception, match="conv2"):
        profile_network(net, hand_result(net, 1, {}), loihi2("core.synmem_words=20"))


def test_more_chips_than_the_target_is_reported_not_refused():
    net = three_layer_net()
    report = profile_network(net, hand_result(net, 2, HAND_EVENTS),
                             loihi2("chip.usable_cores_per_chip=1", "chip.max_chips=1"))
    m = report["mapping"]
    assert m["chips"] == 3 and not m["fits_target"] and m["smallest_system"]["name"] == "kapoho_point"
    assert m["largest_layers"][0]["cores"] >= 1 and "binding" in m["largest_layers"][0]


def _stock_net():
    """input 2x5x12 (CUBA) -> conv 3 channels, kernel (1, 3), stride (1, 2), padding (0, 1) -> flatten -> dense 4."""
    from toolchain.ir import Conv, Cuba, Dense, Flatten, Input, StockMeta, StockNetwork, StockSynapses
    rng = np.random.default_rng(5)
    w = rng.integers(-3, 4, size=(3, 2, 1, 3)) * 40
    dense = rng.integers(-2, 3, size=(4, 3 * 5 * 6)) * 30
    cuba = Cuba(vth=40, du=4095, dv=0)
    layers = (Input(name="input0", shape=(2, 5, 12), neuron=cuba),
              Conv(name="conv1", shape=(3, 5, 6), inputs=("input0",), depth=1, neuron=cuba,
                   synapses=StockSynapses(w.astype(np.int32), np.zeros(3, np.int64)), kernel=(1, 3), stride=(1, 2),
                   padding=(0, 1)),
              Flatten(name="flatten2", shape=(90, 1, 1), inputs=("conv1",), depth=1),
              Dense(name="dense3", shape=(4, 1, 1), inputs=("flatten2",), depth=2, neuron=cuba,
                    synapses=StockSynapses(dense.astype(np.int32), np.zeros(4, np.int64))))
    return StockNetwork(layers, StockMeta(None, 8, None)), w, dense


def test_stock_report_with_non_square_kernels_and_strides():
    import torch

    from toolchain.hardware import profile_stock, to_markdown
    from toolchain.simulators.physical import simulate_cuba
    net, w, dense = _stock_net()
    bias = np.random.default_rng(6).integers(0, 30, size=(2, 5, 12))
    trace = simulate_cuba(net, bias, 12)
    report = profile_stock(net, trace, loihi2(), (4, 12))
    rows = {r["layer"]: r for r in report["layers"]}
    src = trace.spikes["input0"][3:11, 0].sum(0).astype(np.float32)        # arrives one step later
    conv_nz = torch.nn.functional.conv2d(torch.from_numpy(src)[None], torch.from_numpy((w != 0).astype(np.float32)),
                                         stride=(1, 2), padding=(0, 1))
    assert rows["conv1"]["synops_nonzero"] == pytest.approx(float(conv_nz.sum()))
    conv_all = torch.nn.functional.conv2d(torch.from_numpy(src)[None], torch.ones(3, 2, 1, 3), stride=(1, 2),
                                          padding=(0, 1))
    assert rows["conv1"]["synops"] == pytest.approx(float(conv_all.sum()))
    flat = trace.spikes["conv1"][3:11, 0].sum(0).reshape(-1)
    assert src.sum() > 20 and flat.sum() > 20                               # a network that does something
    assert rows["dense3"]["synops_nonzero"] == pytest.approx(float(((dense != 0) @ flat).sum()))
    assert rows["conv1"]["spikes"] == trace.spikes["conv1"][4:12].sum()
    # synapses between valid pixels: rows 5 x 1 tap, cols: 6 outputs x 3 taps minus the one padded tap = 17
    assert rows["conv1"]["synapses"] == 5 * 17 * 2 * 3
    assert report["mapping"]["cores"] == 3 and report["timing"]["floor_bound"]
    assert "| conv1 | conv | 3x5x6 |" in to_markdown(report)

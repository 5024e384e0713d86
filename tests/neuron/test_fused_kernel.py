"""The fused MT kernel against its definition ``mt_step`` + ``mt_output``, bit for bit (it runs
whenever the PyTorch SNN needs no gradient, so these tests guard every float figure of the front end)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from toolchain.neuron.fused import fused_mt_step, fused_step_applies
from toolchain.neuron.mt import mt_output, mt_step

THRESHOLD_SETS = [(2.0, 1.0, 0.5, 0.25), (1.0,), (0.7, 0.3, 0.05), (3.1, 1.7, 0.9, 0.41, 0.2)]


def _torch_step(v, current, thresholds, flows=None):
    v, spikes = mt_step(v, current, thresholds)
    out = mt_output(spikes, thresholds)
    counts = np.array([int(s.sum()) for s in spikes], dtype=np.int64)
    if flows is not None:
        flows = (flows[0] + current, flows[1] + out)
    return v, out, counts, flows


@pytest.mark.parametrize("thresholds", THRESHOLD_SETS)
@pytest.mark.parametrize("shape", [(2, 3, 37, 41), (1, 4, 64, 64), (5,)])   # not multiples of the block
def test_kernel_equals_mt_step_bit_for_bit(thresholds, shape):
    gen = torch.Generator().manual_seed(len(thresholds) * 1000 + len(shape))
    v_ref: torch.Tensor | float = 0.0
    v_fused: torch.Tensor | float = 0.0
    flows_ref = (torch.zeros(shape), torch.zeros(shape))
    flows_fused = (torch.zeros(shape), torch.zeros(shape))
    total = np.zeros(len(thresholds), dtype=np.int64)
    for step in range(25):
        current = torch.randn(shape, generator=gen) * (1.5 if step % 2 else 0.4)
        if step == 3:                       # exact threshold values: strict firing must not fire
            current = torch.full(shape, thresholds[-1]) - (v_ref if isinstance(v_ref, torch.Tensor) else 0.0)
        v_ref, out_ref, counts_ref, flows_ref = _torch_step(v_ref, current, thresholds, flows_ref)
        v_fused, out_fused, counts_fused = fused_mt_step(v_fused, current, thresholds, flows_fused)
        assert torch.equal(v_fused, v_ref), f"membrane differs at step {step}"
        assert torch.equal(out_fused, out_ref), f"output differs at step {step}"
        assert counts_fused.tolist() == counts_ref.tolist(), f"counts differ at step {step}"
        total += counts_fused
    assert torch.equal(flows_fused[0], flows_ref[0]) and torch.equal(flows_fused[1], flows_ref[1])
    assert total.sum() > 0


def test_kernel_special_values():
    thresholds = (2.0, 1.0, 0.5, 0.25)
    current = torch.tensor([0.0, -0.0, 0.25, 0.5, 1e-45, -1e-45, 3.4e38, -3.4e38, float("inf"), float("-inf"),
                            float("nan"), 3.75, 3.7500002])
    for start in (0.0, torch.full_like(current, 0.125)):
        v_ref, spikes = mt_step(start, current, thresholds)
        v_fused, out, counts = fused_mt_step(start if isinstance(start, float) else start.clone(), current,
                                             thresholds)
        assert torch.equal(torch.nan_to_num(v_fused, nan=7.0), torch.nan_to_num(v_ref, nan=7.0))
        assert torch.equal(out, mt_output(spikes, thresholds))
        assert counts.tolist() == [int(s.sum()) for s in spikes]


def test_kernel_updates_the_membrane_in_place():
    v = torch.zeros(4)
    v_new, _, _ = fused_mt_step(v, torch.full((4,), 0.6), (0.5,))
    assert v_new.data_ptr() == v.data_ptr() and torch.allclose(v, torch.full((4,), 0.1))


@pytest.mark.parametrize("case, applies", [
    ("float32", True), ("float64", False), ("requires_grad", False), ("other_shape", False), ("int", False)])
def test_when_the_kernel_applies(case, applies):
    current = {"float32": torch.ones(2, 3), "float64": torch.ones(2, 3, dtype=torch.float64),
               "requires_grad": torch.ones(2, 3, requires_grad=True), "other_shape": torch.ones(2, 3),
               "int": torch.ones(2, 3, dtype=torch.int64)}[case]
    v = torch.zeros(3, 3) if case == "other_shape" else 0.0
    assert fused_step_applies(v, current) is applies
    with torch.no_grad():                 # without autograd a requires_grad input is fine
        assert fused_step_applies(0.0, torch.ones(2, 3, requires_grad=True))


def test_kernel_writes_into_a_given_output_tensor():
    out = torch.full((4,), 9.0)
    _, written, _ = fused_mt_step(0.0, torch.full((4,), 0.6), (0.5,), out=out)
    assert written is out and out.tolist() == [0.5] * 4
    _, fresh, _ = fused_mt_step(0.0, torch.full((3,), 0.6), (0.5,), out=out)    # wrong shape: a new tensor
    assert fresh is not out and fresh.tolist() == [0.5] * 3


@pytest.mark.parametrize("graded", [False, True])
@pytest.mark.parametrize("thresholds", [(512, 256, 128, 64), (64,), (192, 128, 64)])
def test_integer_kernel_equals_mt_step(thresholds, graded):
    """``mt_step_int`` (the Lava MT model's kernel) against ``mt_step`` on int64: membranes, spikes in both
    message layouts, packed spikes, counts and clip events, with exact-threshold and clipping currents."""
    from toolchain.neuron.fused import mt_step_int

    rng = np.random.default_rng(len(thresholds))
    n, limit = len(thresholds), 3000
    ratios = tuple(t // thresholds[-1] for t in thresholds)
    v_ref = np.zeros(50, np.int64)
    v = v_ref.copy()
    total_clipped = 0
    for step in range(20):
        current = rng.integers(-2500, 4000, size=50)
        if step == 2:
            current = thresholds[-1] - v_ref                 # V = theta_N exactly: strict firing, no spike
        clipped_ref = int(np.count_nonzero(np.abs(v_ref + current) > limit))
        v_ref, spikes = mt_step(v_ref, current, thresholds, v_limit=limit)
        out = np.zeros(50 if graded else 50 * n, np.int8)
        packed, counts = np.zeros(50, np.int32), np.zeros(n, np.int64)
        clipped = mt_step_int(v, current.astype(np.int64), np.asarray(thresholds, np.int64),
                              np.asarray(ratios, np.int64), limit, graded, out, packed, counts)
        np.testing.assert_array_equal(v, v_ref)
        assert clipped == clipped_ref and counts.tolist() == [int(s.sum()) for s in spikes]
        total_clipped += clipped
        expected = mt_output(spikes, ratios) if graded else np.stack(spikes, axis=-1).reshape(-1)
        np.testing.assert_array_equal(out, expected)
        np.testing.assert_array_equal(packed, sum(s.astype(np.int32) << i for i, s in enumerate(spikes)))
    assert total_clipped > 0, "the currents never clipped the membrane"

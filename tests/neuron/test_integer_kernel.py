"""Issue 17: the fused integer MT kernel (toolchain/neuron/integer.py) against mt_step + mt_output,
bit for bit: membranes, payloads, per-image counts and saturations, spike maps and count / message maps."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from toolchain.neuron.integer import int_mt_step
from toolchain.neuron.mt import mt_output, mt_step

V_LIMIT = 2 ** 23 - 1


@pytest.mark.parametrize("record", ["none", "counts", "spikes"])
@pytest.mark.parametrize("thresholds", [(4096,), (8 * 4096, 4 * 4096, 2 * 4096, 4096), (3 * 64, 64)])
def test_integer_kernel_equals_mt_step(record, thresholds):
    rng = np.random.default_rng(len(thresholds))
    ratios = tuple(t // thresholds[-1] for t in thresholds)
    shape, k = (3, 2, 5, 7), len(thresholds)
    v_ref = torch.zeros(shape, dtype=torch.int64)
    v = torch.zeros(shape, dtype=torch.int64)
    payload = torch.full(shape, -1.0)
    counts, sats = np.zeros((k, 3), np.int64), np.zeros(3, np.int64)
    count_maps, message_map = np.zeros((k, v.numel()), np.int64), np.zeros(v.numel(), np.int64)
    spikes = np.zeros((k, v.numel()), np.uint8)
    want_counts, want_sats = np.zeros((k, 3), np.int64), np.zeros(3, np.int64)
    want_maps, want_messages = np.zeros((k, *shape), np.int64), np.zeros(shape, np.int64)
    for step in range(6):
        scale = 3 * thresholds[0] if step < 4 else V_LIMIT      # late steps saturate both ways
        current = torch.from_numpy(rng.integers(-scale, 2 * scale, shape))
        current[0, 0, 0, :3] = torch.tensor([thresholds[-1], 0, -1]) - v_ref[0, 0, 0, :3]   # V = theta: no spike
        want_sats += ((v_ref + current).abs() > V_LIMIT).reshape(3, -1).sum(1).numpy()
        v_ref, s = mt_step(v_ref, current, thresholds, v_limit=V_LIMIT)
        q = mt_output(s, ratios)
        stacked = torch.stack(s).numpy()
        want_counts += stacked.reshape(k, 3, -1).sum(2)
        want_maps += stacked
        want_messages += stacked.any(axis=0)
        int_mt_step(v, current.contiguous(), thresholds, ratios, V_LIMIT, payload, counts, sats, record,
                    count_maps, message_map, spikes)
        assert torch.equal(v, v_ref) and torch.equal(payload, q.to(torch.float32)), step
        np.testing.assert_array_equal(counts, want_counts)
        np.testing.assert_array_equal(sats, want_sats)
        if record == "spikes":
            np.testing.assert_array_equal(spikes.reshape(k, *shape), stacked)
    assert want_sats.sum() > 0 and want_counts.min() > 0
    if record == "counts":
        np.testing.assert_array_equal(count_maps.reshape(k, *shape), want_maps)
        np.testing.assert_array_equal(message_map.reshape(shape), want_messages)
    else:
        assert not count_maps.any() and not message_map.any()

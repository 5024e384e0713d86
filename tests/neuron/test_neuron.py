"""The multi-threshold (MT) neuron: golden trajectories of ``mt_step`` written out by hand, and threshold
validation (the PyTorch cell built on it: tests/frontend/test_cells.py).

Thresholds are (2, 1, 0.5, 0.25) on ONE shared membrane, fired in order, strict ``V > theta``,
reset by subtraction; the value seen downstream is sum_i theta_i * s_i.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from toolchain.errors import ConfigError
from toolchain.neuron.fused import fused_mt_step
from toolchain.neuron.mt import default_thresholds, heaviside, mt_output, mt_step, validate_thresholds
from toolchain.neuron.surrogate import surrogate_heaviside

THETAS = (2.0, 1.0, 0.5, 0.25)
SCALE = 16384                      # integer membrane units: theta 0.25 -> 4096, theta 2 -> 32768
INT_THETAS = (32768, 16384, 8192, 4096)

# Golden trajectories: (input per step, [(V after the step, (s_2, s_1, s_0.5, s_0.25)), ...]).
#
# Constant 1.0 (an exact multiple fires one level lower, because firing is strict):
#   t1: V = 0 + 1 = 1.00; 1>2 no; 1>1 no; 1>0.5 yes -> 0.50; 0.5>0.25 yes -> 0.25   out 0.75
#   t2: V = 0.25 + 1 = 1.25; >2 no; >1 yes -> 0.25; 0.25>0.5 no; 0.25>0.25 no       out 1.00
#   t3: same as t2 -> V 0.25, out 1.00;   t4: same -> V 0.25, out 1.00
#   total out 3.75 = 4 - 0.25 (kept); counts per threshold (0, 3, 1, 1)
ONE = (1.0, [(0.25, (0, 0, 1, 1)), (0.25, (0, 1, 0, 0)), (0.25, (0, 1, 0, 0)), (0.25, (0, 1, 0, 0))])
# Constant 0.3:
#   t1: V 0.30 -> only 0.25 fires -> 0.05      t2: V 0.35 -> 0.25 fires -> 0.10
#   t3: V 0.40 -> 0.25 fires -> 0.15           t4: V 0.45 -> 0.25 fires -> 0.20
#   t5: V 0.50 -> 0.5 does NOT fire (strict), 0.25 fires -> 0.25
#   t6: V 0.55 -> 0.5 fires -> 0.05, 0.05 > 0.25 no
#   total out 5*0.25 + 0.5 = 1.75 = 1.8 - 0.05; counts (0, 0, 1, 5)
POINT3 = (0.3, [(0.05, (0, 0, 0, 1)), (0.10, (0, 0, 0, 1)), (0.15, (0, 0, 0, 1)), (0.20, (0, 0, 0, 1)),
                (0.25, (0, 0, 0, 1)), (0.05, (0, 0, 1, 0))])
# Saturation, 5.0 per step: every threshold fires every step (out 3.75 = the maximum) and the
# remaining 1.25 piles up:  t1: 5 -> 3 -> 2 -> 1.5 -> 1.25;  t2: 6.25 -> 2.5;  t3: 7.5 -> 3.75;  t4: 8.75 -> 5.0
SATURATE = (5.0, [(1.25, (1, 1, 1, 1)), (2.5, (1, 1, 1, 1)), (3.75, (1, 1, 1, 1)), (5.0, (1, 1, 1, 1))])
# Negative input -0.5: no floor, no spikes: V = -0.5, -1.0, -1.5, -2.0
NEGATIVE = (-0.5, [(-0.5, (0, 0, 0, 0)), (-1.0, (0, 0, 0, 0)), (-1.5, (0, 0, 0, 0)), (-2.0, (0, 0, 0, 0))])

GOLDEN = {"one": ONE, "point3": POINT3, "saturate": SATURATE, "negative": NEGATIVE}
# float32 cannot hold 0.3: it is 0.300000012, so after 5 steps V = 0.50000006 > 0.5 and the 0.5
# threshold fires one step early (t5: V -> ~6e-8, s = (0,0,1,0); t6: V ~0.3 -> 0.25 fires -> ~0.05).
# Same total output (1.75), same final membrane: a rounding effect at an exact boundary, not a bug.
POINT3_F32 = (0.3, POINT3[1][:4] + [(0.0, (0, 0, 1, 0)), (0.05, (0, 0, 0, 1))])


def _trajectory(current, thresholds, steps, v_limit=None):
    v, rows = 0, []
    for _ in range(steps):
        v, spikes = mt_step(v, current, thresholds, v_limit=v_limit)
        rows.append((v, spikes))
    return rows


def _as_float(x):
    return float(np.asarray(x.detach() if isinstance(x, torch.Tensor) else x).reshape(-1)[0])


@pytest.mark.parametrize("case", sorted(GOLDEN))
@pytest.mark.parametrize("backend", ["python", "numpy64", "numpy32", "torch64", "torch32"])
def test_golden_float(case, backend):
    value, expected = POINT3_F32 if case == "point3" and backend.endswith("32") else GOLDEN[case]
    current = {"python": value,
               "numpy64": np.full(3, value, np.float64),
               "numpy32": np.full(3, value, np.float32),
               "torch64": torch.full((3,), value, dtype=torch.float64),
               "torch32": torch.full((3,), value, dtype=torch.float32)}[backend]
    rows = _trajectory(current, THETAS, len(expected))
    total_out = 0.0
    for t, ((v, spikes), (v_exp, s_exp)) in enumerate(zip(rows, expected)):
        assert _as_float(v) == pytest.approx(v_exp, abs=1e-6), f"step {t + 1}"
        got = tuple(int(_as_float(s)) for s in spikes)
        assert got == s_exp, f"step {t + 1}"
        if backend != "python":
            assert all(np.asarray(s).shape == (3,) for s in spikes)
        total_out += _as_float(mt_output(spikes, THETAS))
    hand_total = sum(sum(th * s for th, s in zip(THETAS, s_exp)) for _, s_exp in expected)
    assert total_out == pytest.approx(hand_total, abs=1e-6)
    # conservation: everything that came in either went out or is still on the membrane
    assert total_out + expected[-1][0] == pytest.approx(value * len(expected), abs=1e-6)


@pytest.mark.parametrize("case", sorted(GOLDEN))
def test_golden_fused_kernel(case):
    """The fused float32 kernel (what the PyTorch SNN runs at inference) on the same golden tables."""
    value, expected = POINT3_F32 if case == "point3" else GOLDEN[case]
    current = torch.full((3,), value, dtype=torch.float32)
    v: torch.Tensor | float = 0.0
    for t, (v_exp, s_exp) in enumerate(expected):
        v, out, counts = fused_mt_step(v, current, THETAS)
        assert _as_float(v) == pytest.approx(v_exp, abs=1e-6), f"step {t + 1}"
        assert tuple(counts.tolist()) == tuple(3 * s for s in s_exp), f"step {t + 1}"
        assert torch.equal(out, torch.full((3,), sum(th * s for th, s in zip(THETAS, s_exp)))), f"step {t + 1}"


def test_hand_totals_and_counts():
    per_step_out = [sum(th * s for th, s in zip(THETAS, s_exp)) for _, s_exp in ONE[1]]
    assert per_step_out == [0.75, 1.0, 1.0, 1.0]
    rows = _trajectory(np.full(2, 0.3), THETAS, 6)
    counts = [int(sum(np.asarray(r[1][i]).sum() for r in rows)) for i in range(4)]
    assert counts == [0, 0, 2, 10]        # 2 neurons x (0, 0, 1, 5)
    rows = _trajectory(np.full(2, 5.0), THETAS, 4)
    assert all(float(mt_output(s, THETAS).max()) == 3.75 for _, s in rows)


@pytest.mark.parametrize("case", sorted(GOLDEN))
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_golden_integer_units(case, backend):
    """Same trajectories in integer membrane units (x 16384), thresholds (32768, 16384, 8192, 4096)."""
    value, expected = GOLDEN[case]
    # 0.3 is not representable: 0.3 * 16384 = 4915.2 -> 4915, which keeps the same spike pattern:
    # 4915 -> 819, 5734 -> 1638, 6553 -> 2457, 7372 -> 3276, 8191 (not > 8192) -> 4095, 9010 -> 818
    int_value = round(value * SCALE)
    int_v = {"point3": [819, 1638, 2457, 3276, 4095, 818]}.get(case, [round(v * SCALE) for v, _ in expected])
    current = (np.full(2, int_value, np.int64) if backend == "numpy"
               else torch.full((2,), int_value, dtype=torch.int64))
    rows = _trajectory(current, INT_THETAS, len(expected))
    for t, ((v, spikes), v_exp, (_, s_exp)) in enumerate(zip(rows, int_v, expected)):
        v_arr = np.asarray(v)
        assert np.issubdtype(v_arr.dtype, np.integer), "integer membrane must stay integer"
        assert v_arr.tolist() == [v_exp, v_exp], f"step {t + 1}"
        assert tuple(int(np.asarray(s)[0]) for s in spikes) == s_exp, f"step {t + 1}"
    # output in spike units of the smallest threshold: weights theta_i / theta_N = 8, 4, 2, 1
    first = mt_output(rows[0][1], (8, 4, 2, 1))
    assert np.asarray(first).tolist() == [sum(w * s for w, s in zip((8, 4, 2, 1), expected[0][1]))] * 2


def test_v_limit_clips_before_firing():
    # 5.0 per step with |V| <= 4: t1 V=5 -> clipped 4 -> all fire (2+1+0.5+0.25) -> 0.25;
    # t2: 0.25 + 5 -> clipped to 4 again -> 0.25. No pile-up (without the limit: 1.25, 2.5, 3.75).
    rows = _trajectory(np.array([5.0]), THETAS, 3, v_limit=4.0)
    assert [float(v[0]) for v, _ in rows] == [0.25, 0.25, 0.25]
    assert all(tuple(int(s[0]) for s in spikes) == (1, 1, 1, 1) for _, spikes in rows)
    # negative side: -3 per step -> -3, then -6 clipped to -4, stays at -4
    rows = _trajectory(torch.tensor([-3.0]), THETAS, 3, v_limit=4.0)
    assert [float(v[0]) for v, _ in rows] == [-3.0, -4.0, -4.0]
    # the limit does not touch values inside it
    rows = _trajectory(np.array([1.0]), THETAS, 4, v_limit=4.0)
    assert [float(v[0]) for v, _ in rows] == [0.25] * 4


@settings(max_examples=60, deadline=None, database=None)
@given(st.lists(st.floats(-4.0, 8.0, allow_nan=False), min_size=1, max_size=20))
def test_conservation_and_bounded_output(inputs):
    """sum(I) = sum(out) + V_final, every output is in [0, 3.75], and V never exceeds 0.25 unless
    the input saturates the cascade (V > 3.75 + 0.25 before firing)."""
    v, total = np.zeros(1), 0.0
    for current in inputs:
        before = float(v[0]) + current
        v, spikes = mt_step(v, np.array([current]), THETAS)
        out = float(mt_output(spikes, THETAS)[0])
        assert 0.0 <= out <= 3.75
        if before <= 4.0:
            assert float(v[0]) <= 0.25 + 1e-12
        total += out
    assert total + float(v[0]) == pytest.approx(sum(inputs), abs=1e-9)


def test_heaviside_and_surrogate():
    x = torch.tensor([-1.5, -0.5, 0.0, 0.25, 2.0], requires_grad=True)
    assert heaviside(x.detach()).tolist() == [False, False, False, True, True]
    y = surrogate_heaviside(x)
    assert y.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]
    y.sum().backward()
    assert x.grad.tolist() == pytest.approx([0.0, 0.5, 1.0, 0.75, 0.0])


def test_default_thresholds():
    assert default_thresholds(4) == (2.0, 1.0, 0.5, 0.25)
    assert default_thresholds(1) == (2.0,)
    assert default_thresholds(5) == (2.0, 1.0, 0.5, 0.25, 0.125)
    assert default_thresholds(3, top=1.0) == (1.0, 0.5, 0.25)
    with pytest.raises(ConfigError):
        default_thresholds(0)


@pytest.mark.parametrize("bad", [(1.0, 2.0), (1.0, 1.0), (2.0, 1.0, 1.0), (1.0, 0.0), (0.0,),
                                 (1.0, -0.5), (-1.0,), (), (float("inf"), 1.0), (float("nan"),)])
def test_validate_thresholds_rejects(bad):
    with pytest.raises(ConfigError):
        validate_thresholds(bad)


def test_validate_thresholds_accepts():
    out = validate_thresholds([4, 2, 1])
    assert out == (4.0, 2.0, 1.0) and all(type(t) is float for t in out)
    assert validate_thresholds(iter([0.3])) == (0.3,)

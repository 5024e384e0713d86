"""The environment works: torch is the pinned CPU build and Lava (patched by
scripts/patch_lava.py for Python 3.11) imports and runs bit-accurately.

Lava's fixed_pt LIF, read from the installed lava/proc/lif/models.py (lava-nc 0.10.0,
AbstractPyLifModelFixed + PyLifModelBitAcc), one time step, in this order:

    a_in   = sum of all connected inputs (int32, NOT saturated to 16 bits in the simulator)
    # current: effective decay is du + 1 (ds_offset = 1), so du=4095 means "no memory"
    u      = trunc0(u * (4096 - (du + 1)) / 4096)     # int64 product, |x| >> 12, sign kept
    u      = u + (a_in << 6)                          # synaptic input MSB-aligned by 6 bits
    u      = u - 2**24 if u > 2**23 else (u + 2**24 if u <= -2**23 else u)   # wrap once
    # voltage: effective decay is dv (dm_offset = 0)
    v      = trunc0(v * (4096 - dv) / 4096)
    v      = v + u + (bias_mant << bias_exp)          # bias is NOT shifted by 6
    v      = clip(v, -(2**23 - 1), 2**23 - 1)         # saturate (u wraps, v saturates)
    spike  = v > (vth << 6)                           # strictly greater
    v[spike] = 0                                      # u is not reset; no refractory period

trunc0 rounds toward zero (sign(x) * (|x| >> 12)), not toward -inf.

Dense (PyDenseModelBitAcc): at step t it first sends the a_buff computed at step t-1, then
computes a_buff = (W[:, s_in].sum()) << weight_exp (>> -weight_exp if negative). Before the
first step W is clipped to 8 bits and, with the default num_weight_bits=8, the LSB of
MIXED-sign weight matrices is dropped: W = (W >> 1) << 1 (so 7 -> 6, -3 -> -4).
RingBuffer (fixed_pt) sends data[:, t-1] at step t (t starts at 1). So a spike in input
column k reaches LIF's a_in at step k + 2.
"""
from __future__ import annotations

import numpy as np
import pytest


def _trunc_shift12(x: int) -> int:
    """sign(x) * (|x| >> 12): division by 4096 rounding toward zero."""
    return -((-x) >> 12) if x < 0 else x >> 12


def lif_fixed_pt_reference(a_in, du, dv, bias_mant, bias_exp, vth):
    """Plain-integer model of Lava's fixed_pt LIF for one neuron.

    a_in: sequence of a_in values, one per time step. Returns lists (u, v, spikes) of the
    values after each step, as Lava reports them (v after reset).
    """
    u = v = 0
    us, vs, ss = [], [], []
    bias = bias_mant << bias_exp if bias_exp >= 0 else bias_mant >> -bias_exp
    for a in a_in:
        u = _trunc_shift12(u * (4096 - (du + 1))) + (int(a) << 6)
        if u > 2**23:
            u -= 2**24
        elif u <= -(2**23):
            u += 2**24
        v = _trunc_shift12(v * (4096 - dv)) + u + bias
        v = min(max(v, -(2**23 - 1)), 2**23 - 1)
        s = v > (vth << 6)
        if s:
            v = 0
        us.append(u)
        vs.append(v)
        ss.append(int(s))
    return us, vs, ss


def test_reference_model_by_hand():
    # bias only: 3 << 4 = 48 per step, dv = 1024 keeps 3/4 of v, vth = 2 -> 128.
    # v: 48; 36+48 = 84; 63+48 = 111; 83.25->83, +48 = 131 > 128 -> spike, v = 0; 48
    _, v, s = lif_fixed_pt_reference([0] * 5, du=0, dv=1024, bias_mant=3, bias_exp=4, vth=2)
    assert v == [48, 84, 111, 0, 48]
    assert s == [0, 0, 0, 1, 0]
    # rounding toward zero on negative values: -100 * 4095 / 4096 = -99.97 -> -99
    u, _, _ = lif_fixed_pt_reference([-2, 0], du=0, dv=0, bias_mant=0, bias_exp=0, vth=1000)
    assert u == [-128, -127]  # -128 * 4095 / 4096 = -127.97 -> -127 (not -128)


def test_torch_is_the_pinned_cpu_build():
    import torch

    assert torch.__version__.startswith("2.13"), torch.__version__
    assert not torch.cuda.is_available() or torch.version.cuda is not None


def test_netx_importable():
    from lava.lib.dl import netx
    from lava.lib.dl.netx.hdf5 import Network

    assert netx.hdf5.Network is Network
    assert isinstance(Network, type)


@pytest.mark.lava
@pytest.mark.timeout(180)
def test_lava_lif_dense_fixed_pt_matches_hand_model(lava_cleanup):
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIF

    n_steps = 14
    # Two binary input lines over time (column t-1 is sent at step t).
    spikes_in = np.zeros((2, n_steps), dtype=np.int32)
    spikes_in[0, [0, 1, 2, 5, 6, 9]] = 1
    spikes_in[1, [1, 3, 4, 6, 10, 11]] = 1
    # Mixed-sign weights with odd entries: Lava drops their LSB (see module docstring).
    weights = np.array([[40, -20], [7, 9], [-3, 60]], dtype=np.int32)
    weights_eff = (weights >> 1) << 1
    du, dv = 1024, 512
    bias_mant = np.array([2, -1, 5])
    bias_exp = np.array([6, 3, 0])
    vth = 100

    src = RingBuffer(data=spikes_in)
    dense = Dense(weights=weights)
    lif = LIF(shape=(3,), du=du, dv=dv, bias_mant=bias_mant, bias_exp=bias_exp, vth=vth)
    src.s_out.connect(dense.s_in)
    dense.a_out.connect(lif.a_in)
    lava_cleanup(lif)

    got_u, got_v = [], []
    try:
        cfg = Loihi2SimCfg(select_tag="fixed_pt")
        for _ in range(n_steps):
            lif.run(condition=RunSteps(num_steps=1), run_cfg=cfg)
            # Var.get() returns float64 even for fixed_pt models; the values are integers.
            got_u.append(lif.u.get())
            got_v.append(lif.v.get())
    finally:
        lif.stop()
    got_u, got_v = np.array(got_u).T, np.array(got_v).T
    assert np.array_equal(got_u, np.round(got_u)) and np.array_equal(got_v, np.round(got_v))

    # a_in at step t (1-based) = W_eff @ spikes_in[:, t-2] (one step of Dense latency).
    a_in = np.zeros((3, n_steps), dtype=np.int64)
    a_in[:, 1:] = weights_eff @ spikes_in[:, :-1]
    spikes_out = []
    for i in range(3):
        u, v, s = lif_fixed_pt_reference(
            a_in[i], du, dv, int(bias_mant[i]), int(bias_exp[i]), vth
        )
        np.testing.assert_array_equal(got_u[i], u, err_msg=f"u of neuron {i}")
        np.testing.assert_array_equal(got_v[i], v, err_msg=f"v of neuron {i}")
        spikes_out.append(s)
    # The case is not trivial: every neuron spikes, none on every step.
    counts = np.sum(spikes_out, axis=1)
    assert np.all(counts > 0) and np.all(counts < n_steps // 2), spikes_out

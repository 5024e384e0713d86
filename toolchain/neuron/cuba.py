"""Lava's fixed-point LIF neuron (CUBA), the neuron of stock lava-dl netx files."""
from __future__ import annotations

from typing import Any

CUBA_DECAY_UNIT = 4096     # 12-bit decays: 4096 = full
CUBA_STATE_WRAP = 1 << 24  # u wraps in 24 bits
CUBA_V_LIMIT = (1 << 23) - 1


def _trunc_shift12(x: Any) -> Any:
    """sign(x) * (|x| >> 12): a division by 4096 rounding toward zero (numpy or torch integers)."""
    q = abs(x) >> 12
    return q - 2 * q * (x < 0)


def cuba_step(u: Any, v: Any, a_in: Any, du: int, dv: int, bias: Any, vth: int) -> tuple[Any, Any, Any]:
    """One step of Lava's fixed-point LIF (``PyLifModelBitAcc``, lava-nc 0.10.0) on int64 arrays.

    The single source of the CUBA maths (reference simulator and tests)::

        u = trunc0(u * (4096 - (du + 1)) / 4096) + (a_in << 6);  u wraps to 24-bit signed
        v = trunc0(v * (4096 - dv) / 4096) + u + bias;           v saturates at +-(2**23 - 1)
        s = v > (vth << 6);  v[s] = 0                             (reset to zero; u is kept)

    ``bias`` is the integer bias_mant << bias_exp. Returns (u, v, s) with s boolean.
    """
    u = _trunc_shift12(u * (CUBA_DECAY_UNIT - (du + 1))) + (a_in << 6)
    u = u - CUBA_STATE_WRAP * (u > (1 << 23)) + CUBA_STATE_WRAP * (u <= -(1 << 23))
    v = _trunc_shift12(v * (CUBA_DECAY_UNIT - dv)) + u + bias
    v = v.clip(-CUBA_V_LIMIT, CUBA_V_LIMIT)
    s = v > (vth << 6)
    v = v - v * s
    return u, v, s

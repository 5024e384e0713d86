"""Loihi 2's fixed-point formats: the ranges every value of a quantized network must lie in.

Membrane and current state 24-bit signed; thresholds a 17-bit mantissa shifted left by 6; bias a
13-bit signed mantissa times 2**e, e in 0..7; synaptic weights a signed mantissa of up to 8 bits
times 2**e with one exponent per synapse group. Sources: Intel's Loihi 2 technology brief and the
bit-accurate models of lava-nc 0.10.0 (``lava/proc/lif/models.py``, ``lava/proc/dense/models.py``).
"""
from __future__ import annotations

STATE_BITS = 24
V_LIMIT = 2 ** (STATE_BITS - 1) - 1          # membranes saturate at +-(2**23 - 1)
THRESHOLD_SHIFT = 6
THRESHOLD_MANT_BITS = 17
BIAS_MANT_BITS = 13
BIAS_EXP_MAX = 7
WEIGHT_EXP_MAX = 7
HOST_EXP_MIN = -8                             # the static layer runs on the host: it may shift right
IMAGE_LEVELS = 255                            # one pixel level is 1/255 (an 8-bit image uses 0..255)
INPUT_LEVEL_MIN, INPUT_LEVEL_MAX = -512, 511  # host-side input levels are 10-bit signed: x in [-2, 2)

"""Integer helpers of the fast Lava models (:mod:`.fast`), on Lava's weight layouts; numpy only, no Lava.

``wrap`` and ``shift`` are Lava's fixed-point arithmetic (``signed_clamp``, ``weight_exp`` shifts),
``pow2_factor`` and ``compartment_fold`` exact rewrites of a Conv's weights that make it cheaper to
compute (tested: the fast models that use them equal Lava's own).
"""
from __future__ import annotations

import numpy as np


def wrap(x: np.ndarray, bits: int) -> np.ndarray:
    """x modulo 2**bits into [-2**(bits-1), 2**(bits-1)) (Lava's ``signed_clamp``)."""
    base = 1 << bits
    return (x + base // 2) % base - base // 2


def shift(a: np.ndarray, exp: int) -> np.ndarray:
    """a * 2**exp as Lava's Sparse models apply weight_exp: left shift, or floor right shift."""
    return np.left_shift(a, exp) if exp > 0 else np.right_shift(a, -exp)


def pow2_factor(w: np.ndarray) -> int:
    """The largest k with every weight a multiple of 2**k (0 for all-zero weights)."""
    nz = np.abs(w[w != 0])
    return int(np.min(nz & -nz)).bit_length() - 1 if nz.size else 0


def compartment_fold(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(factors f, base b) with weight[..., c N + i] = b[..., c] f[i] for the largest N >= 2 for which
    the (C_out, kx, ky, C_in) weights factor so (integers, gcd(f) = 1), or None.

    A compartments-lowered input is such a weight (:func:`~.layout.interleave`: compartment i of
    channel c is worth r_i); then conv(s, weight) = conv(sum_i f_i s[..., c N + i], b) exactly (a sum
    is linear), with N times fewer input channels to convolve.
    """
    w = np.asarray(weight, np.int64)
    z = w.shape[-1]
    rows_all = w.reshape(-1, z)
    probe = rows_all[np.any(rows_all != 0, axis=1)][:4]   # a few non-zero taps rule most N out quickly
    if not len(probe):
        return None
    for n in range(z, 1, -1):
        if z % n:
            continue
        fold = _factor(probe.reshape(-1, n))
        if fold is None:
            continue
        fold = _factor(rows_all.reshape(-1, n))
        if fold is not None:
            f, base = fold
            return f, base.reshape(w.shape[:-1] + (z // n,))
    return None


def _factor(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(f, b) with rows = b[:, None] f[None, :] (integers, gcd(f) = 1, first non-zero f positive), or None."""
    nonzero = rows[np.any(rows != 0, axis=1)]
    if not len(nonzero):
        return None
    first = nonzero[0]
    f = first // np.gcd.reduce(np.abs(first))
    f = -f if f[np.flatnonzero(f)[0]] < 0 else f
    j = int(np.argmax(np.abs(f)))
    base = rows[:, j] // f[j]
    return (f, base) if np.array_equal(base[:, None] * f[None, :], rows) else None

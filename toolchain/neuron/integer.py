"""Fused CPU kernel of one integer MT step, for the reference simulator.

It computes what :func:`toolchain.neuron.mt_step` (with ``v_limit``) followed by
:func:`toolchain.neuron.mt_output` compute on int64 membranes (``mt_step`` stays the definition;
tests compare the two bit for bit), in cache-sized blocks of branch-free loops instead of ~5
full-tensor passes per threshold, per neuron j of image b::

    U = V + I;  sat_b += [|U| > V_lim];  V <- clip(U, -V_lim, V_lim)
    for i = 1..N:  s_i = [V > theta_i];  V <- V - theta_i * s_i;  q <- q + r_i * s_i
    count_{i,b} += s_i;  (counts) C_i[j] += s_i, M[j] += [any s_i];  (spikes) S_i[j] = s_i

``V > theta`` is ``H(V - theta)`` on integers. The payload q = sum_i r_i s_i is written as float32,
exact while sum_i r_i <= 2**24, ready for the next layer's float32 convolutions. The per-neuron maps
C and M accumulate over the steps in memory independent of T. Runs under numba (cached on disk).
"""
from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np
import torch

_BLOCK = 2048   # elements per block: V, I and q of one block stay in L1 across the N threshold passes


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _block(v: np.ndarray, current: np.ndarray, thresholds: np.ndarray, ratios: np.ndarray, v_limit: int,
           payload: np.ndarray, fired: np.ndarray, count_maps: np.ndarray, message_map: np.ndarray,
           spikes: np.ndarray, lo: int, mode: int) -> int:
    """One block: slices of one image, elements [lo, lo + len(v)) of the full (N_thr, size) maps; returns
    the saturation count, adds spikes per threshold to ``fired``. Every loop is branch-free over
    contiguous slices from 0 (no negative-index wraparound), so that the compiler vectorizes it."""
    n = v.shape[0]
    clipped = 0
    for j in range(v.shape[0]):
        x = v[j] + current[j]
        clipped += (x > v_limit) + (x < -v_limit)
        v[j] = min(max(x, -v_limit), v_limit)
        payload[j] = 0
    for i in range(thresholds.shape[0]):
        theta, r, total = thresholds[i], ratios[i], 0
        if mode == 1:
            counted = count_maps[i][lo:lo + n]
            for j in range(v.shape[0]):
                s = v[j] > theta
                v[j] -= theta * s
                payload[j] += r * s
                counted[j] += s
                total += s
        elif mode == 2:
            spiked = spikes[i][lo:lo + n]
            for j in range(v.shape[0]):
                s = v[j] > theta
                v[j] -= theta * s
                payload[j] += r * s
                spiked[j] = s
                total += s
        else:
            for j in range(v.shape[0]):
                s = v[j] > theta
                v[j] -= theta * s
                payload[j] += r * s
                total += s
        fired[i] += total
    if mode == 1:
        messages = message_map[lo:lo + n]
        for j in range(n):
            messages[j] += payload[j] > 0
    return clipped


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _int_mt_kernel(v: np.ndarray, current: np.ndarray, thresholds: np.ndarray, ratios: np.ndarray, v_limit: int,
                   per_image: int, payload: np.ndarray, counts: np.ndarray, saturations: np.ndarray,
                   count_maps: np.ndarray, message_map: np.ndarray, spikes: np.ndarray, mode: int) -> None:
    fired = np.zeros(thresholds.shape[0], np.int64)
    for b in range(v.shape[0] // per_image):
        fired[:] = 0
        stop = (b + 1) * per_image
        for lo in range(b * per_image, stop, _BLOCK):
            hi = min(lo + _BLOCK, stop)
            saturations[b] += _block(v[lo:hi], current[lo:hi], thresholds, ratios, v_limit, payload[lo:hi], fired,
                                     count_maps, message_map, spikes, lo, mode)
        counts[:, b] += fired


MODES = {"none": 0, "counts": 1, "spikes": 2}


def int_mt_step(v: torch.Tensor, current: torch.Tensor, thresholds: Sequence[int], ratios: Sequence[int],
                v_limit: int, payload: torch.Tensor, counts: np.ndarray, saturations: np.ndarray,
                record: str = "none", count_maps: np.ndarray | None = None, message_map: np.ndarray | None = None,
                spikes: np.ndarray | None = None) -> None:
    """One integer MT step in place (see the module docstring) on contiguous CPU tensors of one shape
    (N, ...): ``v`` int64 membranes, ``current`` int64, ``payload`` float32 (written). ``counts``
    (N_thr, N) and ``saturations`` (N,) int64 are added to; ``record``: "counts" adds to
    ``count_maps`` (N_thr, v.numel()) and ``message_map`` (v.numel(),) int64, "spikes" writes
    ``spikes`` (N_thr, v.numel()) uint8."""
    assert v.dtype == current.dtype == torch.int64 and payload.dtype == torch.float32
    assert v.shape == current.shape == payload.shape and v.is_contiguous() and current.is_contiguous()
    n = v.numel()
    empty2, empty1 = np.zeros((0, 0), np.int64), np.zeros(0, np.int64)
    mode = MODES[record]
    _int_mt_kernel(v.view(-1).numpy(), current.view(-1).numpy(), np.asarray(thresholds, np.int64),
                   np.asarray(ratios, np.int64), int(v_limit), max(1, n // max(1, v.shape[0])),
                   payload.view(-1).numpy(), counts, saturations,
                   count_maps if mode == 1 and count_maps is not None else empty2,
                   message_map if mode == 1 and message_map is not None else empty1,
                   spikes if mode == 2 and spikes is not None else np.zeros((0, 0), np.uint8), mode)

"""Fused CPU kernel of one MT step, for the float32 PyTorch SNN when no gradient is needed.

It computes exactly what :func:`toolchain.neuron.mt_step` followed by
:func:`toolchain.neuron.mt_output` compute (``mt_step`` stays the definition; tests compare the two
bit for bit), but in one cache-blocked pass instead of ~5 full-tensor passes per threshold::

    V <- V + I
    for i = 1..N:  s_i = [V > theta_i];  V <- V - theta_i * s_i;  o <- o + theta_i * s_i
    count_i += sum(s_i)

``V > theta`` equals ``H(V - theta)`` in IEEE arithmetic with gradual underflow (a - b > 0 iff a > b),
and ``theta * s`` with s in {0, 1} is exact, so every operation rounds as in the torch version (whose
Python-float thresholds, too, act as float32 on float32 tensors).
Optionally the spiking flows I_in += I and I_out += o (paper eqs. 9-10) are accumulated in the same pass.
The kernel is serial; it runs under numba (compiled on first use, cached on disk).
"""
from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np
import torch

_BLOCK = 2048   # elements per block: V, I and o of one block stay in L1 across the N threshold passes


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _first_threshold_pass(v: np.ndarray, current: np.ndarray, o: np.ndarray, theta: np.float32) -> int:
    """V <- V + I, then the first threshold; o starts at theta_1 * s_1 (= 0 + theta_1 * s_1 exactly)."""
    count = 0
    for i in range(v.shape[0]):
        vi = v[i] + current[i]
        fired = vi > theta
        s = np.float32(fired)
        v[i] = vi - theta * s
        o[i] = theta * s
        count += np.int32(fired)  # type: ignore[assignment]
    return count


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _threshold_pass(v: np.ndarray, o: np.ndarray, theta: np.float32) -> int:
    count = 0
    for i in range(v.shape[0]):
        fired = v[i] > theta
        s = np.float32(fired)
        v[i] = v[i] - theta * s
        o[i] = o[i] + theta * s
        count += np.int32(fired)  # type: ignore[assignment]
    return count


@numba.njit(cache=True, nogil=True, boundscheck=False)
def _mt_step_kernel(v: np.ndarray, current: np.ndarray, thresholds: np.ndarray, out: np.ndarray,
                    counts: np.ndarray, flow_in: np.ndarray, flow_out: np.ndarray, record_flow: bool) -> None:
    n = v.shape[0]
    for start in range(0, n, _BLOCK):
        stop = min(start + _BLOCK, n)
        vb, ob, ib = v[start:stop], out[start:stop], current[start:stop]
        counts[0] += _first_threshold_pass(vb, ib, ob, thresholds[0])
        for k in range(1, thresholds.shape[0]):
            counts[k] += _threshold_pass(vb, ob, thresholds[k])
        if record_flow:
            fi, fo = flow_in[start:stop], flow_out[start:stop]
            for i in range(vb.shape[0]):
                fi[i] = fi[i] + ib[i]
                fo[i] = fo[i] + ob[i]


def fused_step_applies(v: torch.Tensor | float, current: torch.Tensor) -> bool:
    """Whether :func:`fused_mt_step` can stand in for ``mt_step``: float32 CPU tensors, no autograd."""
    return (current.dtype == torch.float32 and current.device.type == "cpu"
            and not (torch.is_grad_enabled() and current.requires_grad)
            and (isinstance(v, float) or (v.dtype == torch.float32 and v.shape == current.shape)))


def _flat(t: torch.Tensor) -> np.ndarray:
    return t.detach().reshape(-1).numpy()


def fused_mt_step(v: torch.Tensor | float, current: torch.Tensor, thresholds: Sequence[float],
                  flows: tuple[torch.Tensor, torch.Tensor] | None = None, out: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """One MT step on float32 CPU tensors; returns (V, o, spikes per threshold as int64 counts).

    ``v`` is updated in place when it is a tensor (a float starts a new membrane at that value);
    ``flows`` = (I_in, I_out) accumulators, updated in place, if given; ``out``: a contiguous float32
    tensor of the current's shape to write o into (a new one otherwise).
    """
    current = current.detach().contiguous()
    if isinstance(v, float):
        v = torch.full_like(current, v)
    elif not v.is_contiguous():
        v = v.contiguous()
    if out is None or out.shape != current.shape or out.dtype != torch.float32 or not out.is_contiguous():
        out = torch.empty_like(current)
    counts = np.zeros(len(thresholds), dtype=np.int64)
    theta = np.asarray(thresholds, dtype=np.float32)
    flow_in, flow_out = (_flat(flows[0]), _flat(flows[1])) if flows else (np.empty(0, np.float32),) * 2
    with torch.profiler.record_function("mt_step_fused"):    # numba work is invisible to torch's profiler
        _mt_step_kernel(_flat(v), _flat(current), theta, _flat(out), counts, flow_in, flow_out, flows is not None)
    return v, out, counts


@numba.njit(cache=True, nogil=True, boundscheck=False)
def mt_step_int(v: np.ndarray, current: np.ndarray, thresholds: np.ndarray, ratios: np.ndarray, v_limit: int,
                graded: bool, out: np.ndarray, packed: np.ndarray, counts: np.ndarray) -> int:
    """One integer MT step in one pass, exactly ``mt_step(v, current, thresholds, v_limit)`` on int64.

    ``v`` (flat int64) is updated in place; ``current`` flat int64. Writes the spikes as ``out``:
    graded, q_j = sum_i r_i s_i; compartments, out[j N + i] = s_i of neuron j; ``packed[j]`` =
    sum_i s_i << i; adds each threshold's spike count to ``counts`` (N,). Returns the number of
    membrane clip events (|V + I| > v_limit).
    """
    n = thresholds.shape[0]
    clipped = 0
    for j in range(v.shape[0]):
        x = v[j] + current[j]
        if x > v_limit:
            x = v_limit
            clipped += 1
        elif x < -v_limit:
            x = -v_limit
            clipped += 1
        q = 0
        p = 0
        for i in range(n):
            fired = x > thresholds[i]
            if fired:
                x -= thresholds[i]
                q += ratios[i]
                p |= 1 << i
                counts[i] += 1
            if not graded:
                out[j * n + i] = 1 if fired else 0
        v[j] = x
        if graded:
            out[j] = q
        packed[j] = p
    return clipped

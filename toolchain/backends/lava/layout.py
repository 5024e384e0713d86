"""This toolchain's integer layers in the parameters of Lava's stock synapse processes (numpy only, no Lava).

Layouts. Lava's populations and its ``Conv`` process are (X, Y, Z) = (W, H, C), the reversal of
the (C, H, W) a ``.net`` file stores (as lava-dl's netx reads it); a flat vector (a ``Sparse``
port) is that array in C order, index (x H + y) C + c. A compartments-lowered MT population sends
its N binary maps as one (X, Y, C N) array, channel-major: compartment i of channel c is
channel c N + i.

Convolution. Lava's ``Conv`` is a *true* convolution over (x, y) with weights (C_out, kx, ky, C_in):
a torch cross-correlation kernel m (C_out, C_in, kH, kW) becomes ``m[:, :, ::-1, ::-1].transpose(0, 3,
2, 1)`` (what lava-dl's netx does), stride and padding are given in (x, y) order.

Transposed convolution as a convolution. A stride-s transposed convolution (kernel k, padding p,
output padding op) splits into s x s phases: output row y = s m + r receives
sum_{ky : (r + p - ky) = 0 mod s} in[m + (r + p - ky) / s] W[ky]. Each phase is a stride-1
cross-correlation of the input with offsets delta = (r + p - ky) / s, so all of them are one stock
``Conv`` with s^2 C_out output channels (phase-major), a K-tap kernel and symmetric padding P with
P = max(0, -delta_min, delta_max + c), K = 2 P + 1 - c (c = n_out / s - n_in), followed by the
pixel shuffle (X', Y', s_x s_y C) -> (s_x X', s_y Y', C), which Lava's virtual ports (reshape,
transpose, reshape) do on the connection.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix

XYZ = tuple[int, int, int]


def xyz(chw: Sequence[int]) -> XYZ:
    """(C, H, W) -> Lava's (X, Y, Z) = (W, H, C)."""
    c, h, w = (int(v) for v in chw)
    return (w, h, c)


def to_xyz(a: np.ndarray) -> np.ndarray:
    """An array whose last three axes are (C, H, W) -> (W, H, C) (leading axes kept), C-contiguous."""
    return np.ascontiguousarray(np.swapaxes(np.asarray(a), -1, -3))


def from_xyz(a: np.ndarray) -> np.ndarray:
    """The inverse of :func:`to_xyz` ((X, Y, Z) -> (C, H, W) on the last three axes)."""
    return np.ascontiguousarray(np.swapaxes(np.asarray(a), -1, -3))


def lava_conv_weight(m: np.ndarray) -> np.ndarray:
    """torch cross-correlation weights (C_out, C_in, kH, kW) -> Lava ``Conv`` weights (C_out, kx, ky, C_in)."""
    return np.ascontiguousarray(np.asarray(m)[:, :, ::-1, ::-1].transpose(0, 3, 2, 1))


def interleave(weight: np.ndarray, factors: Sequence[int]) -> np.ndarray:
    """Lava weights (C_out, kx, ky, C_in) for the compartments input (channel c N + i worth ``factors[i]``):
    (C_out, kx, ky, C_in N) with w'[..., c N + i] = w[..., c] * factors[i]."""
    w = np.asarray(weight, np.int64)
    stacked = np.stack([w * int(f) for f in factors], axis=-1)
    return stacked.reshape(w.shape[:3] + (w.shape[3] * len(factors),))


MAX_GROUPS = 127                # Lava's Conv keeps ``groups`` in an int8 Var (its models read it back as int8)


def pool_groups(channels: int) -> int:
    """The ``groups`` of a sum pool's Conv: the largest divisor of ``channels`` that an int8 holds."""
    return max(g for g in range(1, min(channels, MAX_GROUPS) + 1) if channels % g == 0)


def pool_weight(mantissa: int, channels: int, kernel: tuple[int, int], factors: Sequence[int]) -> np.ndarray:
    """The Lava ``Conv`` weights of a sum pool with one mantissa, for ``groups = pool_groups(C)``:
    (C, kx, ky, (C / groups) N), block-diagonal. Output channel c reads input channel c of its group
    (local index c mod C/groups) with every tap of input i (compartment i, or the graded payload for
    N = 1) equal to ``mantissa * factors[i]`` (depthwise when C <= 127)."""
    kh, kw = kernel
    per_group = channels // pool_groups(channels)
    n = len(factors)
    weight = np.zeros((channels, kw, kh, per_group * n), np.int64)
    for c in range(channels):
        j = c % per_group
        weight[c, :, :, j * n:(j + 1) * n] = [int(mantissa) * int(f) for f in factors]
    return weight


@dataclass(frozen=True)
class PhaseConv:
    """A transposed convolution as one stride-1 convolution and a pixel shuffle (module docstring).

    ``weight``: torch cross-correlation weights (s_x s_y C_out, C_in, K_y, K_x), output channel
    (r_x s_y + r_y) C_out + c_o; ``padding``: (P_y, P_x); ``stride``: the shuffle factors (s_y, s_x).
    """

    weight: np.ndarray
    padding: tuple[int, int]
    stride: tuple[int, int]


def _axis_taps(n_in: int, n_out: int, k: int, s: int, p: int) -> tuple[list[list[tuple[int, int]]], int, int]:
    """Per phase r, the (tap ky, offset delta) pairs of one axis; and the padding P and kernel K of the conv."""
    if n_out % s:
        raise ValueError(f"transposed conv output {n_out} is not a multiple of its stride {s}")
    c = n_out // s - n_in
    taps = [[(ky, (r + p - ky) // s) for ky in range(k) if (r + p - ky) % s == 0] for r in range(s)]
    deltas = [d for phase in taps for _, d in phase] or [0]
    pad = max(0, -min(deltas), max(deltas) + c)
    size = 2 * pad + 1 - c
    if size < 1:
        raise ValueError(f"transposed conv ({n_in} -> {n_out}, k {k}, s {s}, p {p}) has no convolution form")
    return taps, pad, size


def convT_as_conv(m: np.ndarray, in_hw: tuple[int, int], out_hw: tuple[int, int], kernel: tuple[int, int],
                  stride: tuple[int, int], padding: tuple[int, int]) -> PhaseConv:
    """The :class:`PhaseConv` of torch ``conv_transpose2d(x, m, stride, padding, output_padding)`` with
    ``m`` (C_in, C_out, kH, kW) taking (H, W) = ``in_hw`` to ``out_hw`` (module docstring)."""
    m = np.asarray(m, np.int64)
    c_in, c_out = m.shape[:2]
    taps_y, pad_y, k_y = _axis_taps(in_hw[0], out_hw[0], kernel[0], stride[0], padding[0])
    taps_x, pad_x, k_x = _axis_taps(in_hw[1], out_hw[1], kernel[1], stride[1], padding[1])
    sy, sx = stride
    w = np.zeros((sx * sy * c_out, c_in, k_y, k_x), np.int64)
    for rx in range(sx):
        for ry in range(sy):
            block = slice((rx * sy + ry) * c_out, (rx * sy + ry + 1) * c_out)
            for ky, dy in taps_y[ry]:
                for kx, dx in taps_x[rx]:
                    w[block, :, dy + pad_y, dx + pad_x] = m[:, :, ky, kx].T
    return PhaseConv(w, (pad_y, pad_x), (sy, sx))


def shuffle_shapes(conv_out: XYZ, stride: tuple[int, int]) -> tuple[tuple[int, ...], tuple[int, ...], XYZ]:
    """The virtual-port chain of the pixel shuffle: reshape to (X', Y', s_x, s_y, C), transpose by
    (0, 2, 1, 3, 4), reshape to (s_x X', s_y Y', C). Returns (first shape, axes, final shape)."""
    x, y, z = conv_out
    sy, sx = stride
    c = z // (sx * sy)
    return (x, y, sx, sy, c), (0, 2, 1, 3, 4), (x * sx, y * sy, c)


def conv_bound(weight: np.ndarray, payload_max: int) -> int:
    """max over output channels of sum |w| * payload_max: a bound on |a| of a ``Conv`` with these Lava
    weights (C_out, kx, ky, C_in) on inputs |s| <= payload_max (border neurons see fewer taps)."""
    w = np.abs(np.asarray(weight, np.int64))
    return int(w.reshape(w.shape[0], -1).sum(axis=1).max(initial=0)) * int(payload_max)


# ------------------------------------------------------------------------------- sparse matrices

def conv_matrix(m: np.ndarray, in_chw: Sequence[int], out_chw: Sequence[int], stride: tuple[int, int],
                padding: tuple[int, int], compartment: tuple[int, int] = (0, 1)) -> csr_matrix:
    """The (N_out, N_in) matrix of torch ``conv2d(x, m)`` (m: (C_out, C_in, kH, kW)) on flat Lava vectors.

    ``compartment`` (i, N): the input is a compartments map (X, Y, C N) and the matrix reads
    compartment i only (input index ((x H + y) C + c) N + i). Built one kernel tap at a time.
    """
    m = np.asarray(m, np.int64)
    co_n, ci_n, kh, kw = m.shape
    _, hi, wi = (int(v) for v in in_chw)
    _, ho, wo = (int(v) for v in out_chw)
    comp, n = compartment
    ox, oy, co, ci = np.meshgrid(np.arange(wo), np.arange(ho), np.arange(co_n), np.arange(ci_n), indexing="ij")
    rows, cols, vals = [], [], []
    for ky in range(kh):
        for kx in range(kw):
            iy, ix = oy * stride[0] - padding[0] + ky, ox * stride[1] - padding[1] + kx
            ok = (iy >= 0) & (iy < hi) & (ix >= 0) & (ix < wi) & (m[co, ci, ky, kx] != 0)
            rows.append(((ox * ho + oy) * co_n + co)[ok])
            cols.append((((ix * hi + iy) * ci_n + ci) * n + comp)[ok])
            vals.append(m[co, ci, ky, kx][ok])
    matrix = csr_matrix((np.concatenate(vals).astype(np.int32), (np.concatenate(rows), np.concatenate(cols))),
                        shape=(ho * wo * co_n, hi * wi * ci_n * n))
    matrix.sum_duplicates()
    return matrix


def uniform_delays(matrix: csr_matrix, delay: int) -> csr_matrix:
    """A delay matrix with ``matrix``'s sparsity pattern, every entry ``delay`` (int64: DelaySparse
    rejects any other dtype)."""
    delays = matrix.copy().astype(np.int64)
    delays.data[:] = int(delay)
    return delays


def matrix_bound(matrix: csr_matrix, payload_max: int) -> int:
    """max over rows of sum |w| * payload_max: a bound on |W s| for |s| <= payload_max."""
    sums = np.asarray(abs(matrix).sum(axis=1)).reshape(-1)
    return int(sums.max(initial=0)) * int(payload_max)


def power_split(ratio: int) -> list[int]:
    """The exponents k of the binary expansion r = sum 2**k (one Sparse group per term keeps 2m 8-bit)."""
    return [k for k in range(int(ratio).bit_length()) if (int(ratio) >> k) & 1]

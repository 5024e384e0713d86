"""This toolchain's integer layers in the parameters of Lava's stock synapse processes (numpy only, no Lava).

Layouts. Lava's populations and its ``Conv`` process are (X, Y, Z) = (W, H, C), the reversal of
the (C, H, W) a ``.net`` file stores (as lava-dl's netx reads it); a flat vector (a ``Sparse``
port) is that array in C order, index (x H + y) C + c. A compartments-lowered MT population sends
its N binary maps as one (X, Y, C N) array, channel-major: compartment i of channel c is
channel c N + i.

Convolution. Lava's ``Conv`` is a *true* convolution over (x, y) with weights (C_out, kx, ky, C_in):
a torch cross-correlation kernel m (C_out, C_in, kH, kW) becomes ``m[:, :, ::-1, ::-1].transpose(0, 3,
2, 1)`` (what lava-dl's netx does), stride and padding are given in (x, y) order. Lava groups as
torch does (weights (C_out, kx, ky, C_in / G); group j: output channels j C_out / G.., input channels
j C_in / G..; with compartments, channel c's N maps stay inside c's group), but keeps ``groups`` in an
int8: a layer of more than 127 groups joins consecutive groups into block-diagonal ones (:func:`regroup`).

Transposed convolution as a convolution. A stride-s transposed convolution (kernel k, padding p,
output padding op) splits into s x s phases: output row y = s m + r receives
sum_{ky : (r + p - ky) = 0 mod s} in[m + (r + p - ky) / s] W[ky]. Each phase is a stride-1
cross-correlation of the input with offsets delta = (r + p - ky) / s, so all of them are one stock
``Conv`` with s^2 C_out output channels (phase-major), a K-tap kernel and symmetric padding P with
P = max(0, -delta_min, delta_max + c), K = 2 P + 1 - c (c = n_out / s - n_in), followed by the
pixel shuffle (X', Y', s_x s_y C) -> (s_x X', s_y Y', C), which Lava's virtual ports (reshape,
transpose, reshape) do on the connection. A G-grouped transposed conv is a G-grouped phase conv
(group-major output channels, each group's phases as above); the shuffle splits the groups off first.
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


def lava_groups(groups: int) -> int:
    """The ``groups`` a Lava ``Conv`` carries for a ``groups``-grouped layer: the largest divisor of
    ``groups`` that an int8 holds (``groups`` itself up to 127)."""
    return max(g for g in range(1, min(groups, MAX_GROUPS) + 1) if groups % g == 0)


def pool_groups(channels: int) -> int:
    """The ``groups`` of a sum pool's Conv (a depthwise conv of ``channels`` groups, :func:`lava_groups`)."""
    return lava_groups(channels)


def regroup(weight: np.ndarray, groups: int) -> tuple[np.ndarray, int]:
    """Lava weights of a ``groups``-grouped conv, (C_out, kx, ky, C_in / groups) (group j: output
    channels j C_out / groups.., input channels j C_in / groups..), as the same conv with
    ``lava_groups(groups)`` groups: each of those joins groups / lava_groups(groups) consecutive groups
    with a block-diagonal weight (zero between the groups it joins)."""
    w = np.asarray(weight, np.int64)
    target = lava_groups(groups)
    if target == groups:
        return w, groups
    merge = groups // target
    c_out, kx, ky, c_in_g = w.shape
    per_out = c_out // groups
    out = np.zeros((c_out, kx, ky, c_in_g * merge), np.int64)
    for j in range(groups):
        local = j % merge
        out[j * per_out:(j + 1) * per_out, :, :, local * c_in_g:(local + 1) * c_in_g] = w[j * per_out:(j + 1) * per_out]
    return out, target


def pool_weight(mantissa: int, channels: int, kernel: tuple[int, int], factors: Sequence[int]) -> np.ndarray:
    """The Lava ``Conv`` weights of a sum pool with one mantissa, for ``groups = pool_groups(C)``:
    (C, kx, ky, (C / groups) N), block-diagonal (:func:`regroup` of the depthwise weight). Output
    channel c reads input channel c with every tap of input i (compartment i, or the graded payload
    for N = 1) equal to ``mantissa * factors[i]`` (depthwise when C <= 127)."""
    kh, kw = kernel
    depthwise = np.zeros((channels, kw, kh, len(factors)), np.int64)
    depthwise[...] = np.asarray([int(mantissa) * int(f) for f in factors], np.int64)
    return regroup(depthwise, channels)[0]


@dataclass(frozen=True)
class PhaseConv:
    """A transposed convolution as one stride-1 convolution and a pixel shuffle (module docstring).

    ``weight``: torch cross-correlation weights (s_x s_y C_out, C_in / G, K_y, K_x) of a G-grouped conv,
    output channel (g s_x s_y + r_x s_y + r_y) C_out / G + c (group-major, then phase-major; G = 1:
    (r_x s_y + r_y) C_out + c_o); ``padding``: (P_y, P_x); ``stride``: the shuffle factors (s_y, s_x);
    ``groups``: G, the transposed conv's groups.
    """

    weight: np.ndarray
    padding: tuple[int, int]
    stride: tuple[int, int]
    groups: int = 1


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
                  stride: tuple[int, int], padding: tuple[int, int], groups: int = 1) -> PhaseConv:
    """The :class:`PhaseConv` of torch ``conv_transpose2d(x, m, stride, padding, output_padding, groups)``
    with ``m`` (C_in, C_out / groups, kH, kW) taking (H, W) = ``in_hw`` to ``out_hw`` (module docstring):
    group g's phase conv is that of its own weights m[g C_in / groups ..]."""
    m = np.asarray(m, np.int64)
    c_in, c_out = m.shape[0] // groups, m.shape[1]
    taps_y, pad_y, k_y = _axis_taps(in_hw[0], out_hw[0], kernel[0], stride[0], padding[0])
    taps_x, pad_x, k_x = _axis_taps(in_hw[1], out_hw[1], kernel[1], stride[1], padding[1])
    sy, sx = stride
    w = np.zeros((groups * sx * sy * c_out, c_in, k_y, k_x), np.int64)
    for g in range(groups):
        mg = m[g * c_in:(g + 1) * c_in]
        for rx in range(sx):
            for ry in range(sy):
                first = ((g * sx + rx) * sy + ry) * c_out
                for ky, dy in taps_y[ry]:
                    for kx, dx in taps_x[rx]:
                        w[first:first + c_out, :, dy + pad_y, dx + pad_x] = mg[:, :, ky, kx].T
    return PhaseConv(w, (pad_y, pad_x), (sy, sx), groups)


def shuffle_shapes(conv_out: XYZ, stride: tuple[int, int],
                   groups: int = 1) -> tuple[tuple[int, ...], tuple[int, ...], XYZ]:
    """The virtual-port chain of the pixel shuffle of a :class:`PhaseConv` with ``groups`` G: reshape
    to (X', Y', G, s_x, s_y, C / G), transpose by (0, 3, 1, 4, 2, 5), reshape to (s_x X', s_y Y', C).
    Returns (first shape, axes, final shape)."""
    x, y, z = conv_out
    sy, sx = stride
    c = z // (sx * sy)
    return (x, y, groups, sx, sy, c // groups), (0, 3, 1, 4, 2, 5), (x * sx, y * sy, c)


def conv_bound(weight: np.ndarray, payload_max: int) -> int:
    """max over output channels of sum |w| * payload_max: a bound on |a| of a ``Conv`` with these Lava
    weights (C_out, kx, ky, C_in) on inputs |s| <= payload_max (border neurons see fewer taps)."""
    w = np.abs(np.asarray(weight, np.int64))
    return int(w.reshape(w.shape[0], -1).sum(axis=1).max(initial=0)) * int(payload_max)


# ------------------------------------------------------------------------------- sparse matrices

def conv_matrix(m: np.ndarray, in_chw: Sequence[int], out_chw: Sequence[int], stride: tuple[int, int],
                padding: tuple[int, int], compartment: tuple[int, int] = (0, 1), groups: int = 1) -> csr_matrix:
    """The (N_out, N_in) matrix of torch ``conv2d(x, m, groups=groups)`` (m: (C_out, C_in / groups, kH, kW))
    on flat Lava vectors.

    ``compartment`` (i, N): the input is a compartments map (X, Y, C N) and the matrix reads
    compartment i only (input index ((x H + y) C + c) N + i). Built one kernel tap at a time.
    """
    m = np.asarray(m, np.int64)
    co_n, ci_g, kh, kw = m.shape
    ci_n, hi, wi = (int(v) for v in in_chw)
    _, ho, wo = (int(v) for v in out_chw)
    comp, n = compartment
    ox, oy, co, cg = np.meshgrid(np.arange(wo), np.arange(ho), np.arange(co_n), np.arange(ci_g), indexing="ij")
    ci = co // (co_n // groups) * ci_g + cg                     # the input channel of tap cg of output co
    rows, cols, vals = [], [], []
    for ky in range(kh):
        for kx in range(kw):
            iy, ix = oy * stride[0] - padding[0] + ky, ox * stride[1] - padding[1] + kx
            ok = (iy >= 0) & (iy < hi) & (ix >= 0) & (ix < wi) & (m[co, cg, ky, kx] != 0)
            rows.append(((ox * ho + oy) * co_n + co)[ok])
            cols.append((((ix * hi + iy) * ci_n + ci) * n + comp)[ok])
            vals.append(m[co, cg, ky, kx][ok])
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

"""Faster fixed_pt models, registered per process instance through ``exception_proc_model_map``
(:func:`model_map`); each computes what the model it replaces computes (tested side by side,
``tests/backends/test_lava_fast_models.py``). Imports Lava: use it where Lava runs.

Stock processes (Lava 0.10.0):

* :class:`TorchConvModel` for ``Conv`` (``PyConvModelFixed``: a(t) = wrap24(conv(s(t-1), w)), true
  convolution, ``weight_exp`` and ``num_weight_bits`` ignored, binary input s != 0): torch's conv on
  the (X, Y, Z) array viewed channels-last, in float32 whenever every sum is an exactly
  representable integer (the weights' common power-of-two factor taken out), else float64;
* :class:`FastDelaySparseModel` for ``DelaySparse`` (``PyDelaySparseModelBitAcc``: weights clipped to
  8 bits and truncated once, a = (W_d s) << weight_exp (floor shift for negative exponents) delivered
  at t + 1 + d, int32): per-delay matrices built once (Lava rebuilds them every step) and a ring buffer.

Their ``Exact*`` variants raise :class:`toolchain.errors.ExactnessError` where Lava's model would
wrap (|a| >= 2**23 for Conv, an int32 overflow for DelaySparse), so a run either gives the reference
simulator's integers or stops. Own processes: :class:`FastMTNeuronModel` (the numba kernel
``toolchain.neuron.fused.mt_step_int``) and int8 spike messages where the payload fits
(:class:`FastMTNeuronModelInt8`, :class:`DelayLineModelInt8`): 4x less to copy per message.
"""
from __future__ import annotations

import typing as ty

import numpy as np
import torch
import torch.nn.functional as F
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.proc.conv.models import PyConvModelFixed
from lava.proc.conv.process import Conv
from lava.proc.sparse.models import PyDelaySparseModelBitAcc
from lava.proc.sparse.process import DelaySparse
from lava.utils.weightutils import SignMode, determine_sign_mode
from scipy.sparse import csr_matrix

from toolchain.backends.lava.procs.models import (
    PyAccumulatorModel,
    PyDelayLineModel,
    PyHostStaticModel,
    PyMTNeuronModel,
)
from toolchain.backends.lava.procs.network import LavaNetwork, LavaNetworkModel
from toolchain.backends.lava.procs.process import Accumulator, DelayLine, HostStatic, MTNeuron
from toolchain.errors import ExactnessError
from toolchain.neuron.fused import mt_step_int

FLOAT32_EXACT = 1 << 24       # float32 holds every integer below this exactly
CONV_WRAP_BITS = 24


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


class TorchConvModel(PyConvModelFixed):
    """``Conv`` exactly as ``PyConvModelFixed`` computes it, with torch (module docstring)."""

    exact: ty.ClassVar[bool] = False

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        torch.set_num_threads(1)
        self._ready = False

    def _prepare(self) -> None:
        w = np.asarray(self.weight, np.int64)                            # (C_out, kx, ky, C_in / groups)
        self._g = pow2_factor(w)
        w = w >> self._g
        self._wsum = int(np.abs(w).reshape(w.shape[0], -1).sum(axis=1).max(initial=0))
        # The (X, Y, Z) array as a channels-last (1, Z, X, Y) tensor: torch's cross-correlation kernel is
        # the flipped Lava kernel in (C_out, C_in, kx, ky) order; stride, padding, dilation stay (x, y).
        wt = np.ascontiguousarray(w[:, ::-1, ::-1, :].transpose(0, 3, 1, 2)).astype(np.float64)
        self._w = {dt: torch.from_numpy(wt).to(dt).contiguous(memory_format=torch.channels_last)
                   for dt in (torch.float32, torch.float64)}
        self._stride = (int(self.stride[0]), int(self.stride[1]))
        self._padding = (int(self.padding[0]), int(self.padding[1]))
        self._dilation = (int(self.dilation[0]), int(self.dilation[1]))
        self._groups = int(self.groups[0])
        self._zeros = np.zeros(tuple(self.a_out.shape), np.int32)
        self._binary = int(self.num_message_bits.item()) <= 0
        self._ready = True

    def run_spk(self) -> None:
        if not self._ready:
            self._prepare()
        self.a_out.send(self.a_buf)  # type: ignore[has-type]
        s = self.s_in.recv()
        if not s.any():
            self.a_buf = self._zeros
            return
        payload_max = 1 if self._binary else int(np.abs(s).max())
        bound = self._wsum * payload_max                 # |conv / 2**g| <= bound
        dtype = torch.float32 if bound < FLOAT32_EXACT else torch.float64
        x = torch.from_numpy(np.asarray(s)).unsqueeze(0).permute(0, 3, 1, 2)   # (1, Z, X, Y), channels-last
        x = (x != 0).to(dtype) if self._binary else x.to(dtype)
        y = F.conv2d(x, self._w[dtype], stride=self._stride, padding=self._padding, dilation=self._dilation,
                     groups=self._groups)[0].permute(1, 2, 0)                         # (X', Y', C_out)
        if (bound << self._g) < (1 << (CONV_WRAP_BITS - 1)):                  # no wrap possible
            a = y.to(torch.int32)
            self.a_buf = (torch.bitwise_left_shift(a, self._g) if self._g else a).numpy()
            return
        exact = y.to(torch.int64).numpy() << self._g
        if self.exact and np.abs(exact).max(initial=0) >= 1 << (CONV_WRAP_BITS - 1):
            raise ExactnessError(
                f"Conv {self.proc_params.get('name')!r} at Lava step {self.time_step}: a synaptic sum reaches "
                f"{int(np.abs(exact).max())} >= 2**23, which Lava's Conv wraps (24 bits) while the reference "
                f"simulator does not; lower this layer's weight exponent or split its input")
        self.a_buf = wrap(exact, CONV_WRAP_BITS).astype(np.int32)


class ExactTorchConvModel(TorchConvModel):
    """:class:`TorchConvModel` that raises ExactnessError instead of wrapping."""

    exact = True


def lava_weights(model: ty.Any) -> csr_matrix:
    """The weights as Lava's bit-accurate Sparse models prepare them on their first step
    (``clip_weights(num_bits=8)`` then ``truncate_weights(num_weight_bits)``), on the stored values only."""
    bits = model.proc_params.get("num_weight_bits", 8)
    sign_mode = model.proc_params.get("sign_mode") or determine_sign_mode(model.weights)
    w = csr_matrix(model.weights, copy=True).astype(np.int64)
    values = w.data
    mixed, inhibitory = int(sign_mode == SignMode.MIXED), sign_mode == SignMode.INHIBITORY
    if inhibitory:
        values = -values
    values = np.clip(values, -(1 << 8) * mixed, (1 << 8) - 1)
    n = 8 - bits + mixed
    values = (values >> n) << n
    w.data = -values if inhibitory else values
    w.eliminate_zeros()
    return w


class FastDelaySparseModel(PyDelaySparseModelBitAcc):
    """``DelaySparse`` as ``PyDelaySparseModelBitAcc`` computes it while no int32 sum overflows (module docstring)."""

    exact: ty.ClassVar[bool] = False

    def _prepare(self) -> None:
        w = lava_weights(self)
        delays = csr_matrix(self.delays).astype(np.int64)
        if delays.nnz and int(delays.data.max()) > 63:
            raise ValueError("DelaySparse Process 'delays' expects values between 0 and 63 for Loihi")
        depth = self.a_buff.shape[-1]                             # max_delay + 1
        # The delay of each stored weight (weights without a delay entry have delay 0, as in Lava).
        pattern = w.copy()
        pattern.data = np.ones_like(pattern.data)
        of_weight = (pattern.multiply(delays)).tocsr()
        self._by_delay: dict[int, csr_matrix] = {}
        for k in range(depth):
            if k == 0:
                mask = pattern - pattern.multiply(of_weight != 0)
            else:
                mask = pattern.multiply(of_weight == k)
            part = csr_matrix(w.multiply(mask))
            part.eliminate_zeros()
            if part.nnz:
                self._by_delay[k] = part
        self._ring = np.zeros((depth, w.shape[0]), np.int64)    # row (now + k) % depth: delivered k + 1 steps on
        self._now = 0
        self._exp = int(self.proc_params.get("weight_exp", 0))
        self._binary = int(self.num_message_bits.item()) <= 0
        self.weights_set = True

    def run_spk(self) -> None:
        if not self.weights_set:
            self._prepare()
        ring, depth = self._ring, self._ring.shape[0]
        self.a_out.send(wrap(ring[self._now], 32).astype(np.int32))
        ring[self._now] = 0
        self._now = (self._now + 1) % depth
        s = self.s_in.recv()
        s = (s != 0) if self._binary else np.asarray(s, np.int64)
        if not s.any():
            return
        for k, matrix in self._by_delay.items():
            a = matrix.dot(s.astype(np.int64))
            row = (self._now + k) % depth
            ring[row] += shift(a, self._exp)
            if self.exact and max(np.abs(a).max(initial=0), np.abs(ring[row]).max(initial=0)) >= 1 << 31:
                raise ExactnessError(
                    f"DelaySparse {self.proc_params.get('name')!r} at Lava step {self.time_step}: a synaptic "
                    f"sum overflows int32, which Lava wraps while the reference simulator does not")


class ExactFastDelaySparseModel(FastDelaySparseModel):
    """:class:`FastDelaySparseModel` that raises ExactnessError instead of wrapping."""

    exact = True


class FastMTNeuronModel(PyMTNeuronModel):
    """:class:`~toolchain.backends.lava.procs.models.PyMTNeuronModel` with the one-pass numba kernel
    ``mt_step_int`` (the same integers as ``mt_step``; tested)."""

    out_dtype: ty.ClassVar[type] = np.int32

    def _prepare(self) -> np.ndarray:
        bias = np.left_shift(self.bias_mant.astype(np.int64), self.bias_exp.astype(np.int64)).reshape(-1)
        self._theta = np.asarray(self._thresholds, np.int64)
        self._r = np.asarray(self._ratios, np.int64)
        self._out: np.ndarray = np.zeros(self._zero_out.size, self.out_dtype)
        self._packed = np.zeros(self._zero_rec.size, np.int32)
        self._counts = np.zeros(len(self._thresholds), np.int64)
        return bias

    def run_spk(self) -> None:
        current = self.a_in.recv()
        position = self.position()
        if position is None:
            self.s_out.send(self._zero_out)
            self.rec_out.send(self._zero_rec)
            return
        bias = self._bias
        if bias is None:
            bias = self._bias = self._prepare()
        j, k = position
        v = self.v.reshape(-1)
        if k == 0:
            v[:] = 0
        total = np.asarray(current, np.int64).reshape(-1) + bias
        self._counts[:] = 0
        col = self.column(j)
        self.saturations[col] += mt_step_int(v, total, self._theta, self._r, self._v_limit, self._graded,
                                             self._out, self._packed, self._counts)
        self.spike_counts[:, col] += self._counts
        self.s_out.send(self._out.reshape(self._zero_out.shape))
        self.rec_out.send(self._packed.reshape(self._shape) if self._record else self._zero_rec)


class FastMTNeuronModelInt8(FastMTNeuronModel):
    """:class:`FastMTNeuronModel` with int8 spike messages (binary maps, or graded payloads up to 127)."""

    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int8)
    out_dtype = np.int8


class DelayLineModelInt8(PyDelayLineModel):
    """The delay line with int8 messages (what an int8 MT population sends)."""

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int8)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int8)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self._fifo = type(self._fifo)(np.zeros_like(f, dtype=np.int8) for f in self._fifo)


def _int8(proc: MTNeuron) -> bool:
    """Whether an MT population's messages fit int8 (binary, or a graded payload sum r_i <= 127)."""
    return proc.proc_params["lowering"] == "compartments" or sum(proc.proc_params["ratios"]) <= 127


def warm_up() -> None:
    """Compile (or load) the numba MT kernel and run torch's conv once in this process, before Lava forks
    its workers: they inherit both (each would otherwise spend up to a second of CPU on it at its first
    active step)."""
    z = np.zeros(2, np.int64)
    one = np.ones(1, np.int64)
    for dtype in (np.int8, np.int32):
        mt_step_int(z.copy(), z, one, one, 1, True, np.zeros(2, dtype), np.zeros(2, np.int32), np.zeros(1, np.int64))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    for dt in (torch.float32, torch.float64):
        x = torch.zeros((1, 2, 4, 4), dtype=dt).contiguous(memory_format=torch.channels_last)
        F.conv2d(x, torch.zeros((2, 2, 3, 3), dtype=dt).contiguous(memory_format=torch.channels_last), padding=1)
    torch.set_num_threads(threads)


def model_map(net: LavaNetwork, fast: bool = True, exact: bool = True) -> dict[ty.Any, type]:
    """{process: model class} for every process of ``net`` (see :meth:`LavaNetwork.model_map`)."""
    from lava.proc.conv.models import PyConvModelFixed as StockConv
    from lava.proc.sparse.models import PyDelaySparseModelBitAcc as StockDelaySparse

    mapping: dict[ty.Any, type] = {net: LavaNetworkModel}
    if net.stock:
        return mapping
    if fast:
        warm_up()
    groups = {g.name: g for g in net.plan.convs}
    sources = {line: net.neurons[groups[name].source] for name, line in net.delay_lines.items()}
    for proc in net.processes():
        if isinstance(proc, MTNeuron):
            model: type = ((FastMTNeuronModelInt8 if _int8(proc) else FastMTNeuronModel) if fast
                           else PyMTNeuronModel)
        elif isinstance(proc, DelayLine):
            model = DelayLineModelInt8 if fast and _int8(sources[proc]) else PyDelayLineModel
        elif isinstance(proc, Accumulator):
            model = PyAccumulatorModel
        elif isinstance(proc, HostStatic):
            model = PyHostStaticModel
        elif isinstance(proc, Conv):
            model = (ExactTorchConvModel if exact else TorchConvModel) if fast else StockConv
        elif isinstance(proc, DelaySparse):
            model = (ExactFastDelaySparseModel if exact else FastDelaySparseModel) if fast else StockDelaySparse
        else:
            raise TypeError(f"no model for {type(proc).__name__}")
        mapping[proc] = model
    return mapping

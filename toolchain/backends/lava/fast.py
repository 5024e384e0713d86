"""Faster fixed_pt models, registered per process instance through ``exception_proc_model_map``
(:func:`model_map`); each computes what the model it replaces computes (tested side by side,
``tests/backends/test_lava_fast_models.py``). Imports Lava: use it where Lava runs.

Stock processes (Lava 0.10.0):

* :class:`TorchConvModel` for ``Conv`` (``PyConvModelFixed``: a(t) = wrap24(conv(s(t-1), w)), true
  convolution, ``weight_exp`` and ``num_weight_bits`` ignored, binary input s != 0): torch's conv on
  the (X, Y, Z) array viewed channels-last, by the reference simulator's exact float32 plans
  (:mod:`toolchain.simulators.exact`) of the weights with their common power-of-two factor taken out
  and a compartments input folded (:func:`~.integers.compartment_fold`); weights are prepared when the
  runtime starts;
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

import functools
import typing as ty
from dataclasses import replace

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

from toolchain.backends.lava.free_running import free_running as free_running_model
from toolchain.backends.lava.integers import compartment_fold, pow2_factor, shift, wrap
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
from toolchain.simulators.exact import FLOAT32_EXACT, ExactSynapse, plan_synapse
from toolchain.simulators.kernels import SynapseOp

CONV_WRAP_BITS = 24


class TorchConvModel(PyConvModelFixed):
    """``Conv`` exactly as ``PyConvModelFixed`` computes it, with torch (module docstring)."""

    exact: ty.ClassVar[bool] = False

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        torch.set_num_threads(1)
        self._ready = False

    def start(self) -> None:
        self._prepare()                      # when the runtime starts (the Vars are set), not in the first step
        super().start()

    def _prepare(self) -> None:
        w = np.asarray(self.weight, np.int64)                            # (C_out, kx, ky, C_in / groups)
        fold = compartment_fold(w)
        self._fold: dict[torch.dtype, torch.Tensor] | None = None
        self._fold_sum = 1
        if fold is not None:
            f, w = fold
            self._fold = {dt: torch.from_numpy(f).to(dt) for dt in (torch.float32, torch.float64)}
            self._fold_sum = int(np.abs(f).sum())
        self._g = pow2_factor(w)
        w = w >> self._g
        self._wsum = int(np.abs(w).reshape(w.shape[0], -1).sum(axis=1).max(initial=0))
        # The (X, Y, Z) array is a channels-last (1, Z, X, Y) tensor: torch's cross-correlation kernel is
        # the flipped Lava kernel in (C_out, C_in, kx, ky) order; stride, padding, dilation stay (x, y).
        self._weight = w[:, ::-1, ::-1, :].transpose(0, 3, 1, 2).copy()    # fresh strides, even for 1x1
        self._stride = (int(self.stride[0]), int(self.stride[1]))
        self._padding = (int(self.padding[0]), int(self.padding[1]))
        self._dilation = (int(self.dilation[0]), int(self.dilation[1]))
        self._groups = int(self.groups[0])
        self._plans: dict[int, ty.Callable[[torch.Tensor], torch.Tensor]] = {}
        self._zeros = np.zeros(tuple(self.a_out.shape), np.int32)
        message_bits = int(self.num_message_bits.item())
        self._binary = message_bits <= 0
        self._plan((1 if self._binary else (1 << message_bits) - 1) * self._fold_sum)   # the usual payloads' plan
        self._ready = True

    def _plan(self, payload_max: int) -> ty.Callable[[torch.Tensor], torch.Tensor]:
        """x (1, Z, X, Y) -> conv(x, w) as int64, exact for |x| < 2**bits, bits = bitlen(payload_max):
        the reference simulator's exact float32 plan (:func:`toolchain.simulators.exact.plan_synapse`),
        or one float64 convolution where a dilation (which the plans do not take) is set."""
        bits = payload_max.bit_length()
        plan = self._plans.get(bits)
        if plan is None:
            bound = (1 << bits) - 1
            if self._dilation == (1, 1):
                op = SynapseOp("conv", tuple(self._weight.shape[2:]), self._stride, self._padding,  # type: ignore[arg-type]
                               groups=self._groups)
                plan = channels_last(plan_synapse(op, self._weight, bound))
            else:
                weight = torch.from_numpy(self._weight.astype(np.float64))
                plan = functools.partial(_dilated, weight=weight, stride=self._stride, padding=self._padding,
                                         dilation=self._dilation, groups=self._groups)
            self._plans[bits] = plan
        return plan

    def run_spk(self) -> None:
        if not self._ready:
            self._prepare()
        self.a_out.send(self.a_buf)  # type: ignore[has-type]
        s = self.s_in.recv()
        if not s.any():
            self.a_buf = self._zeros
            return
        s = np.asarray(s)
        payload_max = (1 if self._binary else int(np.abs(s).max())) * self._fold_sum
        # numpy's casts are several times faster than torch's on one thread; every partial sum of the
        # fold x[..., c] = sum_i f_i s[..., c N + i] is at most payload_max, so exact in ``dtype``
        dtype = torch.float32 if payload_max < FLOAT32_EXACT else torch.float64
        x = torch.from_numpy((s != 0 if self._binary else s).astype(np.float32 if dtype == torch.float32
                                                                     else np.float64))
        if self._fold is not None:
            x = x.reshape(x.shape[:2] + (-1, self._fold[dtype].shape[0])) @ self._fold[dtype]
        y = self._plan(payload_max)(x.unsqueeze(0).permute(0, 3, 1, 2))[0].permute(1, 2, 0)   # (X', Y', C_out)
        bound = self._wsum * payload_max                                   # |conv / 2**g| <= bound
        if (bound << self._g) < (1 << (CONV_WRAP_BITS - 1)):                  # no wrap possible
            a = y.to(torch.int32)
            self.a_buf = (torch.bitwise_left_shift(a, self._g) if self._g else a).numpy()
            return
        exact = y.numpy() << self._g
        if self.exact and np.abs(exact).max(initial=0) >= 1 << (CONV_WRAP_BITS - 1):
            raise ExactnessError(
                f"Conv {self.proc_params.get('name')!r} at Lava step {self.time_step}: a synaptic sum reaches "
                f"{int(np.abs(exact).max())} >= 2**23, which Lava's Conv wraps (24 bits) while the reference "
                f"simulator does not; lower this layer's weight exponent or split its input")
        self.a_buf = wrap(exact, CONV_WRAP_BITS).astype(np.int32)


def channels_last(plan: ExactSynapse) -> ExactSynapse:
    """``plan`` with its weights channels-last, as the (X, Y, Z) messages are (faster on one thread)."""
    terms = tuple(replace(t, weight=t.weight.contiguous(memory_format=torch.channels_last)) for t in plan.terms)
    return replace(plan, terms=terms)


def _dilated(x: torch.Tensor, weight: torch.Tensor, stride: tuple[int, int], padding: tuple[int, int],
             dilation: tuple[int, int], groups: int) -> torch.Tensor:
    return F.conv2d(x.to(torch.float64), weight, stride=stride, padding=padding, dilation=dilation,
                    groups=groups).to(torch.int64)


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

    def start(self) -> None:
        self._prepare()                      # when the runtime starts (the Vars are set), not in the first step
        super().start()

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

    def _prepare_bias(self) -> np.ndarray:
        bias = super()._prepare_bias().reshape(-1)
        self._theta = np.asarray(self._thresholds, np.int64)
        self._r = np.asarray(self._ratios, np.int64)
        self._out: np.ndarray = np.zeros(self._zero_out.size, self.out_dtype)
        self._packed = np.zeros(self._zero_rec.size, np.int32)
        self._counts = np.zeros(len(self._thresholds), np.int64)
        return bias

    def run_spk(self) -> None:
        active = self._active_current()
        if active is None:
            return
        total, col = active
        self._counts[:] = 0
        self.saturations[col] += mt_step_int(self.v.reshape(-1), total, self._theta, self._r, self._v_limit,
                                             self._graded, self._out, self._packed, self._counts)
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


def model_map(net: LavaNetwork, fast: bool = True, exact: bool = True,
              free_running: bool = False) -> dict[ty.Any, type]:
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
        mapping[proc] = free_running_model(model) if free_running else model
    return mapping

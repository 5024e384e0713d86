"""fixed_pt Python models (LoihiProtocol, CPU) of the lava-cpu backend's processes.

The MT maths is :func:`toolchain.neuron.mt_step` on int64 (never re-implemented here); synaptic
sums are :func:`toolchain.simulators.kernels.synapse_current` (the reference simulator's exact
integer convolution). Torch runs single-threaded in every worker.

Absolute imports only: Lava's compiler re-executes this file under a bare module name.
"""
from __future__ import annotations

import collections
import functools

import numpy as np
import torch
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from toolchain.backends.lava.procs.process import Accumulator, MTNeuron, Recorder, Synapse
from toolchain.neuron.mt import mt_output, mt_step
from toolchain.simulators.kernels import synapse_current


def _per_image(flags: np.ndarray) -> np.ndarray:
    """How many entries are set, per batch item (the leading axis)."""
    return np.count_nonzero(flags.reshape(flags.shape[0], -1), axis=1)


@implements(proc=MTNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyMTNeuronModelFixed(PyLoihiProcessModel):
    """MT neuron population; see :class:`~toolchain.backends.lava.procs.process.MTNeuron`."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32)
    rec_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32)
    v: np.ndarray = LavaPyType(np.ndarray, np.int64)
    bias_mant: np.ndarray = LavaPyType(np.ndarray, np.int64)
    bias_exp: np.ndarray = LavaPyType(np.ndarray, np.int64)
    spike_counts: np.ndarray = LavaPyType(np.ndarray, np.int64)
    saturations: np.ndarray = LavaPyType(np.ndarray, np.int64)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        torch.set_num_threads(1)
        self._thresholds = tuple(proc_params["thresholds"])
        self._ratios = tuple(proc_params["ratios"])
        self._start_step = int(proc_params["start"])
        self._window = int(proc_params["window"])
        self._graded = proc_params["lowering"] == "graded"
        self._v_limit = int(proc_params["v_limit"])
        self._record = bool(proc_params["record"])
        shape = tuple(proc_params["shape"])
        self._zero_out = np.zeros((shape if self._graded else (len(self._thresholds),) + shape), np.int8)
        self._zero_rec = np.zeros(shape, np.int32)
        self._bias: np.ndarray | None = None

    def run_spk(self) -> None:
        current = self.a_in.recv()
        k = self.time_step - self._start_step
        if not 0 <= k < self._window:          # inert outside the window: no bias, no spikes
            self.s_out.send(self._zero_out)
            self.rec_out.send(self._zero_rec)
            return
        bias = self._bias
        if bias is None:
            bias = self._bias = np.left_shift(self.bias_mant.astype(np.int64), self.bias_exp.astype(np.int64))
        current = current + bias
        unclipped = self.v + current
        self.saturations[:] += _per_image(np.abs(unclipped) > self._v_limit)
        v, spikes = mt_step(self.v, current, self._thresholds, v_limit=self._v_limit)
        self.v[...] = v
        for i, s in enumerate(spikes):
            self.spike_counts[i] += _per_image(s)
        # The channel converts to the port's type as it copies (int8 in the common case, see below).
        self.s_out.send(mt_output(spikes, self._ratios) if self._graded else np.stack(spikes))
        if self._record:
            packed = np.zeros(self._zero_rec.shape, np.int32)
            for i, s in enumerate(spikes):
                packed |= s.astype(np.int32) << i
            self.rec_out.send(packed)
        else:
            self.rec_out.send(self._zero_rec)


class PyMTNeuronModelFixedInt8(PyMTNeuronModelFixed):
    """:class:`PyMTNeuronModelFixed` whose spike messages are int8 (binary maps, or graded payloads up
    to 127): 4x less to copy per step. The backend picks it whenever the payload fits."""

    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int8)


@implements(proc=Synapse, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PySynapseModelFixed(PyLoihiProcessModel):
    """Conv / convT / sum-pool synapse with an extra delay; see :class:`~toolchain.backends.lava.procs.process.Synapse`.

    The compartment lowering's current sum_i (r_i << e) * op(s_i) is computed as
    (op(sum_i r_i s_i)) << e: op is linear and every value is an exact integer (int64 results of
    an exact float convolution), so both forms are the same integers, and one convolution per step
    replaces N_thr.
    """

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64)
    weight: np.ndarray = LavaPyType(np.ndarray, np.int64)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        torch.set_num_threads(1)
        self._op = proc_params["op"]
        self._exp = int(proc_params["weight_exp"])
        self._ratios = np.asarray(proc_params["ratios"], dtype=np.int64)
        self._graded = proc_params["lowering"] == "graded"
        self._out_shape = tuple(proc_params["out_shape"])
        self._payload_max = int(self._ratios.sum())
        self._zeros = np.zeros(self._out_shape, np.int64)
        # Currents in flight: sent 1 + delay steps after the input that produced them arrived.
        self._queue = collections.deque([self._zeros] * (1 + int(proc_params["delay"])))
        self._weight: np.ndarray | None = None

    def run_spk(self) -> None:
        self.a_out.send(self._queue.popleft())
        s_in = self.s_in.recv()
        if not s_in.any():
            self._queue.append(self._zeros)
            return
        weight = self._weight
        if weight is None:
            weight = self._weight = np.asarray(self.weight, dtype=np.int64)
        if self._graded:
            payload = s_in.astype(np.int64)
        else:   # (N_thr, N, C, H, W) binary -> q = sum_i r_i s_i
            payload = np.tensordot(self._ratios, s_in.astype(np.int64), axes=(0, 0))
        current = synapse_current(self._op, torch.from_numpy(payload), weight, self._payload_max)
        self._queue.append(current.numpy() << self._exp)


@implements(proc=Accumulator, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyAccumulatorModelFixed(PyLoihiProcessModel):
    """24-bit saturating output accumulator; see :class:`~toolchain.backends.lava.procs.process.Accumulator`."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64)
    acc: np.ndarray = LavaPyType(np.ndarray, np.int64)
    bias_mant: np.ndarray = LavaPyType(np.ndarray, np.int64)
    bias_exp: np.ndarray = LavaPyType(np.ndarray, np.int64)
    saturations: np.ndarray = LavaPyType(np.ndarray, np.int64)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self._start_step = int(proc_params["start"])
        self._window = int(proc_params["window"])
        self._v_limit = int(proc_params["v_limit"])

    def run_spk(self) -> None:
        current = self.a_in.recv()
        k = self.time_step - self._start_step
        if 0 <= k < self._window:
            total = self.acc + current + np.left_shift(self.bias_mant.astype(np.int64),
                                                       self.bias_exp.astype(np.int64))
            self.saturations[:] += _per_image(np.abs(total) > self._v_limit)
            self.acc[...] = np.clip(total, -self._v_limit, self._v_limit)
        self.a_out.send(self.acc)


@implements(proc=Recorder, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyRecorderModelFixed(PyLoihiProcessModel):
    """Base model of :class:`~toolchain.backends.lava.procs.process.Recorder`; a Recorder with n inputs
    runs :func:`recorder_model` (n), which declares the ports ``in0 .. in{n-1}``."""

    out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self._inputs = len(proc_params["shapes"])

    def run_spk(self) -> None:
        self.out.send(np.concatenate([getattr(self, f"in{i}").recv().ravel() for i in range(self._inputs)]))


@functools.cache
def recorder_model(inputs: int) -> type:
    """The Recorder model class with ``inputs`` int64 InPorts (Lava reads port types off the class)."""
    ports = {f"in{i}": LavaPyType(PyInPort.VEC_DENSE, np.int64) for i in range(inputs)}
    return type(f"PyRecorderModelFixed{inputs}", (PyRecorderModelFixed,), ports)

"""fixed_pt Python models (LoihiProtocol, CPU) of this project's own processes (:mod:`.process`): one per
process, so Lava's model discovery finds exactly one. Faster variants (numba MT kernel, int8 spike
messages) live outside this directory, in :mod:`toolchain.backends.lava.fast`.

The MT maths is :func:`toolchain.neuron.mt_step` on int64 (never re-implemented here), the static
current :func:`toolchain.simulators.kernels.static_current` (the reference simulator's).

Absolute imports only: Lava's compiler re-executes this file under a bare module name.
"""
from __future__ import annotations

import collections
import functools

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from toolchain.backends.lava.procs.process import (
    Accumulator,
    DelayLine,
    FrameSource,
    HostStatic,
    MTNeuron,
    Recorder,
)
from toolchain.lowering.fixed_point import Overflow
from toolchain.neuron.mt import mt_output, mt_step


def window_position(time_step: int, start: int, window: int, images: int | None) -> tuple[int, int] | None:
    """(image j, logical step k) of a windowed population at ``time_step``, or None when it is inert."""
    offset = time_step - start
    if offset < 0:
        return None
    j, k = divmod(offset, window)
    if images is not None and j >= images:
        return None
    return j, k


def count(flags: np.ndarray) -> int:
    return int(np.count_nonzero(flags))


class WindowedModel(PyLoihiProcessModel):
    """Reads the window parameters of a windowed process once."""

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self._start = int(proc_params["start"])
        self._window = int(proc_params["window"])
        self._images = proc_params["images"]
        self._shape = tuple(proc_params["shape"])

    def position(self) -> tuple[int, int] | None:
        return window_position(self.time_step, self._start, self._window, self._images)

    def column(self, j: int) -> int:
        """The counter column of image j (one column for an unbounded stream)."""
        return j if self._images is not None else 0


@implements(proc=MTNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyMTNeuronModel(WindowedModel):
    """See :class:`~toolchain.backends.lava.procs.process.MTNeuron`."""

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
        self._thresholds = tuple(proc_params["thresholds"])
        self._ratios = tuple(proc_params["ratios"])
        self._graded = proc_params["lowering"] == "graded"
        self._v_limit = int(proc_params["v_limit"])
        self._record = bool(proc_params["record"])
        n = len(self._thresholds)
        x, y, c = self._shape
        self._zero_out = np.zeros(self._shape if self._graded else (x, y, c * n), np.int32)
        self._zero_rec = np.zeros(self._shape, np.int32)
        self._bias: np.ndarray | None = None

    def _prepare_bias(self) -> np.ndarray:
        """m_b << e_b per neuron (int64), once, at the first active step."""
        return np.left_shift(self.bias_mant.astype(np.int64), self.bias_exp.astype(np.int64))

    def _active_current(self) -> tuple[np.ndarray, int] | None:
        """This step's synaptic current plus bias (int64) and its image's column; None at an inert step
        (zeros sent on both ports). The membrane is reset at the first step of every window."""
        current = self.a_in.recv()
        position = self.position()
        if position is None:
            self.s_out.send(self._zero_out)
            self.rec_out.send(self._zero_rec)
            return None
        j, k = position
        if k == 0:
            self.v[...] = 0
        if self._bias is None:
            self._bias = self._prepare_bias()
        return np.asarray(current, np.int64).reshape(self._bias.shape) + self._bias, self.column(j)

    def run_spk(self) -> None:
        active = self._active_current()
        if active is None:
            return
        current, col = active
        self.saturations[col] += count(np.abs(self.v + current) > self._v_limit)
        v, spikes = mt_step(self.v, current, self._thresholds, v_limit=self._v_limit)
        self.v[...] = v
        for i, s in enumerate(spikes):
            self.spike_counts[i, col] += count(s)
        if self._graded:
            self.s_out.send(mt_output(spikes, self._ratios))
        else:
            self.s_out.send(np.stack(spikes, axis=-1).reshape(self._zero_out.shape))
        if self._record:
            packed = np.zeros(self._shape, np.int32)
            for i, s in enumerate(spikes):
                packed |= s.astype(np.int32) << i
            self.rec_out.send(packed)
        else:
            self.rec_out.send(self._zero_rec)


@implements(proc=Accumulator, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyAccumulatorModel(WindowedModel):
    """See :class:`~toolchain.backends.lava.procs.process.Accumulator`."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int64)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64)
    acc: np.ndarray = LavaPyType(np.ndarray, np.int64)
    bias_mant: np.ndarray = LavaPyType(np.ndarray, np.int64)
    bias_exp: np.ndarray = LavaPyType(np.ndarray, np.int64)
    saturations: np.ndarray = LavaPyType(np.ndarray, np.int64)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self._v_limit = int(proc_params["v_limit"])

    def run_spk(self) -> None:
        current = self.a_in.recv()
        position = self.position()
        if position is not None:
            j, k = position
            if k == 0:
                self.acc[...] = 0
            total = self.acc + current + np.left_shift(self.bias_mant.astype(np.int64), self.bias_exp.astype(np.int64))
            self.saturations[self.column(j)] += count(np.abs(total) > self._v_limit)
            self.acc[...] = np.clip(total, -self._v_limit, self._v_limit)
        self.a_out.send(self.acc)


@implements(proc=HostStatic, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyHostStaticModel(WindowedModel):
    """See :class:`~toolchain.backends.lava.procs.process.HostStatic`."""

    img_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self._layer = proc_params["layer"]
        self._zeros = np.zeros(self._shape, np.int64)
        self._current = self._zeros

    def run_spk(self) -> None:
        from toolchain.simulators.kernels import static_current

        frame = self.img_in.recv()
        position = self.position()
        if position is None:
            self.a_out.send(self._zeros)
            return
        if position[1] == 0:     # a new window: this step's frame is its image
            levels = np.swapaxes(np.asarray(frame, np.int64), 0, 2)[None]          # (1, C, H, W)
            current = static_current(self._layer, np.ascontiguousarray(levels), Overflow()).numpy()[0]
            self._current = np.ascontiguousarray(np.swapaxes(current, 0, 2))
        self.a_out.send(self._current)


@implements(proc=DelayLine, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyDelayLineModel(PyLoihiProcessModel):
    """See :class:`~toolchain.backends.lava.procs.process.DelayLine`."""

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32)

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        zeros = np.zeros(tuple(proc_params["shape"]), np.int32)
        self._fifo = collections.deque([zeros] * int(proc_params["delay"]))

    def run_spk(self) -> None:
        self.s_out.send(self._fifo.popleft())
        self._fifo.append(np.array(self.s_in.recv(), copy=True))


@implements(proc=FrameSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyFrameSourceModel(PyLoihiProcessModel):
    """See :class:`~toolchain.backends.lava.procs.process.FrameSource`."""

    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32)

    def run_spk(self) -> None:
        frames = self.proc_params["frames"]
        j = min((self.time_step - 1) // int(self.proc_params["hold"]), len(frames) - 1)
        self.s_out.send(frames[j])


@implements(proc=Recorder, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyRecorderModel(PyLoihiProcessModel):
    """Base model of :class:`~toolchain.backends.lava.procs.process.Recorder`; a Recorder with n inputs runs
    :func:`recorder_model` (n), which declares the ports ``in0 .. in{n-1}``."""

    out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int64)

    def run_spk(self) -> None:
        n = len(self.proc_params["shapes"])
        self.out.send(np.concatenate([getattr(self, f"in{i}").recv().ravel() for i in range(n)]))


@functools.cache
def recorder_model(inputs: int) -> type:
    """The Recorder model class with ``inputs`` int64 InPorts (Lava reads port types off the class)."""
    ports = {f"in{i}": LavaPyType(PyInPort.VEC_DENSE, np.int64) for i in range(inputs)}
    return type(f"PyRecorderModel{inputs}", (PyRecorderModel,), ports)

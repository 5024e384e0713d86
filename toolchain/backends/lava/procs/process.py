"""Lava processes of the lava-cpu backend: MT neurons, conv/convT/sum-pool synapses, the output accumulator.

Every process carries a leading batch dimension N (the images of one run are simulated side by
side). Time: Lava's time steps start at 1; a process with ``start = s`` and ``window = T`` is
active during Lava steps s .. s + T - 1 (logical steps 0 .. T-1 of the reference simulator) and
inert (no bias, no spikes, input ignored) before and after. The backend sets s = depth + 1.
Models: :mod:`toolchain.backends.lava.procs.models` (tag ``fixed_pt``).

Absolute imports only: Lava's compiler re-executes this file under a bare module name.
"""
from __future__ import annotations

import typing as ty

import numpy as np
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var

from toolchain.ir.limits import V_LIMIT
from toolchain.simulators.kernels import SynapseOp

Shape = tuple[int, ...]


class MTNeuron(AbstractProcess):
    """A population of multi-threshold integrate-and-fire neurons (N thresholds, one shared membrane).

    Per active step (``toolchain.neuron.mt_step`` on int64, membrane saturating at ``v_limit``)::

        I = a_in + bias_mant << bias_exp
        V, (s_1 .. s_N) = mt_step(V, I, thresholds, v_limit)

    Bias gating: the bias (for the static first layer: the host-computed constant current of the
    image, one value per neuron) is added only from Lava step ``start`` on, and the population is
    inert outside its ``window`` steps. On Loihi 2 this corresponds to enabling the bias at step
    ``start`` (writing bias_mant from the host, or a bias-enable at that step) and stopping the
    run of that population after its window.

    Ports:

    * ``a_in`` (N, C, H, W) int64: summed synaptic current (several synapses connected are summed).
    * ``s_out``: lowering ``"compartments"``: (N_thr, N, C, H, W) binary spike maps, one per
      threshold (compartment), highest threshold first; ``"graded"``: (N, C, H, W) graded payload
      q = sum_i r_i s_i with r_i = theta_i / theta_N.
    * ``rec_out`` (N, C, H, W): the spikes packed as sum_i s_i << i, for the Recorder
      (only computed when ``record``).

    Vars: ``v`` membrane, ``spike_counts`` (N_thr, N) per threshold and image and ``saturations``
    (N,) membrane clip events per image, both counted over the window.
    """

    def __init__(self, *, shape: Shape, thresholds: ty.Sequence[int], bias_mant: np.ndarray,
                 bias_exp: np.ndarray, start: int, window: int, lowering: str = "compartments",
                 v_limit: int = V_LIMIT, record: bool = False, name: str | None = None) -> None:
        thresholds = tuple(int(t) for t in thresholds)
        smallest = thresholds[-1]
        ratios = tuple(t // smallest for t in thresholds)
        if any(r * smallest != t for r, t in zip(ratios, thresholds)):
            raise ValueError(f"thresholds {thresholds} are not integer multiples of the smallest")
        if lowering not in ("compartments", "graded"):
            raise ValueError(f"unknown lowering {lowering!r}")
        super().__init__(shape=shape, thresholds=thresholds, ratios=ratios, start=int(start),
                         window=int(window), lowering=lowering, v_limit=int(v_limit),
                         record=bool(record), name=name)
        shape = tuple(shape)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=(len(thresholds),) + shape if lowering == "compartments" else shape)
        self.rec_out = OutPort(shape=shape)
        self.v = Var(shape=shape, init=0)
        self.bias_mant = Var(shape=shape, init=np.broadcast_to(np.asarray(bias_mant, np.int64), shape).copy())
        self.bias_exp = Var(shape=shape, init=np.broadcast_to(np.asarray(bias_exp, np.int64), shape).copy())
        self.spike_counts = Var(shape=(len(thresholds), shape[0]), init=0)
        self.saturations = Var(shape=(shape[0],), init=0)


class Synapse(AbstractProcess):
    """Conv / transposed conv / sum-pool synapses with integer mantissas and one weight exponent.

    The input is what an :class:`MTNeuron` sends: binary compartment maps (N_thr, N, C, H, W),
    each worth r_i, or a graded payload (N, C, H, W). The output current, in the target's
    integer units, is::

        a = sum_i (r_i << weight_exp) * op(s_i, weight)      (compartments)
        a =       (1   << weight_exp) * op(q,   weight)      (graded)

    with op = conv2d / conv_transpose2d (weights (C_out, C_in, k, k) / (C_in, C_out, k, k)) or
    sum pooling times a scalar mantissa (``op.kind == "pool"``, ``weight`` of one element), as
    :func:`toolchain.simulators.kernels.synapse_current` computes them.
    Latency: the current computed from the input received at step t is sent at step
    t + 1 + ``delay`` (``delay`` = the extra synaptic delay of a concat part; on Loihi 2 it is the
    synapse's delay field, 1 + delay <= 62).
    """

    def __init__(self, *, in_shape: Shape, out_shape: Shape, op: SynapseOp, weight: np.ndarray,
                 weight_exp: int, ratios: ty.Sequence[int], lowering: str = "compartments",
                 delay: int = 0, name: str | None = None) -> None:
        if int(weight_exp) < 0:
            raise ValueError(f"on-chip weight exponents are >= 0, got {weight_exp}")
        if int(delay) < 0:
            raise ValueError(f"delay must be >= 0, got {delay}")
        weight = np.asarray(weight, dtype=np.int64)
        super().__init__(in_shape=tuple(in_shape), out_shape=tuple(out_shape), op=op,
                         weight_exp=int(weight_exp), ratios=tuple(int(r) for r in ratios),
                         lowering=lowering, delay=int(delay), name=name)
        self.s_in = InPort(shape=tuple(in_shape))
        self.a_out = OutPort(shape=tuple(out_shape))
        self.weight = Var(shape=weight.shape, init=weight)


class Accumulator(AbstractProcess):
    """The non-spiking output layer: a 24-bit saturating register A, active during its window.

    Per active step: A <- clip(A + a_in + bias_mant << bias_exp, -v_limit, v_limit), counting clip
    events per image in ``saturations`` (N,). ``a_out`` sends A every step (for the Recorder; the last one is the
    result).
    """

    def __init__(self, *, shape: Shape, bias_mant: np.ndarray, bias_exp: np.ndarray, start: int,
                 window: int, v_limit: int = V_LIMIT, name: str | None = None) -> None:
        super().__init__(shape=tuple(shape), start=int(start), window=int(window),
                         v_limit=int(v_limit), name=name)
        shape = tuple(shape)
        self.a_in = InPort(shape=shape)
        self.a_out = OutPort(shape=shape)
        self.acc = Var(shape=shape, init=0)
        self.bias_mant = Var(shape=shape, init=np.broadcast_to(np.asarray(bias_mant, np.int64), shape).copy())
        self.bias_exp = Var(shape=shape, init=np.broadcast_to(np.asarray(bias_exp, np.int64), shape).copy())
        self.saturations = Var(shape=(shape[0],), init=0)


class Recorder(AbstractProcess):
    """Hands per-step data of several ports to the host, one message per step (replaces one Extractor
    per port: fewer Lava processes, integer messages).

    InPorts ``in0 .. in{n-1}`` of the given shapes; every step the model sends their values,
    flattened and concatenated, as one int64 vector on ``out``, an external pipe (as Lava's
    Extractor's) of ``buffer_size`` messages that the host drains with :meth:`receive` while the
    network runs (a full pipe blocks the run).
    """

    def __init__(self, *, shapes: ty.Sequence[Shape], buffer_size: int = 4, name: str | None = None) -> None:
        shapes = [tuple(int(d) for d in shape) for shape in shapes]
        super().__init__(shapes=shapes, name=name)
        for i, shape in enumerate(shapes):
            setattr(self, f"in{i}", InPort(shape=shape))
        self.out = OutPort(shape=(int(sum(int(np.prod(shape)) for shape in shapes)),))
        self.out.flag_external_pipe(buffer_size=buffer_size)
        self._shapes = shapes

    def receive(self) -> list[np.ndarray]:
        """The next step's data: one array per InPort, in its shape (blocks until the step is done)."""
        flat = self.out.external_pipe_csp_recv_port.recv()
        parts, offset = [], 0
        for shape in self._shapes:
            size = int(np.prod(shape))
            parts.append(flat[offset:offset + size].reshape(shape))
            offset += size
        return parts

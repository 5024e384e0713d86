"""This project's own Lava processes: what Lava's stock library does not have.

Deployed graph: :class:`MTNeuron` (the multi-threshold neuron), :class:`Accumulator` (the output
layer), :class:`HostStatic` (the static first layer's current, which the host computes) and
:class:`DelayLine` (a skip connection's delay in front of a stock Conv). Host I/O around it:
:class:`FrameSource` (images into ``LavaNetwork.inp``) and :class:`Recorder` (many ports to the host
in one message a step). Models: :mod:`.models` (tag ``fixed_pt``, one per process, so a plain
``Loihi2SimCfg(select_tag='fixed_pt')`` finds them).

Layout (X, Y, Z) = (W, H, C). Windows: a population with ``start`` s, ``window`` T and ``images`` n
processes image j in Lava steps s + j T .. s + j T + T - 1 (its logical steps 0 .. T-1), starting
each from a zero state, for j < n (every j when n is None), and is inert (zeros out, input
ignored, no bias) outside them.

Absolute imports only: Lava's compiler re-executes this file under a bare module name.
"""
from __future__ import annotations

import typing as ty

import numpy as np
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var

from toolchain.ir.limits import V_LIMIT

Shape = tuple[int, ...]


def _per_channel(values: ty.Any, shape: Shape) -> np.ndarray:
    """Per-channel (C,) values (or any broadcastable array) as one value per neuron (X, Y, C)."""
    return np.broadcast_to(np.asarray(values, np.int64), shape).copy()


class _Windowed(AbstractProcess):
    """What the windowed populations share: ``shape``, ``start``, ``window``, ``images``."""

    def __init__(self, *, shape: Shape, start: int, window: int, images: int | None, **params: ty.Any) -> None:
        if int(window) < 1 or int(start) < 1 or (images is not None and int(images) < 1):
            raise ValueError(f"start and window must be >= 1 and images None or >= 1, got {start}, {window}, {images}")
        super().__init__(shape=tuple(shape), start=int(start), window=int(window),
                         images=None if images is None else int(images), **params)

    @property
    def columns(self) -> int:
        """Columns of the per-image counters (one per image; one for an unbounded stream)."""
        return self.proc_params["images"] or 1


class MTNeuron(_Windowed):
    """Multi-threshold IF neurons, thresholds theta_1 > .. > theta_N on one membrane, per active step::

        I = a_in + bias_mant << bias_exp
        V, (s_1 .. s_N) = mt_step(V, I, thresholds, v_limit)      (toolchain.neuron.mt_step, int64)

    Ports: ``a_in`` (X, Y, C), several synapses summed; ``s_out``: lowering ``"compartments"``
    (X, Y, C N) binary, compartment i of channel c at c N + i; ``"graded"`` (X, Y, C), the payload
    q = sum_i r_i s_i (r_i = theta_i / theta_N); ``rec_out`` (X, Y, C) the spikes packed as
    sum_i s_i << i when ``record``, else zeros. Vars: ``v``, ``bias_mant``, ``bias_exp`` (per neuron),
    ``spike_counts`` (N, images) and ``saturations`` (images,) (membrane clip events).
    """

    def __init__(self, *, shape: Shape, thresholds: ty.Sequence[int], bias_mant: ty.Any = 0, bias_exp: ty.Any = 0,
                 start: int = 1, window: int = 1, images: int | None = None, lowering: str = "compartments",
                 v_limit: int = V_LIMIT, record: bool = False, name: str | None = None) -> None:
        thresholds = tuple(int(t) for t in thresholds)
        ratios = tuple(t // thresholds[-1] for t in thresholds)
        if any(r * thresholds[-1] != t for r, t in zip(ratios, thresholds)):
            raise ValueError(f"thresholds {thresholds} are not integer multiples of the smallest")
        if lowering not in ("compartments", "graded"):
            raise ValueError(f"unknown lowering {lowering!r}")
        super().__init__(shape=shape, start=start, window=window, images=images, thresholds=thresholds,
                         ratios=ratios, lowering=lowering, v_limit=int(v_limit), record=bool(record), name=name)
        shape = tuple(shape)
        n = len(thresholds)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape if lowering == "graded" else shape[:-1] + (shape[-1] * n,))
        self.rec_out = OutPort(shape=shape)
        self.v = Var(shape=shape, init=0)
        self.bias_mant = Var(shape=shape, init=_per_channel(bias_mant, shape))
        self.bias_exp = Var(shape=shape, init=_per_channel(bias_exp, shape))
        self.spike_counts = Var(shape=(n, self.columns), init=0)
        self.saturations = Var(shape=(self.columns,), init=0)


class Accumulator(_Windowed):
    """The non-spiking output layer, per active step: A <- clip(A + a_in + bias_mant << bias_exp, +-v_limit)
    (a 24-bit saturating register), clip events counted per image in ``saturations``. ``a_out`` sends A
    every step; image j's result is A at its last window step."""

    def __init__(self, *, shape: Shape, bias_mant: ty.Any = 0, bias_exp: ty.Any = 0, start: int = 1,
                 window: int = 1, images: int | None = None, v_limit: int = V_LIMIT, name: str | None = None) -> None:
        super().__init__(shape=shape, start=start, window=window, images=images, v_limit=int(v_limit), name=name)
        shape = tuple(shape)
        self.a_in = InPort(shape=shape)
        self.a_out = OutPort(shape=shape)
        self.acc = Var(shape=shape, init=0)
        self.bias_mant = Var(shape=shape, init=_per_channel(bias_mant, shape))
        self.bias_exp = Var(shape=shape, init=_per_channel(bias_exp, shape))
        self.saturations = Var(shape=(self.columns,), init=0)


class HostStatic(_Windowed):
    """The static first layer's current, ``toolchain.simulators.kernels.static_current`` of ``layer``
    (conv of the image levels, exponent, bias, rounded into the 13-bit bias format), from the frame
    ``img_in`` receives at the first step of each window; sent on ``a_out`` (X, Y, C) int64 in the same
    step (no synaptic latency: on Loihi it is a per-neuron bias the host writes)."""

    def __init__(self, *, layer: ty.Any, in_shape: Shape, shape: Shape, start: int = 1, window: int = 1,
                 images: int | None = None, name: str | None = None) -> None:
        super().__init__(shape=shape, start=start, window=window, images=images, layer=layer, name=name)
        self.img_in = InPort(shape=tuple(in_shape))
        self.a_out = OutPort(shape=tuple(shape))


class DelayLine(AbstractProcess):
    """A FIFO of ``delay`` frames: ``s_out`` at step t is what ``s_in`` received at step t - delay (zeros
    before). In front of a stock Conv it carries a concat part's delay D: arrival t + 1 + D, as a
    DelaySparse of delay D."""

    def __init__(self, *, shape: Shape, delay: int, name: str | None = None) -> None:
        if int(delay) < 1:
            raise ValueError(f"a delay line needs a delay >= 1, got {delay}")
        super().__init__(shape=tuple(shape), delay=int(delay), name=name)
        self.s_in = InPort(shape=tuple(shape))
        self.s_out = OutPort(shape=tuple(shape))


class FrameSource(AbstractProcess):
    """Sends ``frames[j]`` (frames (n, X, Y, Z) int) during Lava steps j ``hold`` + 1 .. (j + 1) ``hold``
    (the last frame after them): n images for a network with T = ``hold``, in the memory of n frames."""

    def __init__(self, *, frames: np.ndarray, hold: int, name: str | None = None) -> None:
        frames = np.asarray(frames)
        if frames.ndim < 2 or len(frames) < 1 or int(hold) < 1:
            raise ValueError(f"frames must be (n, ...) with n >= 1 and hold >= 1, got {frames.shape}, {hold}")
        super().__init__(frames=frames.astype(np.int32), hold=int(hold), name=name)
        self.s_out = OutPort(shape=tuple(frames.shape[1:]))


class Recorder(AbstractProcess):
    """Every step, the values of InPorts ``in0 .. in{n-1}`` (of ``shapes``), flattened and concatenated, as
    one int64 message on ``out``, an external pipe of ``buffer_size`` messages the host drains with
    :meth:`receive` while the network runs (Lava's Extractor mechanism; one process for many ports).
    Its model has one InPort per shape: map it to ``models.recorder_model(n)``."""

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

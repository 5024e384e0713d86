"""``LavaNetwork``: a ``.net`` file as one hierarchical Lava process, built the way lava-dl's
``netx.hdf5.Network`` is (sub-processes created in ``__init__``, ports connected hierarchically, an
empty SubProcessModel), from Lava's stock synapse processes and this project's own neurons.

This toolchain's U-Net files (``format = "spiking-unet-netx"``, or a QuantizedNetwork in memory)
become the graph of :mod:`toolchain.backends.lava.plan`. Ports, in Lava's (X, Y, Z) = (W, H, C) layout:

* ``inp`` (W, H, C_img): integer pixel levels round(255 x) (:meth:`LavaNetwork.encode`). The frame
  received at Lava step j T + 1 is image j (the static layer's current is computed from it once);
  a ``RingBuffer`` of one column feeds one image to every window, :class:`~.process.FrameSource` n
  images.
* ``out`` (W, H, C_out) int64: the output accumulator A, every step. Image j's result is A at Lava
  step :meth:`LavaNetwork.output_step` (j) = latency + (j + 1) T, decoded as A / (unit T)
  (:meth:`LavaNetwork.decode`). Run :meth:`LavaNetwork.lava_steps` (n) = latency + n T steps for n
  images (they stream: layer l works on image j during Lava steps depth(l) + 1 + j T .. + T - 1).

Stock netx files (no ``format`` key) are wrapped: ``self.netx`` is lava-dl's own
``netx.hdf5.Network(net_config=path, reset_interval, reset_offset)``, and ``inp`` / ``out`` are its
ports (netx's encodings and physical time: every layer on from step 1, one step per synapse).

Absolute imports only: Lava's compiler re-executes this file under a bare module name.
"""
from __future__ import annotations

import os
import typing as ty

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.sub.model import AbstractSubProcessModel
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from toolchain.backends.lava.procs.process import Accumulator, DelayLine, HostStatic, MTNeuron

PathLike = ty.Union[str, "os.PathLike[str]"]


def is_stock_netx(path: PathLike) -> bool:
    """Whether a ``.net`` file is a stock lava-dl netx file (no ``format`` key) rather than this toolchain's."""
    import h5py

    from toolchain.errors import NetFileError

    try:
        with h5py.File(path, "r") as f:
            return "format" not in f and "formatVersion" not in f
    except OSError as exc:
        raise NetFileError(f"cannot open {path}: {exc}") from exc


class LavaNetwork(AbstractProcess):
    """A ``.net`` file (path) or a QuantizedNetwork as a Lava process with ``inp`` and ``out`` (module docstring).

    ``steps``: T (default: the file's ``meta.steps``); ``images``: how many images the layers process
    (None: an unbounded stream, one window after the other); ``lowering``: default the file's;
    ``delays``: how concat parts with a delay are carried, ``"line"`` (an own DelayLine before a stock
    Conv) or ``"sparse"`` (stock DelaySparse: explicit synapse matrices, small networks only);
    ``record``: the MT neurons' ``rec_out`` ports send their spikes (for recording).
    ``reset_interval`` / ``reset_offset``: netx's, for stock files only.

    Attributes: ``network`` (the QuantizedNetwork), ``plan`` (:class:`~toolchain.backends.lava.plan.LavaPlan`),
    ``neurons`` {layer: MTNeuron | Accumulator}, ``synapses`` {group: Conv | DelaySparse},
    ``delay_lines``, ``host_static``; for stock files ``netx`` and ``layers`` (netx's blocks).
    """

    def __init__(self, *, net_config: ty.Any, steps: int | None = None, images: int | None = None,
                 lowering: str | None = None, delays: str = "line", record: bool = False,
                 reset_interval: int | None = None, reset_offset: int = 0, name: str | None = None) -> None:
        from toolchain.ir import QuantizedNetwork

        stock = not isinstance(net_config, QuantizedNetwork) and is_stock_netx(net_config)
        super().__init__(net_config=str(net_config) if not isinstance(net_config, QuantizedNetwork) else "<network>",
                         stock=stock, name=name)
        self.stock = stock
        if stock:
            self._wrap_netx(str(net_config), reset_interval, reset_offset)
            return
        if reset_interval is not None:
            from toolchain.errors import ConfigError
            raise ConfigError("reset_interval is netx's option for stock files; this toolchain's networks "
                              "restart every T-step window")
        self._build(net_config, steps, images, lowering, delays, record)

    # ------------------------------------------------------------------------------------- construction
    def _wrap_netx(self, path: str, reset_interval: int | None, reset_offset: int) -> None:
        from lava.lib.dl import netx

        self.netx = netx.hdf5.Network(net_config=path, reset_interval=reset_interval, reset_offset=reset_offset)
        self.layers = self.netx.layers
        self.inp = InPort(shape=self.netx.inp.shape)
        self.out = OutPort(shape=self.netx.out.shape)
        self.inp.connect(self.netx.inp)
        self.netx.out.connect(self.out)

    def _build(self, net_config: ty.Any, steps: int | None, images: int | None, lowering: str | None,
               delays: str, record: bool) -> None:
        from lava.proc.conv.process import Conv
        from lava.proc.sparse.process import DelaySparse
        from lava.utils.weightutils import SignMode

        from netx_export import read_network
        from toolchain.backends.lava.layout import shuffle_shapes, uniform_delays, xyz
        from toolchain.backends.lava.plan import plan_network
        from toolchain.checks import check_steps
        from toolchain.errors import ConfigError
        from toolchain.ir import QuantizedNetwork

        network = net_config if isinstance(net_config, QuantizedNetwork) else read_network(net_config)
        steps = steps if steps is not None else network.meta.steps
        if steps is None:
            raise ConfigError("the network records no T (meta.steps): pass steps")
        check_steps(steps)
        if images is not None and (not isinstance(images, int) or images < 1):
            raise ConfigError(f"images must be None or a positive integer, got {images!r}")
        self.network, self.steps, self.images = network, int(steps), images
        self.plan = plan = plan_network(network, lowering, delays)  # type: ignore[arg-type]
        self.lowering = plan.lowering
        self.latency = plan.latency
        self.neurons: dict[str, ty.Any] = {}
        for spec in plan.neurons:
            if spec.thresholds:
                self.neurons[spec.name] = MTNeuron(
                    shape=spec.shape, thresholds=spec.thresholds, bias_mant=spec.bias_mant, bias_exp=spec.bias_exp,
                    start=spec.start, window=self.steps, images=images, lowering=plan.lowering, record=record,
                    name=spec.name)
            else:
                self.neurons[spec.name] = Accumulator(
                    shape=spec.shape, bias_mant=spec.bias_mant, bias_exp=spec.bias_exp, start=spec.start,
                    window=self.steps, images=images, name=spec.name)
        static = plan.static
        assert static is not None
        self.host_static = HostStatic(layer=static, in_shape=xyz(network.input.shape), shape=xyz(static.shape),
                                      start=1, window=self.steps, images=images, name="host_static")
        self.host_static.a_out.connect(self.neurons[static.name].a_in)
        self.synapses: dict[str, ty.Any] = {}
        self.delay_lines: dict[str, DelayLine] = {}
        for group in plan.convs:
            port = self.neurons[group.source].s_out
            if group.delay:
                line = DelayLine(shape=port.shape, delay=group.delay, name=f"{group.name}/delay")
                port.connect(line.s_in)
                port = line.s_out
                self.delay_lines[group.name] = line
            conv = Conv(weight=group.weight, input_shape=group.input_shape, padding=group.padding,
                        stride=group.stride, groups=group.groups, num_message_bits=group.message_bits,
                        name=group.name)
            port.connect(conv.s_in)
            out = conv.a_out
            if group.shuffle is not None:
                first, axes, final = shuffle_shapes(conv.a_out.shape, group.shuffle, group.shuffle_groups)
                out = out.reshape(first).transpose(axes).reshape(final)
            out.connect(self.neurons[group.target].a_in)
            self.synapses[group.name] = conv
        for sparse in plan.sparse:
            target = self.neurons[sparse.target].a_in
            syn = DelaySparse(weights=sparse.weights, delays=uniform_delays(sparse.weights, sparse.delay),
                              max_delay=sparse.delay, weight_exp=sparse.weight_exp, sign_mode=SignMode.MIXED,
                              num_message_bits=sparse.message_bits, name=sparse.name)
            self.neurons[sparse.source].s_out.flatten().connect(syn.s_in)
            syn.a_out.reshape(target.shape).connect(target)
            self.synapses[sparse.name] = syn
        self.inp = InPort(shape=xyz(network.input.shape))
        self.out = OutPort(shape=xyz(network.output.shape))
        self.inp.connect(self.host_static.img_in)
        self.neurons[network.output.name].a_out.connect(self.out)

    # ------------------------------------------------------------------------------------------- timing
    def lava_steps(self, images: int = 1) -> int:
        """Lava steps that run ``images`` images to the end of their output window: latency + images T."""
        return self.latency + int(images) * self.steps

    def output_step(self, image: int = 0) -> int:
        """The Lava step (counted from 1) whose ``out`` is image ``image``'s final accumulator."""
        return self.latency + (int(image) + 1) * self.steps

    def layer_step(self, layer: str, image: int, step: int) -> int:
        """The Lava step at which ``layer`` does logical step ``step`` of image ``image``."""
        return self.network[layer].depth + 1 + int(image) * self.steps + int(step)

    # --------------------------------------------------------------------------------------- encodings
    def encode(self, images: np.ndarray) -> np.ndarray:
        """Float images (C, H, W) or (n, C, H, W) in [0, 1] -> the int32 levels ``inp`` takes, (W, H, C) or
        (n, W, H, C) (``toolchain.simulators.kernels.image_levels``, as the reference simulator)."""
        from toolchain.backends.lava.layout import to_xyz
        from toolchain.simulators.kernels import image_levels

        return to_xyz(image_levels(np.asarray(images))).astype(np.int32)

    def decode(self, accumulator: np.ndarray) -> np.ndarray:
        """``out`` values (W, H, C) (or (..., W, H, C)) -> the decoded output (C, H, W): A / (unit T)."""
        from toolchain.backends.lava.layout import from_xyz
        from toolchain.simulators.kernels import fixed

        unit = fixed(self.network.output).unit  # type: ignore[arg-type]
        return from_xyz(np.asarray(accumulator, np.float64)) / (unit * self.steps)

    # ------------------------------------------------------------------------------------------- models
    def processes(self) -> list[AbstractProcess]:
        """The leaf processes this network created (stock files: none of its own; netx's are found by Lava)."""
        if self.stock:
            return []
        return [*self.neurons.values(), self.host_static, *self.delay_lines.values(), *self.synapses.values()]

    def model_map(self, fast: bool = True, exact: bool = True, free_running: bool = False) -> dict[ty.Any, type]:
        """{process: model} for ``Loihi2SimCfg(exception_proc_model_map=...)``, merged with a script's own.

        ``fast``: this toolchain's faster models of the stock and own processes
        (:mod:`toolchain.backends.lava.fast`, each tested equal to Lava's own); else Lava's own models
        and :mod:`.models`. ``exact`` (with ``fast``): a synapse group whose sum would wrap (Conv:
        |a| >= 2**23; DelaySparse: 2**31) raises ``toolchain.errors.ExactnessError`` instead of
        giving other spikes than the reference simulator. ``free_running``: every model in its
        AsyncProtocol form (:mod:`toolchain.backends.lava.free_running`: the same integers without
        Lava's per-step barrier; processes of a script's own, e.g. a RingBuffer on ``inp``, may stay
        in LoihiProtocol: Lava runs each protocol's sync domain, and the channels keep the order).
        """
        from toolchain.backends.lava.fast import model_map

        return model_map(self, fast=fast, exact=exact, free_running=free_running)

    def run_config(self, fast: bool = True, exact: bool = True, free_running: bool = False,
                   extra: ty.Mapping[ty.Any, type] | None = None) -> ty.Any:
        """``Loihi2SimCfg(select_tag='fixed_pt')`` with :meth:`model_map` (plus ``extra``) as exceptions."""
        from lava.magma.core.run_configs import Loihi2SimCfg

        return Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map={
            **self.model_map(fast, exact, free_running), **dict(extra or {})})


@implements(proc=LavaNetwork, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class LavaNetworkModel(AbstractSubProcessModel):
    """As netx's ``PyNetworkModel``: the sub-processes exist already (made in ``LavaNetwork.__init__``);
    the compiler reaches them through the port connections."""

    def __init__(self, proc: AbstractProcess) -> None:
        pass

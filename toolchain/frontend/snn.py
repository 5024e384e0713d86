"""The Spiking-UNet in PyTorch (float): a layer graph executed step by step with explicit neuron state.

:class:`SpikingNetwork` runs any float layer graph (:class:`toolchain.ir.FloatNetwork`) as an SNN:
its synapses are torch modules (trainable; their ``state_dict`` keys are the layer names, e.g.
``encoders.0.conv1.weight``, so for this toolchain's U-Net they are the ANN's keys), its neuron
layers are :mod:`cells <toolchain.frontend.cells>` and every simulation owns the neuron states.

Time semantics (the reference every other simulator is compared with, after the latency shift of
:mod:`toolchain.ir.network`): at step t every layer integrates the spikes its sources emitted at the
same step t; the first convolution sees the raw image at every step (static coding: a constant
current conv1(x) + b, computed once per simulation when no gradient is needed); the output layer
is a non-spiking accumulator, decoded as sum_t head(o(t)) / T (the noise map for denoising, class
logits whose argmax is the segmentation).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..checks import check_steps
from ..errors import ConfigError
from ..ir import (
    Accumulator,
    Concat,
    Conv,
    ConvTranspose,
    FloatNetwork,
    FloatSynapses,
    Input,
    MultiThreshold,
    SumPool,
    SynapticLayer,
    resize,
)
from ..neuron.mt import heaviside
from ..neuron.surrogate import surrogate_heaviside
from ..tasks.spec import TaskSpec
from ..vocab import StepKernel
from .cells import Cell, MTCell, NeuronState, RunOptions
from .unet import ScaledAvgPool2d, UNetConfig, pad_to_multiple

CellFactory = Callable[[SynapticLayer], Cell]
_NO_WEIGHTS = FloatSynapses(np.zeros(0, np.float32))


@dataclass
class SpikeStats:
    """Spike counts of one neuron layer over a simulation (summed over the batch)."""

    layer: str
    neurons: int
    steps: int
    batch: int
    counts: list[float]        # per threshold, highest first

    @property
    def spikes(self) -> float:
        return float(sum(self.counts))

    @property
    def rate(self) -> float:
        """Spikes per neuron per step."""
        return self.spikes / max(1, self.neurons * self.steps * self.batch)


@dataclass
class SimulationResult:
    output: torch.Tensor          # sum_t head(o(t)) / T, cropped to the input size
    steps: int
    stats: list[SpikeStats]
    states: dict[str, NeuronState]


SynapseModule = nn.Conv2d | nn.ConvTranspose2d | ScaledAvgPool2d


def synapse_module(layer: SynapticLayer) -> SynapseModule:
    """A torch module computing the layer's synaptic current, holding its float weights."""
    syn = layer.synapses
    assert isinstance(syn, FloatSynapses)
    if isinstance(layer, SumPool):
        kh, kw = layer.kernel
        return ScaledAvgPool2d(kh, float(syn.weight.reshape(-1)[0]) * kh * kw)
    weight = torch.from_numpy(np.array(syn.weight, np.float32))
    bias = None if syn.bias is None else torch.from_numpy(np.array(syn.bias, np.float32))
    module: nn.Conv2d | nn.ConvTranspose2d
    if isinstance(layer, Conv):
        c_out, c_in = weight.shape[0], weight.shape[1] * layer.groups
        module = nn.utils.skip_init(nn.Conv2d, c_in, c_out, layer.kernel, stride=layer.stride,
                                    padding=layer.padding, groups=layer.groups, bias=bias is not None)
    elif isinstance(layer, ConvTranspose):
        c_in, c_out = weight.shape[0], weight.shape[1] * layer.groups
        module = nn.utils.skip_init(nn.ConvTranspose2d, c_in, c_out, layer.kernel, stride=layer.stride,
                                    padding=layer.padding, output_padding=layer.output_padding,
                                    groups=layer.groups, bias=bias is not None)
    else:
        raise ConfigError(f"layer {layer.name}: a {layer.kind} layer has no PyTorch SNN synapse")
    with torch.no_grad():
        module.weight.copy_(weight)
        if bias is not None:
            assert module.bias is not None
            module.bias.copy_(bias)
    return module


class _Group(nn.Module):
    """A container of the synapse tree; ``group[0]`` reads child ``"0"`` (as in an nn.ModuleList)."""

    def __getitem__(self, index: int | str) -> nn.Module:
        return self.get_submodule(str(index))


class SynapseTree(_Group):
    """The synapse modules, nested by the dotted layer names (so state_dict keys are the names)."""

    def add(self, name: str, module: nn.Module) -> None:
        *path, leaf = name.split(".")
        parent: nn.Module = self
        for part in path:
            if not hasattr(parent, part):
                parent.add_module(part, _Group())
            parent = getattr(parent, part)
        parent.add_module(leaf, module)

    def get(self, name: str) -> SynapseModule:
        module = self.get_submodule(name)
        assert isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, ScaledAvgPool2d))
        return module


def mt_cells(layer: SynapticLayer) -> Cell:
    assert isinstance(layer.neuron, MultiThreshold)
    return MTCell(layer.neuron.thresholds)


class SpikingNetwork(nn.Module):
    """A float layer graph run as an SNN (see the module docstring).

    ``network``: its structure and initial weights; ``multiple``: input sides are replicate-padded
    to multiples of it (2**depth for a U-Net); ``cells``: the neuron model of each MT layer;
    ``spec``: the task and channels (taken from ``config`` for this toolchain's U-Net, whose
    architecture record its checkpoints carry; other networks' checkpoints carry the graph).
    """

    def __init__(self, network: FloatNetwork, multiple: int = 1, cells: CellFactory = mt_cells,
                 config: UNetConfig | None = None, spec: TaskSpec | None = None) -> None:
        super().__init__()
        self.multiple = multiple
        self.config = config
        self.spec = config.spec if config is not None and spec is None else spec
        self.core = SynapseTree()
        self.cells = nn.ModuleDict()       # by layer index (layer names hold dots)
        for i, layer in enumerate(network.layers):
            if isinstance(layer, SynapticLayer):
                self.core.add(layer.name, synapse_module(layer))
                if not isinstance(layer.neuron, Accumulator):
                    self.cells[str(i)] = cells(layer)
        # The graph without its weights (they live in .core; to_network() puts the current ones back).
        self.network = network.with_layers([replace(lay, synapses=_NO_WEIGHTS) if isinstance(lay, SynapticLayer)
                                            else lay for lay in network.layers])

    def cell(self, index: int) -> Cell:
        """The cell of the neuron layer at ``index`` in the network."""
        cell = self.cells[str(index)]
        assert isinstance(cell, Cell)
        return cell

    @property
    def thresholds(self) -> tuple[float, ...]:
        """The thresholds of the first MT layer (every layer of a converted network has the same)."""
        return self.cell(min(int(i) for i in self.cells)).thresholds

    def neurons(self) -> list[tuple[str, Cell]]:
        """(layer name, cell) of every neuron layer, in network order."""
        return [(self.network.layers[int(i)].name, self.cell(int(i))) for i in self.cells]

    def to_network(self, input_hw: tuple[int, int] | None = None) -> FloatNetwork:
        """The graph with the current weights (for an input of ``input_hw``, padded sides)."""
        layers = []
        for layer in self.network.layers:
            if isinstance(layer, SynapticLayer):
                module = self.core.get(layer.name)
                if isinstance(module, ScaledAvgPool2d):
                    assert isinstance(layer, SumPool)
                    weight = float(module.scale) / module.kernel ** 2
                    layer = replace(layer, synapses=FloatSynapses(np.array([weight], np.float32)), pool_weight=weight)
                else:
                    bias = getattr(module, "bias", None)
                    layer = replace(layer, synapses=FloatSynapses(
                        module.weight.detach().numpy().astype(np.float32),
                        None if bias is None else bias.detach().numpy().astype(np.float32)))
            layers.append(layer)
        network = self.network.with_layers(layers)
        return network if input_hw is None else resize(network, input_hw)

    # ------------------------------------------------------------------------------------ stepping

    def _forward(self, padded: torch.Tensor, states: dict[int, NeuronState], run: RunOptions,
                 static: torch.Tensor | None = None, flow: bool = False) -> torch.Tensor:
        """One step (or the flow pass): every layer in order; returns the output layer's current."""
        values: dict[str, torch.Tensor] = {}
        out = padded
        for i, layer in enumerate(self.network.layers):
            if isinstance(layer, Input):
                out = padded
            elif isinstance(layer, Concat):
                out = torch.cat([values[s] for s in layer.inputs], dim=1)
            else:
                assert isinstance(layer, SynapticLayer)
                if static is not None and isinstance(layer, Conv) and layer.static:
                    current = static
                else:
                    current = self.core.get(layer.name)(values[layer.source_name])
                if isinstance(layer.neuron, Accumulator):
                    out = current
                else:
                    cell = self.cell(i)
                    out = cell.flow(states[i], current) if flow else cell.step(states[i], current, run)
            values[layer.name] = out
        return out

    def ann_forward(self, x: torch.Tensor, activations: dict[str, torch.Tensor] | None = None,
                    crop: bool = True) -> torch.Tensor:
        """The graph as the ANN it was converted from: ReLU(W a + b) in place of every neuron layer
        (a pool's input is >= 0, so there it is the identity), the output layer linear. Sides are
        padded to ``multiple`` and the output cropped back (unless ``crop`` is off: the padded
        output, what the hardware's accumulator holds); ``activations`` receives every neuron
        layer's output by name (calibration)."""
        padded, (h, w) = pad_to_multiple(x, self.multiple)
        values: dict[str, torch.Tensor] = {}
        out = padded
        for layer in self.network.layers:
            if isinstance(layer, Input):
                out = padded
            elif isinstance(layer, Concat):
                out = torch.cat([values[s] for s in layer.inputs], dim=1)
            else:
                assert isinstance(layer, SynapticLayer)
                out = self.core.get(layer.name)(values[layer.source_name])
                if not isinstance(layer.neuron, Accumulator):
                    out = torch.relu(out)
                    if activations is not None:
                        activations[layer.name] = out
            values[layer.name] = out
        return out[..., :h, :w] if crop else out

    def _first_current(self, padded: torch.Tensor) -> torch.Tensor:
        first = next(lay for lay in self.network.layers if isinstance(lay, Conv) and lay.static)
        return self.core.get(first.name)(padded)

    def run(self, x: torch.Tensor, steps: int, record_flow: bool = False, surrogate: bool = False,
            progress: bool = False, kernel: StepKernel = "fused", shortcuts: bool | None = None) -> SimulationResult:
        """Simulate ``steps`` steps on a batch (NCHW). Gradients flow only if enabled by the caller.

        ``shortcuts`` (default: whenever autograd is off): the first convolution is evaluated once
        (static coding: the same current every step) and every neuron layer rewrites one output
        tensor; the same numbers as plain steps.
        """
        states = self.new_states()
        total: torch.Tensor | None = None
        currents = self.step_currents(x, steps, states, record_flow, surrogate, kernel, shortcuts)
        for out in tqdm(currents, total=steps, desc="SNN steps", disable=not progress, leave=False):
            total = out if total is None else total + out
        assert total is not None
        h, w = x.shape[-2:]
        stats = [SpikeStats(self.network.layers[i].name, s.neurons, s.steps, x.shape[0], s.counts.tolist())
                 for i, s in states.items()]
        named = {self.network.layers[i].name: s for i, s in states.items()}
        return SimulationResult(output=(total / steps)[..., :h, :w], steps=steps, stats=stats, states=named)

    def new_states(self) -> dict[int, NeuronState]:
        """Fresh neuron states (membranes at 0, no initial offset, as in the paper), by layer index."""
        return {int(i): self.cell(int(i)).new_state() for i in self.cells}

    def step_currents(self, x: torch.Tensor, steps: int, states: dict[int, NeuronState], record_flow: bool = False,
                      surrogate: bool = False, kernel: StepKernel = "fused",
                      shortcuts: bool | None = None) -> Iterator[torch.Tensor]:
        """The output layer's current at each of ``steps`` steps (padded size), advancing ``states``."""
        check_steps(steps)
        padded, _ = pad_to_multiple(x, self.multiple)
        if shortcuts is None or torch.is_grad_enabled():
            shortcuts = not torch.is_grad_enabled()
        run = RunOptions(kernel=kernel, record_flow=record_flow,
                         fire=surrogate_heaviside if surrogate else heaviside, reuse_output=shortcuts)
        static = self._first_current(padded) if shortcuts else None
        try:
            for _ in range(steps):
                yield self._forward(padded, states, run, static)
        finally:
            for state in states.values():
                state.scratch = None

    @torch.no_grad()
    def simulate(self, x: torch.Tensor, steps: int, progress: bool = False,
                 kernel: StepKernel = "fused") -> SimulationResult:
        """Inference: ``steps`` steps without gradients."""
        return self.run(x, steps, progress=progress, kernel=kernel)

    def flow_forward(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        """Algorithm 1 of the paper: record the spiking flows without gradients, then one
        differentiable pass on time-averaged flows.

        Each layer computes W (I_out^{l-1} / T) + b = I_in^l / T, so the bias enters T times in I_in,
        as in inference (the reference code's conv1(x*T) gave it once). Each neuron's value is
        I_out / T, its gradient that of ReLU at I_in. Returns I_in^L / T of the output layer.
        Memory does not depend on T: only flows (one tensor per layer) are kept.
        """
        with torch.no_grad():
            recorded = self.run(x, steps, record_flow=True)
        padded, (h, w) = pad_to_multiple(x, self.multiple)
        states = {self.network.index(name): s for name, s in recorded.states.items()}
        return self._forward(padded, states, RunOptions(), flow=True)[..., :h, :w]


def spiking_unet(config: UNetConfig, thresholds: Sequence[float],
                 network: FloatNetwork | None = None) -> SpikingNetwork:
    """This toolchain's U-Net as an SNN: ``network`` (a traced, normalized graph) or, by default, the
    architecture's structure with zero weights (load a checkpoint's state into ``.core``)."""
    from .trace import trace_network
    from .unet import UNetCore

    if network is None:
        with torch.device("meta"):
            core = UNetCore(config)
        network = trace_network(core, (config.spec.input_channels, config.multiple, config.multiple),
                                lambda _m: MultiThreshold(tuple(thresholds)), weights=False)
    return SpikingNetwork(network, config.multiple, config=config)

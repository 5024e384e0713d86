"""The Lava process graph of a quantized network, as typed data (no Lava): which process carries which
synapse group, with which stock parameters. :class:`~.procs.network.LavaNetwork` instantiates it.

Per layer (logical time: :mod:`toolchain.simulators.reference`; Lava time: layer l's logical step k of
image j runs at Lava step depth(l) + 1 + j T + k):

* the static first conv: ``HostStatic`` (own) computes ``static_current`` from the image levels and
  feeds the layer's MT neuron in the same step (a host-written bias on Loihi);
* every other MT layer / the output: ``MTNeuron`` / ``Accumulator`` (own), bias m_b << e_b per channel;
* every input part p of a layer (source MT layer s, exponent e_p, delay D_p), current
  I_p = 2**e_p sum_i r_i conv(s_i, m_p), one synapse group:

  - D_p = 0, or D_p > 0 with ``delays="line"``: stock ``Conv`` (its weight_exp is ignored by every Lava
    model, so exponent and spike weights are multiplied into the weights: m r_i 2**e_p on the
    compartments map, m 2**e_p on the graded payload with ``num_message_bits = bitlen(sum r)``); a
    pool is a grouped Conv of stride k (depthwise for C <= 127: Lava keeps ``groups`` in an int8, so
    wider pools use block-diagonal groups); a grouped or depthwise conv a Conv of its groups (more than
    127: block-diagonal groups, :func:`~.layout.regroup`); a transposed conv (grouped too: the depthwise
    upsampling of captured U-Nets) a phase Conv plus a pixel shuffle (:mod:`.layout`); a delayed part
    reads its source through an own ``DelayLine`` of D_p steps;
  - D_p > 0 with ``delays="sparse"``: stock ``DelaySparse`` (delay D_p, arrival t + 1 + D_p) with
    Loihi's 8-bit mixed-sign mantissas 2m and ``weight_exp = e_p + k - 1`` (Lava shifts the summed
    activation; the sum of even products is even, so the shift by -1 is exact), one process per
    compartment i and power of two 2**k of r_i (graded: one, k = 0).

Exactness bounds. Lava's ``Conv`` wraps its output modulo 2**24 and ``DelaySparse`` its int32
activations modulo 2**32; the reference simulator sums in int64. ``bound`` is a static bound on
|a| of each group (sum of |w| over its fan-in times the largest payload); groups whose bound is
below ``limit`` can never wrap. The others are listed by :meth:`LavaPlan.unproven` and checked at
run time by the exact models (:mod:`..fast`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.sparse import csr_matrix

from ...errors import ConfigError
from ...ir import Accumulator, Concat, Conv, ConvTranspose, MultiThreshold, QuantizedNetwork, SumPool, SynapticLayer
from ...simulators.kernels import fixed, part_weight
from ...vocab import LOWERINGS, Lowering
from .layout import (
    XYZ,
    conv_bound,
    conv_matrix,
    convT_as_conv,
    interleave,
    lava_conv_weight,
    matrix_bound,
    pool_groups,
    pool_weight,
    power_split,
    regroup,
    xyz,
)

Delays = Literal["line", "sparse"]
DELAYS: tuple[Delays, ...] = ("line", "sparse")
TIME_OFFSET = 1                 # Lava counts steps from 1: layer l's logical step 0 is Lava step depth(l) + 1
CONV_LIMIT = 1 << 23            # stock Conv: signed 24-bit wrap
SPARSE_LIMIT = 1 << 31          # stock (Delay)Sparse: int32 activations


@dataclass(frozen=True, eq=False)
class NeuronPlan:
    """One neuron population: an MT layer (``thresholds``) or the output accumulator (``thresholds == ()``)."""

    name: str
    shape: XYZ
    depth: int
    thresholds: tuple[int, ...]
    bias_mant: np.ndarray          # (C,) int64; zeros for the static layer (HostStatic includes its bias)
    bias_exp: np.ndarray
    static: bool = False

    @property
    def start(self) -> int:
        """The Lava step of the layer's first logical step."""
        return self.depth + TIME_OFFSET

    @property
    def ratios(self) -> tuple[int, ...]:
        return tuple(t // self.thresholds[-1] for t in self.thresholds) if self.thresholds else ()


@dataclass(frozen=True, eq=False)
class ConvPlan:
    """One stock ``Conv`` (Lava layout): ``source`` MT layer (through a ``DelayLine`` of ``delay`` steps
    when > 0) -> ``target``; ``groups``: Lava's (at most 127, :func:`~.layout.regroup`); ``shuffle``
    (s_y, s_x): a pixel shuffle on the way to the target."""

    name: str
    source: str
    target: str
    weight: np.ndarray             # (C_out', kx, ky, C_in') int64
    input_shape: XYZ
    stride: tuple[int, int]        # (x, y)
    padding: tuple[int, int]       # (x, y)
    groups: int
    message_bits: int
    delay: int
    shuffle: tuple[int, int] | None
    bound: int
    limit: int = CONV_LIMIT
    shuffle_groups: int = 1        # a grouped transposed conv's groups (the shuffle's channel order)


@dataclass(frozen=True, eq=False)
class SparsePlan:
    """One stock ``DelaySparse``: flat ``source`` spikes -> ``target`` (reshaped to its shape)."""

    name: str
    source: str
    target: str
    weights: csr_matrix            # (N_out, N_in) even mantissas 2m
    delay: int
    weight_exp: int
    message_bits: int
    bound: int                     # on |W s| before and after the shift
    limit: int = SPARSE_LIMIT


@dataclass(frozen=True, eq=False)
class LavaPlan:
    """Everything :class:`~.procs.network.LavaNetwork` creates, in the network's layer order."""

    network: QuantizedNetwork
    lowering: Lowering
    delays: Delays
    neurons: tuple[NeuronPlan, ...]
    convs: tuple[ConvPlan, ...] = ()
    sparse: tuple[SparsePlan, ...] = ()
    static: SynapticLayer | None = None

    @property
    def latency(self) -> int:
        return self.network.output.depth

    def unproven(self) -> list[str]:
        """Synapse groups whose static bound does not exclude a wrap (checked at run time by the exact models)."""
        groups: list[ConvPlan | SparsePlan] = [*self.convs, *self.sparse]
        return [g.name for g in groups if g.bound >= g.limit]


def _neuron(layer: SynapticLayer) -> NeuronPlan:
    syn = fixed(layer)
    static = isinstance(layer, Conv) and layer.static
    thresholds = tuple(int(t) for t in layer.neuron.thresholds) if isinstance(layer.neuron, MultiThreshold) else ()
    c = layer.shape[0]
    mant = np.zeros(c, np.int64) if static else np.asarray(syn.bias, np.int64)
    bexp = np.zeros(c, np.int64) if static else np.asarray(syn.bias_exp, np.int64)
    return NeuronPlan(layer.name, xyz(layer.shape), layer.depth, thresholds, mant, bexp, static)


def _conv_group(layer: SynapticLayer, src: SynapticLayer, m: np.ndarray, exp: int, delay: int, graded: bool,
                name: str) -> ConvPlan:
    """A part as one stock Conv: the exponent and the spike weights multiplied into the weights."""
    assert isinstance(src.neuron, MultiThreshold)
    ratios = src.neuron.spike_weights()
    factors = [1 << exp] if graded else [r << exp for r in ratios]
    c_in = src.shape[0]
    in_shape = xyz(src.shape) if graded else xyz((c_in * len(ratios),) + tuple(src.shape[1:]))
    shuffle = None
    shuffle_groups = 1
    if isinstance(layer, SumPool):
        weight = pool_weight(int(m.reshape(-1)[0]), c_in, layer.kernel, factors)
        stride, padding, groups = layer.kernel[::-1], (0, 0), pool_groups(c_in)
    elif isinstance(layer, ConvTranspose):
        phase = convT_as_conv(m, src.shape[1:], layer.shape[1:], layer.kernel, layer.stride, layer.padding,
                              layer.groups)
        weight, groups = regroup(interleave(lava_conv_weight(phase.weight), factors), layer.groups)
        stride, padding, shuffle, shuffle_groups = (1, 1), phase.padding[::-1], phase.stride, layer.groups
    else:
        assert isinstance(layer, Conv)
        weight, groups = regroup(interleave(lava_conv_weight(m), factors), layer.groups)
        stride, padding = layer.stride[::-1], layer.padding[::-1]
    payload_max = sum(ratios) if graded else 1
    return ConvPlan(name, src.name, layer.name, weight, in_shape, tuple(stride), tuple(padding), groups,  # type: ignore[arg-type]
                    int(sum(ratios)).bit_length() if graded else 0, delay, shuffle,
                    conv_bound(weight, payload_max), shuffle_groups=shuffle_groups)


def _sparse_groups(layer: SynapticLayer, src: SynapticLayer, m: np.ndarray, exp: int, delay: int, graded: bool,
                   name: str) -> list[SparsePlan]:
    """A delayed part as stock DelaySparse groups with 8-bit mantissas 2m and Lava's weight_exp."""
    if not isinstance(layer, Conv):
        raise ConfigError(f"layer {layer.name}: delays='sparse' supports delayed parts of a conv layer only, "
                          f"not a {layer.kind}")
    assert isinstance(src.neuron, MultiThreshold)
    ratios = src.neuron.spike_weights()
    bits = int(sum(ratios)).bit_length() if graded else 0
    terms = [(0, 1, 0, sum(ratios))] if graded else [
        (i, len(ratios), k, 1) for i, r in enumerate(ratios) for k in power_split(r)]
    groups = []
    for i, n, k, payload_max in terms:
        matrix = conv_matrix(2 * m, src.shape, layer.shape, layer.stride, layer.padding, (i, n), layer.groups)
        weight_exp = exp + k - 1
        bound = matrix_bound(matrix, payload_max) << max(weight_exp, 0)
        suffix = "" if graded else f"#c{i}" + (f"k{k}" if k else "")
        groups.append(SparsePlan(name + suffix, src.name, layer.name, matrix, delay, weight_exp, bits, bound))
    return groups


def plan_network(network: QuantizedNetwork, lowering: Lowering | None = None, delays: Delays = "line") -> LavaPlan:
    """The Lava graph of ``network`` (see the module docstring). Raises ConfigError for what it cannot carry."""
    if not isinstance(network, QuantizedNetwork):
        raise ConfigError(f"a LavaNetwork is built from a quantized network, got a {type(network).__name__}")
    lowering = lowering or network.lowering
    if lowering not in LOWERINGS:
        raise ConfigError(f"lowering must be one of {LOWERINGS}, got {lowering!r}")
    if delays not in DELAYS:
        raise ConfigError(f"delays must be one of {DELAYS}, got {delays!r}")
    output = network.output
    if not (isinstance(output, SynapticLayer) and isinstance(output.neuron, Accumulator)):
        raise ConfigError("the network's last layer must be the output accumulator")
    graded = lowering == "graded"
    neurons, convs, sparse = [], [], []
    static = None
    for layer in network.synaptic_layers:
        neurons.append(_neuron(layer))
        if isinstance(layer, Conv) and layer.static:
            if static is not None:
                raise ConfigError("a LavaNetwork carries one static (host-computed) layer")
            static = layer
            continue
        parts = network.parts(layer)
        concat = isinstance(network[layer.source_name], Concat)
        for (src, delay, offset), exp in zip(parts, fixed(layer).weight_exp):
            assert isinstance(src, SynapticLayer)
            m = np.asarray(part_weight(layer, offset, src.shape[0]), np.int64)
            name = f"{layer.name}<-{src.name}" if concat else layer.name
            if delay and delays == "sparse":
                sparse.extend(_sparse_groups(layer, src, m, exp, delay, graded, name))
            else:
                convs.append(_conv_group(layer, src, m, exp, delay, graded, name))
    if static is None:
        raise ConfigError("a LavaNetwork needs the static first layer fed by the input")
    return LavaPlan(network, lowering, delays, tuple(neurons), tuple(convs), tuple(sparse), static)

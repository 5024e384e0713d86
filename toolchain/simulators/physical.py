"""The reference simulator's physical-time path: CUBA networks (stock netx semantics), bit-exact.

This is what ``lava.lib.dl.netx.hdf5.Network`` computes on ``Loihi2SimCfg(select_tag='fixed_pt')``
(no reset processes), step for step. Step t = 0, 1, ... here is Lava time step t + 1::

    input layer:  a_in = 0, bias = image_mant << 6          (the image as a per-neuron bias)
    conv layer:   a_in(t) = clamp24(conv(s_src(t - 1), W))   (Lava Conv: weights as stored,
                                                              no exponent; 24-bit signed clamp)
    dense layer:  a_in(t) = (W' @ s_src(t - 1)) >> k          (netx optimize_weight_bits: W' = W << k,
                                                              then Lava Dense clips and truncates
                                                              W' (see :func:`netx_dense_weights`))
    every layer:  u, v, s = cuba_step(u, v, a_in, du, dv, bias_mant << 6, vth)
                  (:func:`toolchain.neuron.cuba_step`; biases on from step 0, s(-1) = 0)

so a spike of layer l at step t reaches layer l + 1's current at step t + 1 (one step per synapse;
flatten adds none). lava-dl's slayer golden traces are aligned by the tests (see
``tests/test_netx_interop.py``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from ..ir import Conv, Cuba, Dense, Flatten, Input, NeuronLayer, StockNetwork, StockSynapses
from ..neuron.cuba import cuba_step
from .kernels import SynapseOp, synapse_current

CONV_CLAMP = 1 << 23          # Lava Conv (fixed_pt): signed_clamp(a, bits=24)


@dataclass
class PhysicalResult:
    """Per neuron layer (by name) the per-step spikes, currents and voltages, (T, N, C, H, W)."""

    steps: int
    spikes: dict[str, np.ndarray] = field(default_factory=dict)     # bool
    u: dict[str, np.ndarray] = field(default_factory=dict)          # int64
    v: dict[str, np.ndarray] = field(default_factory=dict)          # int64

    @property
    def output(self) -> np.ndarray:
        """The last layer's spikes (T, N, C, H, W)."""
        return list(self.spikes.values())[-1]


@dataclass(frozen=True)
class NetxWeightBits:
    """What netx's ``optimize_weight_bits`` makes of a weight matrix: the left shift ``bits`` (weight_exp =
    -bits), ``num_weight_bits`` (the synapse width the compiler stores, see :mod:`toolchain.hardware.compiler`)
    and the sign mode (``mixed``: both signs; ``inhibitory``: all negative)."""

    bits: int
    num_weight_bits: int
    mixed: bool
    inhibitory: bool


def _clip_stock(w: np.ndarray) -> np.ndarray:
    hi, lo = int(w.max()), int(w.min())
    if hi > 254 and lo < 0 or lo < -256 and hi > 0:
        return np.clip(w, -256, 254)
    return w


def netx_weight_bits(weight: np.ndarray) -> NetxWeightBits:
    """netx's ``optimize_weight_bits`` on integer weights (not all zero):
    scale = min(127 / max, -128 / min) (mixed signs), -256 / min (inhibitory) or 255 / max;
    bits = floor(log2(scale)) + mixed; n = the trailing zero bits common to every weight (<= 8) - mixed;
    num_weight_bits = 8 - bits - n."""
    w = _clip_stock(np.asarray(weight, dtype=np.int64))
    hi, lo = int(w.max()), int(w.min())
    inhibitory, mixed = hi < 0, lo < 0 <= hi            # netx's SYNAPSE_SIGN_MODE
    with np.errstate(divide="ignore"):
        if mixed:
            scale = min(np.float64(127) / hi, np.float64(-128) / lo)
        elif inhibitory:
            scale = np.float64(-256) / lo
        else:
            scale = np.float64(255) / hi
    signed = int(mixed)
    bits = int(np.floor(np.log2(scale))) + signed
    n = 8
    while n > 0 and np.sum(np.abs(w / 2 ** n - np.round(w / 2 ** n))) != 0:
        n -= 1
    n -= signed
    return NetxWeightBits(bits, 8 - bits - n, mixed, inhibitory)


def netx_dense_weights(weight: np.ndarray) -> tuple[np.ndarray, int]:
    """The integer matrix W' and right shift k with which netx + Lava's Dense compute (W' @ s) >> k.

    netx's ``optimize_weight_bits`` (:func:`netx_weight_bits`) scales W by 2**b and sets weight_exp = -b
    and num_weight_bits; Lava's Dense (bit-accurate) then clips W' to the sign mode's 8-bit range and
    drops its ``8 - num_weight_bits + signed`` lowest bits (for a mixed-sign matrix at least the LSB).
    """
    w = np.asarray(weight, dtype=np.int64)
    if int(w.max()) == 0 and int(w.min()) == 0:
        return w, 0
    w = _clip_stock(w)
    nb = netx_weight_bits(w)
    if nb.bits < 0:
        raise ConfigError(f"dense weights up to {int(w.max())} cannot be mapped by netx's optimize_weight_bits")
    signed = int(nb.mixed)
    w = w << nb.bits
    sign = -1 if nb.inhibitory else 1
    w = sign * w
    w = np.clip(w, -(2 ** 8) * signed, 2 ** 8 - 1)
    cut = 8 - nb.num_weight_bits + signed
    w = (w >> cut) << cut
    return sign * w, nb.bits


def _conv(layer: Conv, spikes: torch.Tensor, weight: np.ndarray) -> torch.Tensor:
    """Lava Conv's current from binary spikes: the exact integer convolution, clamped to 24 bits."""
    y = synapse_current(SynapseOp.of(layer), spikes, weight, payload_max=1)
    return y.clamp(-CONV_CLAMP, CONV_CLAMP - 1)


def simulate_cuba(network: StockNetwork, input_bias: np.ndarray, steps: int,
                  reset_interval: int | None = None, reset_offset: int = 0) -> PhysicalResult:
    """Run a CUBA network for ``steps`` physical steps with the input layer's per-neuron bias mantissas.

    ``reset_interval`` / ``reset_offset`` are netx's (``hdf5.Network(..., reset_interval=R,
    reset_offset=o)`` builds ``LIFReset``): the neuron layer at chain position i (input = 0) zeroes
    u and v at the start of step t when (t + 1) % R == (i + 1 + o) % R. With R >= the run length
    that is once, at step i: layer i starts integrating when the first spikes can reach it and
    forgets the bias-only transient before (what lava-dl's golden outputs assume).

    ``input_bias``: (C, H, W) or (N, C, H, W) integers (the image, as lava-dl's tests set
    ``in_layer.neuron.bias_mant``). Exact integer arithmetic (the convolutions of :mod:`.kernels` on 0/1 spikes
    with |W| <= 256: every partial sum is an exact integer).
    """
    if not isinstance(network, StockNetwork) or network.input.neuron is None:
        raise ConfigError("simulate_cuba runs stock netx networks (netx_export.read_netx) with a CUBA input layer")
    if steps < 1:
        raise ConfigError(f"steps must be >= 1, got {steps}")
    bias_in = np.asarray(input_bias)
    if bias_in.ndim == 3:
        bias_in = bias_in[None]
    if bias_in.shape[1:] != tuple(network.input.shape):
        raise ConfigError(f"input bias must be (N, {', '.join(map(str, network.input.shape))}), got {bias_in.shape}")
    n = bias_in.shape[0]
    layers: list[NeuronLayer] = network.neuron_layers
    params: dict[str, tuple[torch.Tensor, tuple[Any, ...]]] = {}
    neurons: dict[str, Cuba] = {}
    for layer in layers:
        neuron = layer.neuron
        assert isinstance(neuron, Cuba)
        neurons[layer.name] = neuron
        syn: tuple[Any, ...] = ()
        if isinstance(layer, Input):
            mant = torch.from_numpy(bias_in.astype(np.int64))
        else:
            stock = layer.synapses
            assert isinstance(stock, StockSynapses)
            mant = torch.from_numpy(np.asarray(stock.bias, np.int64)).view(1, -1, 1, 1)
            if isinstance(layer, Conv):
                syn = (np.asarray(stock.weight, np.int64),)
            elif isinstance(layer, Dense):
                w, k = netx_dense_weights(stock.weight)
                syn = (torch.from_numpy(w), k)
        params[layer.name] = (mant << neuron.bias_exp, syn)
    source = {}
    for layer in layers[1:]:
        src = network[layer.inputs[0]]
        source[layer.name] = network[src.inputs[0]].name if isinstance(src, Flatten) else src.name
    zeros = {layer.name: torch.zeros((n,) + layer.shape, dtype=torch.int64) for layer in layers}
    u, v = dict(zeros), dict(zeros)
    s = {name: z.to(torch.bool) for name, z in zeros.items()}
    out = PhysicalResult(steps)
    rec: dict[str, list] = {"s": [], "u": [], "v": []}
    for t in range(steps):
        new_s = {}
        for i, layer in enumerate(layers):
            bias, syn = params[layer.name]
            if reset_interval and (t + 1) % reset_interval == (i + 1 + reset_offset) % reset_interval:
                u[layer.name], v[layer.name] = zeros[layer.name], zeros[layer.name]
            if isinstance(layer, Input):
                a_in = zeros[layer.name]
            elif isinstance(layer, Conv):
                a_in = _conv(layer, s[source[layer.name]], syn[0])
            else:
                w, k = syn
                flat = s[source[layer.name]].reshape(n, -1).to(torch.int64)
                a_in = ((flat @ w.T) >> k).view((n,) + layer.shape)
            neuron = neurons[layer.name]
            nu, nv, ns = cuba_step(u[layer.name], v[layer.name], a_in, neuron.du, neuron.dv, bias, neuron.vth)
            u[layer.name], v[layer.name], new_s[layer.name] = nu, nv, ns
        s = new_s
        rec["s"].append({k: x.numpy().copy() for k, x in s.items()})
        rec["u"].append({k: x.numpy().copy() for k, x in u.items()})
        rec["v"].append({k: x.numpy().copy() for k, x in v.items()})
    for layer in layers:
        out.spikes[layer.name] = np.stack([r[layer.name] for r in rec["s"]])
        out.u[layer.name] = np.stack([r[layer.name] for r in rec["u"]])
        out.v[layer.name] = np.stack([r[layer.name] for r in rec["v"]])
    return out

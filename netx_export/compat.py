"""Write a purely sequential quantized SNN as a STOCK netx file (``lava.lib.dl.netx.hdf5.Network`` loads it).

The project's own ``.net`` files (:mod:`netx_export.writer`) describe U-Nets with MT neurons, which
stock netx cannot load. :func:`write_netx_compatible` writes the subset stock netx can express:

* supported: ``input`` -> static ``conv`` (MT, one threshold) -> ``conv`` (MT, one threshold) ...
  -> last ``conv`` (ACC output, or MT with one threshold), each layer fed by the one before.
* refused with :class:`~toolchain.errors.ExportError` naming the layer: ``pool``, ``convT``,
  ``concat`` (and any layer that is not fed by its predecessor), MT neurons with more than one
  threshold, non-quantized networks. Use the project's own format and lava-cpu backend for those.

File layout (what lava-dl's netx tests feed): ``layer/0`` is an ``input`` layer of the STATIC
layer's shape (C0, H, W) with a CUBA neuron; its per-neuron bias mantissa is the static current
conv(image) + b of the first convolution, computed on the host (:func:`netx_input_bias`) and set
at run time (``net.in_layer.neuron.bias_mant``), exactly as lava-dl's tests drive ``tiny.net``.
The first convolution's weights are therefore not in the file. ``layer/1..`` are ``conv`` layers
(torch weight layout, shape (C, H, W), stride / padding / dilation / groups) with CUBA neurons
``iDecay = 4096`` (no current memory: u = a_in << 6), ``vDecay = 0`` (IF), ``refDelay = 1``,
``vThMant`` and a per-channel ``bias``. The ACC output becomes a CUBA layer with
``vThMant = 1 << 17`` (v can never exceed it: it never spikes) whose membrane accumulates the output
current: :func:`decode_output` turns its final ``v`` into the project's decoded output.

Fixed point. Per step a CUBA layer computes v += (conv(s, W) + bias) << 6 and spikes on
v > vThMant << 6; Lava's Conv ignores any weight exponent. Our layer computes
V += conv(s, m) * 2**e + b and spikes on V > theta. With V = 2**k * (v >> 6), k = e + j:

    W = round(m / 2**j)   (j > 0 only if theta / 2**e does not fit the 17-bit vThMant)
    vThMant = floor(theta / 2**k)      (exact for integer v >> 6: V > theta  <=>  v' > floor(theta / 2**k))
    bias = round(b / 2**k)              (rounded; clipped to the 13-bit range -4096..4095)

For the input layer k = s0 is the smallest shift for which the threshold fits 17 bits and the
largest static current an image in [0, 1] can produce fits the 13-bit bias mantissa (Lava's
bit-accurate LIF holds ``bias_mant`` in int16: larger values wrap); its bias is
round(I_static / 2**s0), so the static layer is exact only when s0 = 0. Roundings and clips of the
file's values are counted in the returned :class:`CompatReport`.

Semantics: an APPROXIMATION of the SNN. Stock CUBA neurons reset to ZERO (ours subtract the
threshold, keeping the excess) and membranes saturate at 2**17 in v >> 6 units (ours at 2**23 in
integer units). Stock netx switches biases on at step 0 (ours at each layer's depth): run it with
netx's ``reset_interval = R >= T + latency`` (``hdf5.Network(..., reset_interval=R)``), which zeroes
layer i's state at the start of physical step i and so forgets the bias-only transient, and run
T + latency steps (latency = number of conv layers after the static one). Then logical step k of
layer i is physical step i + k, as in the project's reference simulator, and the output layer's
final v holds the T-step accumulator (divided by 2**k_out).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from netx_export.h5image import create_group as _create_group
from netx_export.h5image import put as _put
from netx_export.h5image import write_checked
from netx_export.stock import WEIGHT_MAX, WEIGHT_MIN, parse_stock
from netx_export.structure import add_digest
from toolchain.errors import ExportError
from toolchain.ir import Accumulator, Conv, Input, MultiThreshold, QuantizedNetwork, SynapticLayer
from toolchain.ir.limits import IMAGE_LEVELS
from toolchain.lowering.fixed_point import Overflow, bias_value, round_half_away
from toolchain.simulators.kernels import fixed, image_levels, static_current

VTH_MAX = (1 << 17) - 1          # the largest vThMant v (<= 2**23 - 1) can still exceed
NEVER_SPIKES = 1 << 17           # vThMant of the ACC layer: v <= 2**23 - 1 = (1 << 17) * 64 - 1
BIAS_MIN, BIAS_MAX = -(1 << 12), (1 << 12) - 1   # 13-bit bias mantissa (what read_netx accepts)
I_DECAY_FULL, V_DECAY_NONE, REF_DELAY = 4096, 0, 1
BACKEND_HINT = "use the project's own .net format and lava-cpu backend"


@dataclass
class LayerPlan:
    """How one neuron layer of the network becomes stock netx layer ``index``."""

    name: str                    # our layer
    index: int                   # netx layer index (0 = input)
    shift: int                   # k: V = 2**k * (v >> 6)
    weight_shift: int = 0        # j: file weights = round(m / 2**j)
    vth: int = 0                 # vThMant
    vth_exact: bool = True       # theta divisible by 2**k
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    weights_rounded: int = 0
    biases_rounded: int = 0
    biases_clipped: int = 0
    output: bool = False         # the ACC output (never spikes)

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.name, "netx_index": self.index, "shift": self.shift,
                "weight_shift": self.weight_shift, "vThMant": self.vth, "vth_exact": self.vth_exact,
                "weights_rounded": self.weights_rounded, "biases_rounded": self.biases_rounded,
                "biases_clipped": self.biases_clipped, "output": self.output}


@dataclass
class CompatReport:
    """What :func:`write_netx_compatible` did: the plan per layer, the run settings stock netx needs."""

    path: Path | None
    layers: list[LayerPlan] = field(default_factory=list)
    latency: int = 0             # physical steps from the input layer to the output layer

    def run_steps(self, steps: int) -> int:
        """Physical steps to run for ``steps`` logical steps (also a valid netx ``reset_interval``)."""
        return steps + self.latency

    def to_dict(self) -> dict[str, Any]:
        return {"path": None if self.path is None else str(self.path), "latency": self.latency,
                "layers": [p.to_dict() for p in self.layers]}


def _check_sequential(network: QuantizedNetwork) -> list[Conv]:
    if not isinstance(network, QuantizedNetwork):
        raise ExportError("only quantized networks can be written (export first)")
    layers = network.layers
    if not layers or not isinstance(layers[0], Input):
        raise ExportError("the network must start with its input layer")
    chain: list[Conv] = []
    for prev, layer in zip(layers, layers[1:]):
        if not isinstance(layer, Conv):
            raise ExportError(f"layer {layer.name} ({layer.kind}) has no stock netx equivalent; {BACKEND_HINT}")
        if layer.inputs != (prev.name,):
            raise ExportError(f"layer {layer.name} is not fed by the layer before it ({', '.join(layer.inputs)}): "
                              f"stock netx networks are sequential; {BACKEND_HINT}")
        if layer.static != isinstance(prev, Input):
            raise ExportError(f"layer {layer.name}: only the first convolution may be the static layer")
        chain.append(layer)
    for layer in chain:                 # structure first: a U-Net is named by its pool / concat
        neuron = layer.neuron
        if isinstance(neuron, Accumulator) and layer is not layers[-1]:
            raise ExportError(f"layer {layer.name}: an ACC layer must be the output")
        if isinstance(neuron, MultiThreshold) and len(neuron.thresholds) != 1:
            raise ExportError(f"layer {layer.name}: MT neurons with {len(neuron.thresholds)} thresholds have no "
                              f"stock netx equivalent (CUBA neurons have one threshold); {BACKEND_HINT}")
        if not isinstance(neuron, (MultiThreshold, Accumulator)):
            raise ExportError(f"layer {layer.name}: {type(neuron).__name__} neurons are not supported here")
        if layer.stride[0] != layer.stride[1] or layer.padding[0] != layer.padding[1]:
            raise ExportError(f"layer {layer.name}: only square stride / padding are supported")
        if layer.groups != 1:
            raise ExportError(f"layer {layer.name}: grouped convolutions (groups {layer.groups}) have no stock "
                              f"netx equivalent here; {BACKEND_HINT}")
    if len(chain) < 2:
        raise ExportError("a stock netx network needs the static layer and at least one more convolution")
    return chain


def _threshold(layer: SynapticLayer) -> int:
    assert isinstance(layer.neuron, MultiThreshold)
    return int(layer.neuron.thresholds[0])


def _round_shift(values: np.ndarray, shift: int) -> tuple[np.ndarray, int]:
    """round(values / 2**shift) (halves away from zero) and how many values were not exact."""
    values = np.asarray(values, dtype=np.int64)
    if shift <= 0:
        return values << -shift if shift < 0 else values.copy(), 0
    out = round_half_away(values / 2.0 ** shift).astype(np.int64)
    return out, int(np.count_nonzero(out * (1 << shift) != values))


def _static_peak(layer: Conv) -> float:
    """The largest |static current| an image in [0, 1] (pixel levels 0..255) can give the first layer."""
    syn = fixed(layer)
    (exp,) = syn.weight_exp
    w = np.asarray(syn.weight, dtype=np.float64).reshape(syn.weight.shape[0], -1) * 2.0 ** exp
    b = bias_value(syn.bias, syn.bias_exp).reshape(-1).astype(np.float64)
    hi = IMAGE_LEVELS * np.clip(w, 0, None).sum(axis=1) + b
    lo = IMAGE_LEVELS * np.clip(w, None, 0).sum(axis=1) + b
    return float(np.maximum(np.abs(hi), np.abs(lo)).max(initial=0.0))


def plan_netx_compatible(network: QuantizedNetwork) -> CompatReport:
    """The integer file contents for a supported network (ExportError naming the layer otherwise)."""
    chain = _check_sequential(network)
    report = CompatReport(None, latency=len(chain) - 1)
    first = chain[0]
    theta0 = _threshold(first)
    peak = _static_peak(first)
    s0 = 0
    while theta0 >> s0 > VTH_MAX or peak / 2 ** s0 > BIAS_MAX:
        s0 += 1
    report.layers.append(LayerPlan(first.name, 0, s0, vth=theta0 >> s0, vth_exact=theta0 % (1 << s0) == 0))
    for index, layer in enumerate(chain[1:], start=1):
        syn = fixed(layer)
        (exp,) = syn.weight_exp
        output = isinstance(layer.neuron, Accumulator)
        j = 0
        if not output:
            theta = _threshold(layer)
            while (theta >> max(exp + j, 0)) > VTH_MAX:
                j += 1
        k = exp + j
        weight, w_rounded = _round_shift(syn.weight, j)
        if weight.size and (weight.min() < WEIGHT_MIN or weight.max() > WEIGHT_MAX):
            raise ExportError(f"layer {layer.name}: weights {weight.min()}..{weight.max()} do not fit 8 bits")
        bias, b_rounded = _round_shift(bias_value(syn.bias, syn.bias_exp).reshape(-1), k)
        clipped = int(np.count_nonzero((bias < BIAS_MIN) | (bias > BIAS_MAX)))
        plan = LayerPlan(layer.name, index, k, j, weight=weight, bias=np.clip(bias, BIAS_MIN, BIAS_MAX),
                         weights_rounded=w_rounded, biases_rounded=b_rounded, biases_clipped=clipped,
                         output=output)
        if output:
            plan.vth = NEVER_SPIKES
        else:
            theta = _threshold(layer)
            plan.vth = theta >> k if k >= 0 else theta << -k
            plan.vth_exact = k <= 0 or theta % (1 << k) == 0
        report.layers.append(plan)
    return report


def netx_input_bias(network: QuantizedNetwork, images: np.ndarray) -> np.ndarray:
    """The input layer's bias mantissas (N, C0, H, W) for float images (N, C, H, W) in [0, 1].

    The static layer's current (:func:`toolchain.simulators.kernels.static_current`, as the reference simulator
    computes it from the pixel levels round(255 x)) divided by 2**s0, rounded, clipped to the 13-bit
    bias range (reached only by images outside [0, 1]; Lava stores ``bias_mant`` as int16 and
    would wrap larger values).
    """
    plan = plan_netx_compatible(network)
    first = network[plan.layers[0].name]
    assert isinstance(first, Conv)
    current = static_current(first, image_levels(np.asarray(images)), Overflow()).numpy()
    bias, _ = _round_shift(current, plan.layers[0].shift)
    return np.clip(bias, BIAS_MIN, BIAS_MAX)


def decode_output(network: QuantizedNetwork, v_final: np.ndarray, steps: int) -> np.ndarray:
    """The decoded output A / (unit * T) from the output layer's final CUBA ``v`` after T logical steps."""
    plan = plan_netx_compatible(network)
    out = plan.layers[-1]
    if not out.output:
        raise ExportError("the network's output is a spiking layer, not an accumulator")
    acc = (np.asarray(v_final, dtype=np.int64) >> 6).astype(np.float64) * 2.0 ** out.shift
    assert isinstance(network.output, SynapticLayer)
    return acc / (fixed(network.output).unit * steps)


def _text(group: h5py.Group, key: str, text: str) -> None:
    group.create_dataset(key, data=np.array([text.encode("ascii")]), track_times=False)


def _neuron(group: h5py.Group, vth: int) -> None:
    neuron = _create_group(group, "neuron")
    neuron.create_dataset("type", data=b"CUBA", dtype=h5py.string_dtype("ascii"), track_times=False)
    for key, value in (("iDecay", I_DECAY_FULL), ("vDecay", V_DECAY_NONE), ("vThMant", vth),
                       ("refDelay", REF_DELAY)):
        _put(neuron, key, np.array(value, dtype=np.int64))


def write_netx_compatible(network: QuantizedNetwork, path: str | os.PathLike[str]) -> CompatReport:
    """Write a sequential quantized network as a stock netx ``.net`` file (see the module docstring).

    Returns the :class:`CompatReport` (shifts, thresholds, rounding counts, ``latency``). Raises
    :class:`ExportError` naming the first layer stock netx cannot express.
    """
    target = Path(path)
    try:
        report = plan_netx_compatible(network)
    except ExportError as exc:
        raise ExportError(f"cannot write {target} as a stock netx file: {exc}") from exc
    report.path = target
    chain = [network[p.name] for p in report.layers]
    steps = int(network.meta.steps or 1)

    def fill(f: h5py.File) -> None:
        layers_group = _create_group(f, "layer")
        for plan, layer in zip(report.layers, chain):
            g = _create_group(layers_group, str(plan.index))
            _text(g, "type", "input" if plan.index == 0 else "conv")
            _put(g, "shape", np.array(layer.shape, dtype=np.int64))
            _neuron(g, plan.vth)
            if plan.index == 0:
                continue
            assert plan.weight is not None and plan.bias is not None
            _put(g, "weight", plan.weight.astype(np.float32))
            _put(g, "bias", plan.bias.astype(np.float32))
            _put(g, "inChannels", np.array(plan.weight.shape[1], dtype=np.int64))
            _put(g, "outChannels", np.array(plan.weight.shape[0], dtype=np.int64))
            _put(g, "kernelSize", np.array(plan.weight.shape[2:], dtype=np.int64))
            assert isinstance(layer, Conv)
            _put(g, "stride", np.array(layer.stride, dtype=np.int64))
            _put(g, "padding", np.array(layer.padding, dtype=np.int64))
            _put(g, "dilation", np.array([1, 1], dtype=np.int64))
            _put(g, "groups", np.array(1, dtype=np.int64))
        sim = _create_group(f, "simulation")
        _put(sim, "Ts", np.array(1, dtype=np.int64))
        _put(sim, "tSample", np.array(report.run_steps(steps), dtype=np.int64))
        add_digest(f)         # lava-dl's netx reads only 'layer': an extra root dataset is ignored there

    write_checked(target, fill, parse_stock, "the stock reader refuses it: ")
    return report

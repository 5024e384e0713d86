"""Per-neuron activity of one inference on the chip: what each population sends and the synaptic
operations each neuron receives.

For every :class:`~toolchain.hardware.chip.ChipLayer`, per inference (T steps), as (C, H, W) maps:

* ``emitted``: messages the neurons send (compartments lowering: every compartment spike; graded: one
  message per neuron-step with a spike; a CUBA neuron: its spikes);
* ``synops``: synaptic operations each neuron receives on NON-ZERO weights (the chip skips zero weights);
* ``synops_all``: the same over every valid weight tap (the count the paper-style synop figure uses).

With ``incoming`` the messages of each source layer that arrive within the inference, a neuron o of a
layer with non-zero pattern M (torch layout) receives, summed over its input parts p (channel offset o_p)::

    conv:   synops = conv2d(incoming_p, M[:, o_p : o_p + C_p], stride, padding)
    convT:  synops = conv_transpose2d(incoming_p, M[o_p : o_p + C_p], stride, padding, output_padding)
    pool:   synops = depthwise conv2d(incoming_p, ones(k)), stride = kernel
    dense:  synops = M @ flatten(incoming_p)

(``synops_all``: the same with M = 1). The sums are exact: float32 when every partial sum stays below
2^24, float64 otherwise. In logical time (this toolchain's networks) a layer's incoming messages are its
sources' messages of the same T steps; in physical time (stock netx networks, one step per synapse) the
messages arriving in steps [t0, t1) were sent in [t0 - 1, t1 - 1) (:func:`stock_activity`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..ir import QuantizedNetwork, StockNetwork
from ..simulators.physical import PhysicalResult
from ..vocab import Lowering
from .chip import ChipLayer
from .costs import Activity

EXACT_FLOAT32 = 1 << 24


@dataclass
class ChipActivity:
    """Per layer (C, H, W) maps per inference of ``steps`` steps (see the module docstring)."""

    steps: int
    emitted: dict[str, np.ndarray]
    synops: dict[str, np.ndarray]
    synops_all: dict[str, np.ndarray]
    spikes: dict[str, float]
    window: tuple[int, int] | None = None


def _tensor(x: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64)).to(dtype)


def _received(layer: ChipLayer, incoming: dict[str, np.ndarray], ones: bool) -> np.ndarray:
    """Synaptic ops each neuron of ``layer`` receives (non-zero weights, or every tap with ``ones``)."""
    out = np.zeros(layer.shape)
    if layer.kind in ("input", "static") or not layer.parts:
        return out
    assert layer.mask is not None
    bound = max(float(incoming[p.source].max(initial=0.0)) for p in layer.parts) * max(layer.in_units, 1) * layer.taps
    dtype = torch.float32 if bound < EXACT_FLOAT32 else torch.float64
    total = torch.zeros(layer.shape, dtype=torch.float64)
    for p in layer.parts:
        inc = incoming[p.source]
        if layer.kind == "dense":
            mask = np.ones_like(layer.mask) if ones else layer.mask
            flat = _tensor(inc.reshape(-1), torch.float64)
            total += (_tensor(mask, torch.float64) @ flat).reshape(layer.shape)
            continue
        x = _tensor(inc, dtype)[None]
        if layer.kind == "pool":
            k = torch.ones((p.channels, 1) + layer.kernel, dtype=dtype)
            y = F.conv2d(x, k, stride=layer.kernel, groups=p.channels)
        elif layer.groups > 1:      # a grouped layer (one part): each output channel reads its group only
            k = _tensor(np.ones_like(layer.mask) if ones else layer.mask, dtype)
            if layer.kind == "conv":
                y = F.conv2d(x, k, stride=layer.stride, padding=layer.padding, groups=layer.groups)
            else:
                y = F.conv_transpose2d(x, k, stride=layer.stride, padding=layer.padding,
                                       output_padding=layer.output_padding, groups=layer.groups)
        elif layer.kind == "conv":
            w = layer.mask[:, p.offset:p.offset + p.channels]
            k = torch.ones((1, 1) + layer.kernel, dtype=dtype) if ones else _tensor(w, dtype)
            y = F.conv2d(x.sum(1, keepdim=True) if ones else x, k, stride=layer.stride, padding=layer.padding)
        else:
            w = layer.mask[p.offset:p.offset + p.channels]
            k = torch.ones((1, 1) + layer.kernel, dtype=dtype) if ones else _tensor(w, dtype)
            y = F.conv_transpose2d(x.sum(1, keepdim=True) if ones else x, k, stride=layer.stride,
                                   padding=layer.padding, output_padding=layer.output_padding)
        y = y[0].to(torch.float64)
        if tuple(y.shape[1:]) != tuple(layer.shape[1:]):
            raise ConfigError(f"layer {layer.name}: synapse geometry gives {tuple(y.shape)}, the layer is "
                              f"{layer.shape}")
        total += y.expand(layer.shape) if ones and layer.kind != "pool" else y
    return total.numpy()


def from_incoming(layers: list[ChipLayer], steps: int, emitted: dict[str, np.ndarray],
                  incoming: dict[str, np.ndarray], spikes: dict[str, float],
                  window: tuple[int, int] | None = None) -> ChipActivity:
    """The activity of one inference from each layer's emitted and arriving messages (module docstring)."""
    synops = {lay.name: _received(lay, incoming, ones=False) for lay in layers}
    synops_all = {lay.name: _received(lay, incoming, ones=True) for lay in layers}
    return ChipActivity(steps, emitted, synops, synops_all, spikes, window)


def quantized_activity(network: QuantizedNetwork, layers: list[ChipLayer], activity: Activity,
                       lowering: Lowering) -> ChipActivity:
    """Logical time: each layer's messages per inference (batch totals / batch) arrive within the T steps."""
    batch = max(activity.batch, 1)
    emitted = {}
    spikes = {}
    for lay in layers:
        layer = network[lay.name]
        if lay.emits:
            emitted[lay.name] = activity.emitted(layer, lowering) / batch
            spikes[lay.name] = float(sum(activity.totals[lay.name])) / batch
        else:
            emitted[lay.name] = np.zeros(lay.shape)
            spikes[lay.name] = 0.0
    return from_incoming(layers, activity.steps, emitted, emitted, spikes)


def stock_activity(network: StockNetwork, layers: list[ChipLayer], trace: PhysicalResult,
                   window: tuple[int, int], image: int = 0) -> ChipActivity:
    """Physical time: spikes of steps [t0, t1) of batch item ``image``; a layer receives its source's spikes
    of [t0 - 1, t1 - 1) (one step per synapse; nothing arrives before step 0)."""
    t0, t1 = window
    if not 0 <= t0 < t1 <= trace.steps:
        raise ConfigError(f"activity window {window} is outside the {trace.steps} simulated steps")
    emitted, incoming, spikes = {}, {}, {}
    for lay in layers:
        s = trace.spikes[lay.name][:, image]
        emitted[lay.name] = s[t0:t1].sum(axis=0, dtype=np.int64).astype(np.float64)
        incoming[lay.name] = s[max(t0 - 1, 0):t1 - 1].sum(axis=0, dtype=np.int64).astype(np.float64)
        spikes[lay.name] = float(emitted[lay.name].sum())
    return from_incoming(layers, t1 - t0, emitted, incoming, spikes, window)

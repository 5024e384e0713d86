"""Per-core load of a mapped network (synaptic events in, packets out) and the time per step.

Per core and per inference: events = synaptic ops on the core's synapses (exact: source activity maps
pushed through the border-exact tap matrices of the core's row and column bands); packets = messages
the core's units emit times the destination cores each reaches. Loihi ends every time step with a
barrier, so

    time per step = max over cores (events x time.synop + compartments x time.neuron_update
                                    + packets x time.spike) / T  +  time.barrier
    latency       = (T + network latency) x time per step

with the activity averaged over the T steps (the model does not resolve per-step peaks).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from toolchain.hardware.costs import Activity
from toolchain.hardware.geometry import Geometry, consumers
from toolchain.hardware.mapping import Mapping, reach
from toolchain.ir import Conv, MultiThreshold, QuantizedNetwork


@dataclass
class CoreLoads:
    """Per layer, per core (arrays shaped like the layer's tiling) per inference."""

    events: dict[str, np.ndarray]
    packets: dict[str, np.ndarray]
    compartments: dict[str, np.ndarray]


def _block_sum(values: np.ndarray, groups: tuple[list, list, list]) -> np.ndarray:
    out = values
    for axis, bands in enumerate(groups):
        out = np.add.reduceat(out, [a for a, _ in bands], axis=axis)
    return out


def core_loads(network: QuantizedNetwork, mapping: Mapping, activity: Activity,
               geometries: dict[str, Geometry]) -> CoreLoads:
    """Exact synaptic events and packets per core (per inference = batch totals / batch)."""
    lowering = mapping.lowering
    batch = max(activity.batch, 1)
    by_name = {m.layer: m for m in mapping.layers}
    events: dict[str, np.ndarray] = {}
    packets: dict[str, np.ndarray] = {}
    users = consumers(network)
    for layer in network.synaptic_layers:
        lm = by_name[layer.name]
        geo = geometries[layer.name]
        ev = np.zeros(lm.compartments.shape)
        if not (isinstance(layer, Conv) and layer.static):
            rmat = Geometry.band_matrix(geo.rows, lm.groups[1]).astype(np.float64)
            cmat = Geometry.band_matrix(geo.cols, lm.groups[2]).astype(np.float64)
            for part in geo.parts:
                emitted = activity.emitted(part.source, lowering) / batch
                per_channel = np.einsum("cyx,yb,xd->cbd", emitted, rmat, cmat)
                if geo.depthwise:
                    ev += np.add.reduceat(per_channel, [a for a, _ in lm.groups[0]], axis=0)
                else:
                    sizes = np.array([b - a for a, b in lm.groups[0]], dtype=np.float64)
                    ev += sizes[:, None, None] * per_channel.sum(0)[None]
        events[layer.name] = ev
        pk = np.zeros(lm.compartments.shape)
        if isinstance(layer.neuron, MultiThreshold):
            emitted = activity.emitted(layer, lowering) / batch
            for consumer, _part in users[layer.name]:
                factor, rows, cols = reach(geometries[consumer.name], by_name[consumer.name].groups)
                weighted = emitted * factor * rows[None, :, None] * cols[None, None, :]
                pk += _block_sum(weighted, lm.groups)
        packets[layer.name] = pk
    return CoreLoads(events, packets, {m.layer: m.compartments for m in mapping.layers})


def step_time(network: QuantizedNetwork, mapping: Mapping, loads: CoreLoads, steps: int,
              profile: Any) -> dict[str, Any]:
    """Time per step from the most loaded core, and the latency of one inference."""
    t_syn, t_upd = profile.value("time.synop") * 1e-9, profile.value("time.neuron_update") * 1e-9
    t_spk, t_bar = profile.value("time.spike") * 1e-9, profile.value("time.barrier") * 1e-9
    worst, where = -1.0, ("", 0)
    for m in mapping.layers:
        per_core = (loads.events[m.layer] * t_syn + loads.packets[m.layer] * t_spk) / steps \
            + loads.compartments[m.layer] * t_upd
        idx = int(np.argmax(per_core))
        if float(per_core.flat[idx]) > worst:
            worst, where = float(per_core.flat[idx]), (m.layer, idx)
    per_step = worst + t_bar
    latency_steps = steps + network.latency
    return {"time_per_step_s": per_step, "busiest_core_s": worst, "barrier_s": t_bar,
            "busiest_layer": where[0], "busiest_core_index": where[1], "steps": steps,
            "latency_steps": latency_steps, "latency_s": latency_steps * per_step,
            "note": "activity averaged over the T steps; latency counts T + the network's pipeline depth"}

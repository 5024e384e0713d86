"""Per-layer costs of a quantized network for one inference of T steps, from reference-simulator activity.

Two MT lowerings are costed (see :mod:`toolchain.simulators.reference`; they compute the same spikes):

* ``compartments``: an MT neuron with N thresholds is N compartments on one membrane, each emitting
  binary spikes; every source compartment has its own synapse (weight r_i * W), so a layer stores
  N_src x (weight taps) synapses and every spike costs its fan-out in synaptic ops;
* ``graded``: one compartment per neuron emitting one graded spike per step carrying
  q = sum_i r_i s_i (at most one message per neuron per step); 1 x (weight taps) synapses.

Counts are *per inference* (per image: the simulator's batch totals divided by the batch size).
Synaptic ops are exact per position: sum over source pixels of spike count x border-exact fan-out
(:mod:`.geometry`). The static first layer's conv(x) runs once on the host: it has no on-chip
synapses and is counted as host MACs. The ANN's MACs use the paper's (thop) convention.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..backends import SimulatorBackend
from ..backends.reference import ReferenceBackend
from ..errors import ConfigError
from ..ir import Conv, Layer, MultiThreshold, NeuronLayer, QuantizedNetwork
from ..simulators.result import SimulationResult
from ..vocab import LOWERINGS, Lowering
from .geometry import Geometry


@dataclass
class Activity:
    """Spike activity per MT layer, summed over the T steps and the batch.

    ``counts[layer]``: (N_thr, C, H, W) spikes per threshold and neuron; ``messages[layer]``: (C, H, W)
    neuron-steps in which at least one threshold fired (= graded messages). ``exact`` is False when the
    simulation kept neither count maps nor spikes: then the maps spread the exact per-threshold totals
    uniformly over the layer and graded messages are bounded above by the spike count.
    """

    steps: int
    batch: int
    counts: dict[str, np.ndarray]
    messages: dict[str, np.ndarray]
    totals: dict[str, list[int]]
    exact: bool

    @classmethod
    def from_result(cls, network: QuantizedNetwork, result: SimulationResult) -> Activity:
        batch = int(np.asarray(result.output).shape[0]) if np.ndim(result.output) else 1
        mt_layers = [lay for lay in network.synaptic_layers if isinstance(lay.neuron, MultiThreshold)]
        mapped = all(lay.name in result.count_maps for lay in mt_layers)
        exact = mapped or all(lay.name in result.spikes for lay in mt_layers)
        counts, messages = {}, {}
        for layer in mt_layers:
            if mapped:
                counts[layer.name] = result.count_maps[layer.name].sum(axis=1).astype(np.float64)
                messages[layer.name] = result.message_maps[layer.name].sum(axis=0).astype(np.float64)
            elif exact:
                rec = np.asarray(result.spikes[layer.name])          # (T, N_thr, N, C, H, W)
                counts[layer.name] = rec.sum(axis=(0, 2), dtype=np.int64).astype(np.float64)
                messages[layer.name] = rec.any(axis=1).sum(axis=(0, 1), dtype=np.int64).astype(np.float64)
            else:
                per_thr = np.asarray(result.spike_counts[layer.name], dtype=np.float64)
                maps = np.ones((len(per_thr),) + tuple(layer.shape)) * (per_thr / layer.neurons)[:, None, None, None]
                counts[layer.name] = maps
                messages[layer.name] = maps.sum(axis=0)
        totals = {k: [int(v) for v in vals] for k, vals in result.spike_counts.items()}
        return cls(result.steps, batch, counts, messages, totals, exact)

    def emitted(self, layer: Layer, lowering: Lowering) -> np.ndarray:
        """(C, H, W) messages a layer sends: every compartment spike, or one graded message per firing step."""
        if lowering == "graded":
            return self.messages[layer.name]
        return self.counts[layer.name].sum(axis=0)


def collect_activity(network: QuantizedNetwork, images: np.ndarray, steps: int,
                     backend: SimulatorBackend | None = None) -> tuple[SimulationResult, Activity]:
    """Run a backend (the reference simulator by default) keeping per-neuron spike counts, and
    reduce them to the exact activity maps (memory independent of T)."""
    result = (backend or ReferenceBackend()).run(network, np.asarray(images), steps, record="counts")
    return result, Activity.from_result(network, result)


def compartments_per_neuron(layer: NeuronLayer, lowering: Lowering) -> int:
    if isinstance(layer.neuron, MultiThreshold) and lowering == "compartments":
        return layer.neuron.compartments
    return 1


def emitters_per_neuron(layer: Layer, lowering: Lowering) -> int:
    """Source units (axons) per neuron: one per threshold compartment, one graded, none for ACC."""
    neuron = getattr(layer, "neuron", None)
    if not isinstance(neuron, MultiThreshold):
        return 0
    return neuron.compartments if lowering == "compartments" else 1


def _check_lowering(lowering: Lowering) -> None:
    if lowering not in LOWERINGS:
        raise ConfigError(f"lowering must be one of {LOWERINGS}, got {lowering!r}")


def layer_costs(network: QuantizedNetwork, activity: Activity, lowering: Lowering,
                geometries: dict[str, Geometry] | None = None) -> list[dict[str, Any]]:
    """One dict per neuron layer (topological order), every count per inference (per image)."""
    _check_lowering(lowering)
    if not isinstance(network, QuantizedNetwork):
        raise ConfigError("costs are computed for a quantized network (export first)")
    geos = (geometries if geometries is not None
            else {lay.name: Geometry(network, lay) for lay in network.synaptic_layers})
    batch, steps = max(activity.batch, 1), activity.steps
    rows = []
    for layer in network.synaptic_layers:
        geo = geos[layer.name]
        neuron = layer.neuron
        static = isinstance(layer, Conv) and layer.static
        n_comp = compartments_per_neuron(layer, lowering)
        mt = isinstance(neuron, MultiThreshold)
        row: dict[str, Any] = {
            "layer": layer.name, "type": layer.kind + (" (static)" if static else ""),
            "neuron": "MT" if mt else "ACC", "thresholds": neuron.compartments if mt else 0,
            "shape": list(layer.shape), "depth": layer.depth, "neurons": layer.neurons,
            "compartments": layer.neurons * n_comp,
            "ann_macs": geo.thop_macs(), "ann_macs_valid": geo.valid_macs(),
            "host_macs": geo.thop_macs() if static else 0,
            "host_macs_valid": geo.valid_macs() if static else 0,
        }
        if static:
            row["synapses"] = row["connections"] = 0
            row["synops"] = row["synops_spikes"] = 0.0
        else:
            row["connections"] = sum(geo.synapses(p) for p in geo.parts)
            row["synapses"] = sum(emitters_per_neuron(p.source, lowering) * geo.synapses(p) for p in geo.parts)
            row["synops"] = sum(geo.synops(activity.emitted(p.source, lowering)) for p in geo.parts) / batch
            row["synops_spikes"] = sum(geo.synops(activity.emitted(p.source, "compartments"))
                                       for p in geo.parts) / batch
        if mt:
            per_thr = [v / batch for v in activity.totals[layer.name]]
            row["spikes_per_threshold"] = per_thr
            row["spikes"] = float(sum(per_thr))
            row["messages"] = float(activity.emitted(layer, lowering).sum()) / batch
        else:
            row["spikes_per_threshold"], row["spikes"], row["messages"] = [], 0.0, 0.0
        row["firing_rate"] = row["spikes"] / (layer.neurons * steps) if layer.neurons else 0.0
        row["neuron_updates"] = row["compartments"] * steps
        # a compartment-step that emits a spike is 'active': each compartment spike (compartments), each
        # graded message (graded)
        row["active_updates"] = row["messages"]
        rows.append(row)
    return rows


SUMMED = ("neurons", "compartments", "synapses", "connections", "spikes", "messages", "synops", "synops_spikes",
          "neuron_updates", "active_updates", "host_macs", "host_macs_valid", "ann_macs", "ann_macs_valid")


def totals(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Network totals: every per-layer count summed, plus the paper's raw-spike variants."""
    out: dict[str, Any] = {key: sum(r[key] for r in rows) for key in SUMMED}
    out["spikes_excluding_pool"] = sum(r["spikes"] for r in rows if r["type"] != "pool")
    out["layers"] = len(rows)
    return out

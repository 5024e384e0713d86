"""Time and energy of one inference on the cores of a :class:`~toolchain.hardware.compiler.CoreMap`.

Per core, per inference of T steps (:class:`CoreLoads`): synaptic ops S_k (non-zero weights, the block sum
of :class:`~toolchain.hardware.activity.ChipActivity` ``synops`` over the core's tile), compartments N_k,
and packets P_k (each message the core's neurons send times the destination cores it reaches). Then::

    time per step  t   = max( max_k (S_k / T x time.synop + P_k / T x time.spike + N_k x time.neuron_update)
                              + time.barrier,  time.floor )
    interval           = T x t            (one inference per T steps, back to back: what the benchmark times)
    latency            = (T + network depth) x t
    E_dynamic          = energy.scale x ( S x energy.synop [x graded_synop_scale]
                                          + A x energy.neuron_update_active + (U - A) x energy.neuron_update_inactive
                                          + P x (energy.spike_in_tile + routing.mean_hops x energy.tile_hop) )
                         + host MACs x energy.host_mac
    E_static           = power.static_per_chip x chips x interval          (per inference, pipelined)
    E_total            = E_dynamic + E_static
    E_single           = E_dynamic + power.static_per_chip x chips x latency (one isolated inference)

with U = compartments x T neuron updates, A = messages sent (active updates). Every figure is an
:class:`Estimate`: the profile's central values and its band's ``low`` and ``high`` ends
(:meth:`~toolchain.hardware.profile.Profile.at`): the calibration's run-to-run spread.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .activity import ChipActivity
from .chip import ChipLayer
from .compiler import CoreMap, tap_matrices
from .profile import End, Profile

PJ, NS = 1e-12, 1e-9
ENDS: tuple[End, ...] = ("value", "low", "high")


@dataclass(frozen=True)
class Estimate:
    """A model figure at the profile's central values and at the low and high ends of its bands."""

    value: float
    low: float
    high: float

    @classmethod
    def of(cls, values: dict[End, float]) -> Estimate:
        lo, hi = sorted((values["low"], values["high"]))
        return cls(values["value"], min(lo, values["value"]), max(hi, values["value"]))

    def to_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}


@dataclass
class CoreLoads:
    """Per layer, per core (arrays shaped like the layer's tiling), per inference."""

    synops: dict[str, np.ndarray]
    packets: dict[str, np.ndarray]
    compartments: dict[str, np.ndarray]


def _block_sum(values: np.ndarray, groups: tuple[list, list, list]) -> np.ndarray:
    out = np.asarray(values, dtype=np.float64)
    for axis, bands in enumerate(groups):
        out = np.add.reduceat(out, [a for a, _ in bands], axis=axis)
    return out


def _destinations(source: ChipLayer, consumer: ChipLayer, cmap: CoreMap) -> np.ndarray:
    """(C, H, W) of ``source``: cores of ``consumer`` each source neuron's messages reach."""
    placed = cmap.layer(consumer.name)
    part = next(p for p in consumer.parts if p.source == source.name)
    if consumer.kind == "dense":
        return np.full(source.shape, float(placed.cores))
    rows, cols = tap_matrices(consumer, part.in_hw)
    r = (np.stack([rows[a:b].sum(0) for a, b in placed.groups[1]]) > 0).sum(0).astype(float)
    c = (np.stack([cols[a:b].sum(0) for a, b in placed.groups[2]]) > 0).sum(0).astype(float)
    if consumer.depthwise:
        ch = np.array([sum(1 for a, b in placed.groups[0] if a <= k < b) for k in range(source.shape[0])], float)
    else:
        ch = np.full(source.shape[0], float(len(placed.groups[0])))
    return ch[:, None, None] * r[None, :, None] * c[None, None, :]


def core_loads(layers: list[ChipLayer], cmap: CoreMap, activity: ChipActivity) -> CoreLoads:
    """Exact per-core synaptic ops, packets and compartments (module docstring)."""
    synops, packets, comps = {}, {}, {}
    for layer in layers:
        placed = cmap.layer(layer.name)
        synops[layer.name] = _block_sum(activity.synops[layer.name], placed.groups)
        comps[layer.name] = placed.usage["neurons"]
        pk = np.zeros(placed.usage["neurons"].shape)
        if layer.emits:
            for consumer in layers:
                if any(p.source == layer.name for p in consumer.parts):
                    dest = _destinations(layer, consumer, cmap)
                    pk += _block_sum(activity.emitted[layer.name] * dest, placed.groups)
        packets[layer.name] = pk
    return CoreLoads(synops, packets, comps)


@dataclass
class ChipTiming:
    """Time per step, interval and latency of one inference (every figure with its band)."""

    time_per_step_s: Estimate
    interval_s: Estimate
    latency_s: Estimate
    inferences_per_s: Estimate
    steps: int
    latency_steps: int
    busiest_layer: str
    busiest_core: int
    busiest_synops_per_step: float
    floor_bound: bool

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: getattr(self, k).to_dict() for k in
                               ("time_per_step_s", "interval_s", "latency_s", "inferences_per_s")}
        out.update(steps=self.steps, latency_steps=self.latency_steps, busiest_layer=self.busiest_layer,
                   busiest_core_index=self.busiest_core, busiest_synops_per_step=self.busiest_synops_per_step,
                   floor_bound=self.floor_bound,
                   note="busiest core's load averaged over the T steps; interval = T steps (inferences back to back); "
                        "latency = T + the network's depth")
        return out


def _step(loads: CoreLoads, steps: int, p: Profile) -> tuple[float, str, int, float, bool]:
    t_syn, t_spk, t_upd = p.value("time.synop") * NS, p.value("time.spike") * NS, p.value("time.neuron_update") * NS
    worst, where, syn = -1.0, ("", 0), 0.0
    for name, s in loads.synops.items():
        per_core = (s * t_syn + loads.packets[name] * t_spk) / steps + loads.compartments[name] * t_upd
        idx = int(np.argmax(per_core))
        if float(per_core.flat[idx]) > worst:
            worst, where, syn = float(per_core.flat[idx]), (name, idx), float(s.flat[idx]) / steps
    busy = worst + p.value("time.barrier") * NS
    floor = p.value("time.floor") * NS
    return max(busy, floor), where[0], where[1], syn, floor > busy


def chip_timing(loads: CoreLoads, steps: int, depth: int, profile: Profile) -> ChipTiming:
    per = {end: _step(loads, steps, profile.at(end)) for end in ENDS}
    t = {end: v[0] for end, v in per.items()}
    _, layer, core, syn, floor = per["value"]
    return ChipTiming(Estimate.of(t), Estimate.of({e: steps * v for e, v in t.items()}),
                      Estimate.of({e: (steps + depth) * v for e, v in t.items()}),
                      Estimate.of({e: 1.0 / (steps * v) for e, v in t.items()}), steps, steps + depth, layer, core,
                      syn, floor)


@dataclass
class ChipEnergy:
    """Energy per inference: dynamic, static over the interval, their total, and one isolated inference."""

    dynamic_j: Estimate
    static_j: Estimate
    total_j: Estimate
    single_inference_j: Estimate
    breakdown_j: dict[str, float]
    per_layer_j: dict[str, float]
    op_energies_j: dict[str, float]
    packets: float
    chips: int
    label: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "energy_j": self.total_j.value, "band_j": self.total_j.to_dict(),
                "dynamic_j": self.dynamic_j.to_dict(), "static_j": self.static_j.to_dict(),
                "total_j": self.total_j.to_dict(), "single_inference_j": self.single_inference_j.to_dict(),
                "breakdown_j": dict(self.breakdown_j),
                "per_layer": [{"layer": k, "energy_j": v} for k, v in self.per_layer_j.items()],
                "op_energies_j": dict(self.op_energies_j), "packets": self.packets, "chips": self.chips,
                "notes": list(self.notes)}


def op_energies(p: Profile, graded: bool) -> dict[str, float]:
    """Per-operation energies in joules, ``energy.scale`` applied (host MACs are not scaled)."""
    s = p.value("energy.scale") * PJ
    route = p.value("energy.spike_in_tile") + p.value("routing.mean_hops") * p.value("energy.tile_hop")
    return {"synop": p.value("energy.synop") * (p.value("energy.graded_synop_scale") if graded else 1.0) * s,
            "update_active": p.value("energy.neuron_update_active") * s,
            "update_inactive": p.value("energy.neuron_update_inactive") * s,
            "packet": route * s, "host_mac": p.value("energy.host_mac") * PJ,
            "static_w_per_chip": float(p.value("power.static_per_chip"))}


def _dynamic(layers: list[ChipLayer], activity: ChipActivity, loads: CoreLoads, host_macs: dict[str, float],
             e: dict[str, float]) -> tuple[dict[str, float], dict[str, float]]:
    parts = {"synops": 0.0, "neuron_updates": 0.0, "routing": 0.0, "host_input_layer": 0.0}
    per_layer = {}
    for layer in layers:
        active = float(activity.emitted[layer.name].sum()) if layer.emits else 0.0
        updates = float(layer.compartments * activity.steps)
        row = {"synops": float(activity.synops[layer.name].sum()) * e["synop"],
               "neuron_updates": active * e["update_active"] + (updates - active) * e["update_inactive"],
               "routing": float(loads.packets[layer.name].sum()) * e["packet"],
               "host_input_layer": host_macs.get(layer.name, 0.0) * e["host_mac"]}
        for k, v in row.items():
            parts[k] += v
        per_layer[layer.name] = sum(row.values())
    return parts, per_layer


def chip_energy(layers: list[ChipLayer], activity: ChipActivity, loads: CoreLoads, timing: ChipTiming,
                cmap: CoreMap, profile: Profile, graded: bool = False,
                host_macs: dict[str, float] | None = None) -> ChipEnergy:
    """Energy per inference with its band (module docstring)."""
    host = host_macs or {}
    dyn, static, single = {}, {}, {}
    breakdown: dict[str, float] = {}
    per_layer: dict[str, float] = {}
    t_ends = {"value": timing.time_per_step_s.value, "low": timing.time_per_step_s.low,
              "high": timing.time_per_step_s.high}
    for end in ENDS:
        p = profile.at(end)
        e = op_energies(p, graded)
        parts, layer_j = _dynamic(layers, activity, loads, host, e)
        dyn[end] = sum(parts.values())
        watts = e["static_w_per_chip"] * cmap.chips
        static[end] = watts * activity.steps * t_ends[end]
        single[end] = dyn[end] + watts * timing.latency_steps * t_ends[end]
        if end == "value":
            breakdown = {**parts, "static": static[end]}
            per_layer = layer_j
    total = {e: dyn[e] + static[e] for e in ENDS}
    label = (f"profile {profile.name} (calibrated): scale x (synops x E_synop + updates x E_update "
             "+ packets x E_route) + host MACs x E_MAC + static power x chips x T steps; band = the profile's "
             "low..high ends")
    return ChipEnergy(Estimate.of(dyn), Estimate.of(static), Estimate.of(total), Estimate.of(single), breakdown,
                      per_layer, op_energies(profile, graded), float(sum(v.sum() for v in loads.packets.values())),
                      cmap.chips, label)

"""Hardware reports on a ``compiler`` profile (Loihi 2): the calibrated core mapping, time and energy of
this toolchain's networks (:func:`evaluate_chip`, used by :func:`toolchain.hardware.report.profile_network`)
and of stock lava-dl netx networks (:func:`profile_stock`), in the same report schema."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError, HardwareLimitError
from ..ir import StockNetwork
from ..simulators.physical import PhysicalResult
from .activity import ChipActivity, stock_activity
from .chip import ChipLayer, chip_layers
from .chipcost import ChipEnergy, ChipTiming, CoreLoads, chip_energy, chip_timing, core_loads
from .compiler import CoreMap, compile_network, tap_matrices
from .costs import totals
from .energy import paper_energy
from .profile import Profile, load_profile

SCHEMA = "spiking-unet-hardware-report/2"
PER_CORE_LIMIT = 4096
STOCK_ASSUMPTIONS = [
    "stock netx network in physical time: every layer runs from step 0, every synapse adds one step; the counts "
    "are one inference = the last T steps of the run (T = reset_interval, else the whole run), and a layer "
    "receives its source's spikes of the step before",
    "synaptic ops are counted on non-zero weights (what the chip executes); 'synops' in the layer table counts "
    "every valid weight tap, 'synops_nonzero' the executed ones",
    "a neuron update is charged per neuron per step; 'active' = a neuron-step that emits a spike",
    "routing energy is charged per packet = spike x destination core reached",
    "ANN MACs of the same conv / dense layers in the paper's (thop) convention, output elements x (C_in k^2 + 1)",
]


def jsonable(obj: Any) -> Any:
    """``obj`` with numpy values as plain numbers and non-finite floats as None (JSON-ready)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else None
    return obj


@dataclass
class ChipEvaluation:
    """A network's activity on a compiler profile: its cores, and (when every core fits) time and energy."""

    layers: list[ChipLayer]
    activity: ChipActivity
    cmap: CoreMap
    loads: CoreLoads | None
    timing: ChipTiming | None
    energy: ChipEnergy | None

    @property
    def fits(self) -> bool:
        return self.cmap.fits

    def timing_dict(self) -> dict[str, Any] | None:
        if self.timing is None:
            return None
        t = self.timing
        return {"time_per_step_s": t.time_per_step_s.value, "latency_s": t.latency_s.value,
                "interval_s": t.interval_s.value, "inferences_per_s": t.inferences_per_s.value,
                "band": {k: getattr(t, k).to_dict() for k in ("time_per_step_s", "interval_s", "latency_s",
                                                              "inferences_per_s")},
                "steps": t.steps, "latency_steps": t.latency_steps, "busiest_layer": t.busiest_layer,
                "busiest_core_index": t.busiest_core, "busiest_synops_per_step": t.busiest_synops_per_step,
                "floor_bound": t.floor_bound,
                "note": "the busiest core's load averaged over the T steps (max with time.floor); interval = T steps, "
                        "inferences back to back; latency = T + the network's depth"}


def evaluate_chip(layers: list[ChipLayer], activity: ChipActivity, profile: Profile, depth: int,
                  max_chips: int | None = None, graded: bool = False,
                  host_macs: dict[str, float] | None = None) -> ChipEvaluation:
    """Map ``layers`` with the compiler model; with every core fitting, time and energy per inference."""
    cmap = compile_network(layers, profile, max_chips)
    if not cmap.fits:
        return ChipEvaluation(layers, activity, cmap, None, None, None)
    loads = core_loads(layers, cmap, activity)
    timing = chip_timing(loads, activity.steps, depth, profile)
    energy = chip_energy(layers, activity, loads, timing, cmap, profile, graded, host_macs)
    return ChipEvaluation(layers, activity, cmap, loads, timing, energy)


def fill_rows(rows: list[dict[str, Any]], ev: ChipEvaluation) -> None:
    """Per-layer cores, SynMem, packets, executed synops and energy from a fitting evaluation."""
    assert ev.loads is not None and ev.energy is not None
    for row in rows:
        name = row["layer"]
        placed = ev.cmap.layer(name)
        row["cores"] = placed.cores
        row["synmem_words"] = int(placed.usage["synmem_words"].sum())
        row["packets"] = float(ev.loads.packets[name].sum())
        row["energy_j"] = ev.energy.per_layer_j[name]
        row["synops_nonzero"] = float(ev.activity.synops[name].sum())
        row["core_synops_check"] = float(ev.activity.synops_all[name].sum())


def mapping_summary(cmap: CoreMap) -> dict[str, Any]:
    return cmap.summary(per_core=cmap.cores <= PER_CORE_LIMIT)


def lowering_summary(rows: list[dict[str, Any]], ev: ChipEvaluation) -> dict[str, Any]:
    t = totals(rows)
    out: dict[str, Any] = {"fits": ev.fits, "reasons": list(ev.cmap.reasons),
                           **{k: t[k] for k in ("compartments", "synapses", "messages", "synops", "neuron_updates")}}
    if ev.fits:
        assert ev.energy is not None and ev.timing is not None
        system = ev.cmap.smallest_system()
        out.update(cores=ev.cmap.cores, chips=ev.cmap.chips, synmem_words=sum(r["synmem_words"] for r in rows),
                   synops_nonzero=float(sum(v.sum() for v in ev.activity.synops.values())),
                   energy_profile_j=ev.energy.total_j.value, energy_profile_band_j=ev.energy.total_j.to_dict(),
                   energy_dynamic_j=ev.energy.dynamic_j.value, energy_static_j=ev.energy.static_j.value,
                   time_per_step_s=ev.timing.time_per_step_s.value, latency_s=ev.timing.latency_s.value,
                   fits_target=ev.cmap.chips <= ev.cmap.max_chips,
                   smallest_system=None if system is None else system[0])
    return out


def _stock_rows(network: StockNetwork, layers: list[ChipLayer], activity: ChipActivity) -> list[dict[str, Any]]:
    rows = []
    for lay in layers:
        layer = network[lay.name]
        c, h, w = lay.shape
        if lay.kind == "dense":
            synapses, macs = lay.neurons * lay.in_units, lay.neurons * (lay.in_units + 1)
        elif lay.kind == "conv":
            r, cl = tap_matrices(lay, lay.parts[0].in_hw)
            synapses = int(r.sum() * cl.sum()) * lay.in_units * c
            macs = lay.neurons * (lay.in_units * lay.taps + 1)
        else:
            synapses = macs = 0
        spikes = activity.spikes[lay.name]
        syn_all = float(activity.synops_all[lay.name].sum())
        rows.append({"layer": lay.name, "type": lay.kind, "neuron": "CUBA", "thresholds": 1, "shape": [c, h, w],
                     "depth": layer.depth, "neurons": lay.neurons, "compartments": lay.compartments,
                     "synapses": synapses, "connections": synapses, "ann_macs": macs, "ann_macs_valid": synapses,
                     "host_macs": 0, "host_macs_valid": 0, "spikes_per_threshold": [spikes], "spikes": spikes,
                     "messages": spikes, "synops": syn_all, "synops_spikes": syn_all,
                     "firing_rate": spikes / (lay.neurons * activity.steps) if lay.neurons else 0.0,
                     "neuron_updates": lay.compartments * activity.steps, "active_updates": spikes})
    return rows


def profile_stock(network: StockNetwork, trace: PhysicalResult, profile: Profile, window: tuple[int, int],
                  reference: Profile | None = None, max_chips: int | None = None, strict: bool = True,
                  settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """The hardware report of a stock netx network's run (``trace``: its physical-time record), counted over
    the steps ``window`` = [t0, t1) (one inference), on a ``compiler`` profile."""
    if profile.resource_model != "compiler":
        raise ConfigError(f"stock netx networks are profiled with a compiler resource model (loihi2); profile "
                          f"{profile.name} has {profile.resource_model or profile.kind!r}")
    reference = reference or load_profile("generic45nm")
    layers = chip_layers(network)
    activity = stock_activity(network, layers, trace, window)
    depth = max(lay.depth for lay in network.neuron_layers)
    ev = evaluate_chip(layers, activity, profile, depth, max_chips)
    if strict and not ev.fits:
        more = f" (and {len(ev.cmap.reasons) - 1} more problem(s))" if len(ev.cmap.reasons) > 1 else ""
        raise HardwareLimitError(f"the network does not fit {profile.name}: {ev.cmap.reasons[0]}{more}")
    rows = _stock_rows(network, layers, activity)
    tot = totals(rows)
    energy: dict[str, Any] = paper_energy(tot, reference)
    energy["profile"] = None
    if ev.fits:
        assert ev.energy is not None
        fill_rows(rows, ev)
        energy["profile"] = ev.energy.to_dict()
        energy["ratios"]["ann_over_profile"] = energy["ann"]["energy_j"] / ev.energy.total_j.value
        energy["ratios"]["ann_int8_over_profile"] = energy["ann"]["energy_int8_j"] / ev.energy.total_j.value
        tot.update(cores=ev.cmap.cores, chips=ev.cmap.chips, packets=ev.energy.packets,
                   energy_profile_j=ev.energy.total_j.value,
                   synops_nonzero=float(sum(v.sum() for v in activity.synops.values())))
    tot.update(energy_paper_j=energy["paper"]["energy_j"], energy_paper_synops_j=energy["paper_synops"]["energy_j"],
               energy_ann_j=energy["ann"]["energy_j"], energy_ann_int8_j=energy["ann"]["energy_int8_j"])
    report = {
        "schema": SCHEMA, "profile": profile.to_dict(),
        "reference_profile": {"name": reference.name, "file": reference.path},
        "network": {"kind": "stock netx", "file": network.meta.path, "input_shape": list(network.input.shape),
                    "neuron_layers": len(layers), "latency_steps": depth, "run": dict(settings or {})},
        "activity": {"batch": 1, "steps": activity.steps, "window": list(window), "exact": True,
                     "note": f"exact spike maps of steps {window[0]}..{window[1] - 1} (one inference)"},
        "lowering": "binary", "layers": rows, "totals": tot, "energy": energy,
        "mapping": mapping_summary(ev.cmap) if ev.fits else None, "fits": ev.fits,
        "reasons": list(ev.cmap.reasons), "timing": ev.timing_dict(),
        "lowerings": {"binary": lowering_summary(rows, ev)},
        "assumptions": {"profile": profile.assumed(), "calibrated": profile.with_status("measured", "derived"),
                        "model": STOCK_ASSUMPTIONS},
    }
    return jsonable(report)


def host_macs_of(rows: list[dict[str, Any]]) -> dict[str, float]:
    return {r["layer"]: float(r["host_macs"]) for r in rows}

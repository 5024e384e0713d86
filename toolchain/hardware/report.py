"""Assemble a hardware profile of one run of this toolchain's network: costs, mapping, timing, energy by both
methods, the two MT lowerings side by side; write report.json, report.md and PNG plots (all atomically).

On a ``compiler`` profile (Loihi 2) the mapping, time and energy come from the calibrated model
(:mod:`.report_chip`); on a ``bytes`` profile (Loihi 1) from :mod:`.mapping`, :mod:`.timing` and
:func:`.energy.profile_energy`. Stock netx networks: :func:`.report_chip.profile_stock`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from toolchain.errors import ConfigError, HardwareLimitError
from toolchain.files import atomic_path, write_json
from toolchain.hardware.activity import quantized_activity
from toolchain.hardware.chip import chip_layers
from toolchain.hardware.costs import Activity, layer_costs, totals
from toolchain.hardware.energy import paper_energy, profile_energy
from toolchain.hardware.geometry import Geometry
from toolchain.hardware.mapping import plan
from toolchain.hardware.plots import PLOTS
from toolchain.hardware.profile import Profile, load_profile
from toolchain.hardware.report_chip import (
    PER_CORE_LIMIT,
    SCHEMA,
    evaluate_chip,
    fill_rows,
    host_macs_of,
    jsonable,
    lowering_summary,
    mapping_summary,
)
from toolchain.hardware.report_md import to_markdown
from toolchain.hardware.timing import core_loads, step_time
from toolchain.ir import QuantizedNetwork
from toolchain.simulators.result import SimulationResult
from toolchain.vocab import LOWERINGS, Lowering

__all__ = ["MODEL_ASSUMPTIONS", "SCHEMA", "profile_network", "to_markdown", "write_report"]
MODEL_ASSUMPTIONS = [
    "counts are per inference (per image): simulator batch totals divided by the batch size",
    "compartments lowering: N compartments per MT neuron, binary spikes, N_src x taps synapses; graded lowering: "
    "one compartment, at most one graded message per neuron per step, 1 x taps synapses",
    "synapses = weight taps joining valid (non-padding) pixels, border- and stride-exact; synaptic ops = "
    "sum over source neurons of messages x exact fan-out ('synops'); the calibrated Loihi 2 model charges time and "
    "energy for the ops on non-zero weights ('synops_nonzero'), which is what the chip executes",
    "a neuron update is charged per compartment per step (T steps); 'active' = a compartment-step that emits",
    "routing energy is charged per packet = message x destination core reached",
    "the static first layer conv(x) runs once on the host (host MACs, paper/thop convention); its neurons are on chip",
    "a core holds one layer's neurons; time per step = the busiest core (activity averaged over T)",
    "ANN MACs use the paper's (thop) convention, output elements x (C_in k^2 + 1); reproduces Table 5's 6.55e10",
    "Loihi 2 (compiler model): under the compartments lowering every threshold compartment counts as a neuron of "
    "the core, has its own kernel rows in SynMem and its own neuron group; conv / convT / pool kernels are stored "
    "once per core (what the compiler does for conv); concat delays cost no extra SynMem (not measured)",
]


def _evaluate_bytes(network: QuantizedNetwork, activity: Activity, profile: Profile, lowering: Lowering,
                    geos: dict[str, Geometry], max_chips: int | None, result: dict[str, Any]) -> dict[str, Any]:
    rows = result["rows"]
    mapping, reasons = plan(network, profile, lowering, max_chips, geos)
    result["fits"], result["reasons"] = mapping is not None, reasons
    if mapping is None:
        result["summary"] = {"fits": False, "reasons": reasons, **_counts(rows)}
        return result
    loads = core_loads(network, mapping, activity, geos)
    timing = step_time(network, mapping, loads, activity.steps, profile)
    packets = {name: float(v.sum()) for name, v in loads.packets.items()}
    energy = profile_energy(rows, packets, profile, lowering, mapping.chips, timing["latency_s"])
    by_layer = {e["layer"]: e for e in energy["per_layer"]}
    for row in rows:
        lm = mapping.layer(row["layer"])
        row["cores"] = lm.cores
        row["synapse_bytes"] = int(lm.synapse_bytes.sum())
        row["memory_bytes"] = int(lm.memory.sum())
        row["packets"] = packets[row["layer"]]
        row["energy_j"] = by_layer[row["layer"]]["energy_j"]
        row["core_synops_check"] = float(loads.events[row["layer"]].sum())
    result.update(mapping=mapping.summary(per_core=mapping.cores <= PER_CORE_LIMIT), timing=timing, energy=energy,
                  cores=mapping.cores, chips=mapping.chips)
    result["summary"] = {"fits": True, "reasons": [], **_counts(rows), "cores": mapping.cores, "chips": mapping.chips,
                         "synapse_bytes": sum(r["synapse_bytes"] for r in rows), "energy_profile_j": energy["energy_j"],
                         "time_per_step_s": timing["time_per_step_s"], "latency_s": timing["latency_s"]}
    return result


def _counts(rows: list[dict[str, Any]]) -> dict[str, Any]:
    t = totals(rows)
    return {k: t[k] for k in ("compartments", "synapses", "messages", "synops", "neuron_updates")}


def _evaluate(network: QuantizedNetwork, activity: Activity, profile: Profile, lowering: Lowering,
              geos: dict[str, Geometry], max_chips: int | None) -> dict[str, Any]:
    rows = layer_costs(network, activity, lowering, geos)
    result: dict[str, Any] = {"lowering": lowering, "rows": rows, "fits": None, "reasons": [], "mapping": None,
                              "timing": None, "energy": None, "cores": None, "chips": None,
                              "summary": {"fits": None, "reasons": [], **_counts(rows)}}
    if not profile.neuromorphic:
        return result
    if profile.resource_model == "bytes":
        return _evaluate_bytes(network, activity, profile, lowering, geos, max_chips, result)
    layers = chip_layers(network, lowering)
    chip_act = quantized_activity(network, layers, activity, lowering)
    ev = evaluate_chip(layers, chip_act, profile, network.latency, max_chips, lowering == "graded", host_macs_of(rows))
    result["fits"], result["reasons"] = ev.fits, list(ev.cmap.reasons)
    if ev.fits:
        assert ev.energy is not None
        fill_rows(rows, ev)
        result.update(mapping=mapping_summary(ev.cmap), timing=ev.timing_dict(), energy=ev.energy.to_dict(),
                      cores=ev.cmap.cores, chips=ev.cmap.chips)
    result["summary"] = lowering_summary(rows, ev)
    return result


def profile_network(network: QuantizedNetwork, result: SimulationResult | None, profile: Profile,
                    steps: int | None = None, *, activity: Activity | None = None,
                    lowering: Lowering | None = None, max_chips: int | None = None,
                    reference: Profile | None = None, strict: bool = True) -> dict[str, Any]:
    """Everything about one network run on one hardware profile, as a JSON-compatible dict.

    ``result`` is a backend's :class:`SimulationResult`; synaptic ops are exact when it kept count maps
    or spikes (``record="counts"`` / ``"spikes"``; :func:`collect_activity` runs one), else they are
    estimated (flagged). With ``strict``, a primary lowering whose layers do not fit a core raises
    HardwareLimitError (on a compiler profile, needing more chips than ``chip.max_chips`` does not: the
    report says so and names the smallest listed system that holds the network).
    """
    if activity is None:
        if result is None:
            raise ConfigError("profile_network needs a SimulationResult or an Activity")
        activity = Activity.from_result(network, result)
    if steps is not None and steps != activity.steps:
        raise ConfigError(f"steps {steps} differ from the simulated {activity.steps}; simulate with T={steps}")
    lowering = lowering or network.lowering
    if lowering not in LOWERINGS:
        raise ConfigError(f"lowering must be one of {LOWERINGS}, got {lowering!r}")
    if reference is None:
        reference = profile if profile.kind == "reference" else load_profile("generic45nm")
    geos = {lay.name: Geometry(network, lay) for lay in network.synaptic_layers}
    evals = {lw: _evaluate(network, activity, profile, lw, geos, max_chips)
             for lw in (lowering, *[x for x in LOWERINGS if x != lowering])}
    main = evals[lowering]
    if profile.neuromorphic and not main["fits"] and strict:
        reasons = main["reasons"]
        more = f" (and {len(reasons) - 1} more problem(s))" if len(reasons) > 1 else ""
        raise HardwareLimitError(f"{lowering} lowering does not fit {profile.name}: {reasons[0]}{more}")
    tot = dict(totals(main["rows"]))
    energy: dict[str, Any] = paper_energy(tot, reference)
    energy["profile"] = main["energy"]
    if main["energy"]:
        energy["ratios"]["ann_over_profile"] = energy["ann"]["energy_j"] / main["energy"]["energy_j"]
        energy["ratios"]["ann_int8_over_profile"] = energy["ann"]["energy_int8_j"] / main["energy"]["energy_j"]
        tot.update(cores=main["cores"], chips=main["chips"], packets=main["energy"]["packets"],
                   energy_profile_j=main["energy"]["energy_j"])
        if "synops_nonzero" in main["summary"]:
            tot["synops_nonzero"] = main["summary"]["synops_nonzero"]
    tot.update(energy_paper_j=energy["paper"]["energy_j"], energy_paper_synops_j=energy["paper_synops"]["energy_j"],
               energy_ann_j=energy["ann"]["energy_j"], energy_ann_int8_j=energy["ann"]["energy_int8_j"])
    report = {
        "schema": SCHEMA,
        "profile": profile.to_dict(), "reference_profile": {"name": reference.name, "file": reference.path},
        "network": {"kind": "spiking-unet", "input_shape": list(network.input.shape),
                    "neuron_layers": len(network.neuron_layers), "latency_steps": network.latency,
                    "weight_bits": network.meta.weight_bits,
                    "thresholds": None if network.meta.thresholds is None else list(network.meta.thresholds),
                    "task": network.meta.task, "width": network.meta.width, "depth": network.meta.depth},
        "activity": {"batch": activity.batch, "steps": activity.steps, "exact": activity.exact,
                     "note": "exact spike maps" if activity.exact else
                     "spike maps not recorded: synaptic ops estimated from per-threshold totals spread uniformly; "
                     "graded messages bounded above by spikes (run with record=True or collect_activity)"},
        "lowering": lowering, "layers": main["rows"], "totals": tot, "energy": energy,
        "mapping": main["mapping"], "fits": main["fits"], "reasons": main["reasons"], "timing": main["timing"],
        "lowerings": {lw: ev["summary"] for lw, ev in evals.items()},
        "assumptions": {"profile": profile.assumed(), "calibrated": profile.with_status("measured", "derived"),
                        "model": MODEL_ASSUMPTIONS},
    }
    return jsonable(report)


def write_report(report: dict[str, Any], out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write report.json, report.md and the PNG plots into ``out_dir`` (atomically); returns the paths."""
    out = Path(out_dir)
    paths = {"json": out / "report.json", "markdown": out / "report.md"}
    write_json(paths["json"], report)
    with atomic_path(paths["markdown"]) as tmp:
        tmp.write_text(to_markdown(report))
    for name, draw in PLOTS.items():
        paths[name] = out / name
        draw(report, paths[name])
    return paths

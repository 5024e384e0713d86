"""Assemble a hardware profile of one network run: costs, mapping, timing, energy by both methods,
the two MT lowerings side by side; write report.json, report.md and PNG plots (all atomically)."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from toolchain.errors import ConfigError, HardwareLimitError
from toolchain.files import atomic_path, write_json
from toolchain.hardware.costs import Activity, layer_costs, totals
from toolchain.hardware.energy import paper_energy, profile_energy
from toolchain.hardware.geometry import Geometry
from toolchain.hardware.mapping import plan
from toolchain.hardware.plots import PLOTS
from toolchain.hardware.profile import Profile, load_profile
from toolchain.hardware.timing import core_loads, step_time
from toolchain.ir import QuantizedNetwork
from toolchain.simulators.result import SimulationResult
from toolchain.vocab import LOWERINGS, Lowering

SCHEMA = "spiking-unet-hardware-report/1"
PER_CORE_LIMIT = 4096
MODEL_ASSUMPTIONS = [
    "counts are per inference (per image): simulator batch totals divided by the batch size",
    "compartments lowering: N compartments per MT neuron, binary spikes, N_src x taps synapses; graded lowering: "
    "one compartment, at most one graded message per neuron per step, 1 x taps synapses",
    "synapses = weight taps joining valid (non-padding) pixels, border- and stride-exact; synaptic ops = "
    "sum over source neurons of messages x exact fan-out",
    "a neuron update is charged per compartment per step (T steps); 'active' = a compartment-step that emits",
    "routing energy is charged per packet = message x destination core reached",
    "the static first layer conv(x) runs once on the host (host MACs, paper/thop convention)",
    "a core holds one layer's neurons; time per step = busiest core (activity averaged over T) + barrier",
    "ANN MACs use the paper's (thop) convention, output elements x (C_in k^2 + 1); reproduces Table 5's 6.55e10",
]


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else None
    return obj


def _evaluate(network: QuantizedNetwork, activity: Activity, profile: Profile, lowering: Lowering,
              geos: dict[str, Geometry], max_chips: int | None) -> dict[str, Any]:
    rows = layer_costs(network, activity, lowering, geos)
    result: dict[str, Any] = {"lowering": lowering, "rows": rows, "totals": totals(rows), "fits": None,
                              "reasons": [], "mapping": None, "timing": None, "energy": None}
    if not profile.neuromorphic:
        return result
    mapping, reasons = plan(network, profile, lowering, max_chips, geos)
    result["fits"], result["reasons"] = mapping is not None, reasons
    if mapping is None:
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
    result.update(mapping=mapping, timing=timing, energy=energy)
    return result


def _lowering_summary(ev: dict[str, Any]) -> dict[str, Any]:
    t = ev["totals"]
    out = {"fits": ev["fits"], "reasons": ev["reasons"],
           **{k: t[k] for k in ("compartments", "synapses", "messages", "synops", "neuron_updates")}}
    if ev["mapping"] is not None:
        out.update(cores=ev["mapping"].cores, chips=ev["mapping"].chips,
                   synapse_bytes=sum(r["synapse_bytes"] for r in ev["rows"]),
                   energy_profile_j=ev["energy"]["energy_j"], time_per_step_s=ev["timing"]["time_per_step_s"],
                   latency_s=ev["timing"]["latency_s"])
    return out


def profile_network(network: QuantizedNetwork, result: SimulationResult | None, profile: Profile,
                    steps: int | None = None, *, activity: Activity | None = None,
                    lowering: Lowering | None = None, max_chips: int | None = None,
                    reference: Profile | None = None, strict: bool = True) -> dict[str, Any]:
    """Everything about one network run on one hardware profile, as a JSON-compatible dict.

    ``result`` is a backend's :class:`SimulationResult`; synaptic ops are exact when it kept count maps
    or spikes (``record="counts"`` / ``"spikes"``; :func:`collect_activity` runs one), else they are
    estimated (flagged). With ``strict``, a primary lowering that does not fit raises HardwareLimitError.
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
    tot = dict(main["totals"])
    energy: dict[str, Any] = paper_energy(tot, reference)
    energy["profile"] = main["energy"]
    if main["energy"]:
        energy["ratios"]["ann_over_profile"] = energy["ann"]["energy_j"] / main["energy"]["energy_j"]
        tot.update(cores=main["mapping"].cores, chips=main["mapping"].chips, packets=main["energy"]["packets"],
                   energy_profile_j=main["energy"]["energy_j"])
    tot.update(energy_paper_j=energy["paper"]["energy_j"], energy_paper_synops_j=energy["paper_synops"]["energy_j"],
               energy_ann_j=energy["ann"]["energy_j"])
    mapping = main["mapping"]
    report = {
        "schema": SCHEMA,
        "profile": profile.to_dict(), "reference_profile": {"name": reference.name, "file": reference.path},
        "network": {"input_shape": list(network.input.shape), "neuron_layers": len(network.neuron_layers),
                    "latency_steps": network.latency, "weight_bits": network.meta.weight_bits,
                    "thresholds": None if network.meta.thresholds is None else list(network.meta.thresholds),
                    "task": network.meta.task, "width": network.meta.width, "depth": network.meta.depth},
        "activity": {"batch": activity.batch, "steps": activity.steps, "exact": activity.exact,
                     "note": "exact spike maps" if activity.exact else
                     "spike maps not recorded: synaptic ops estimated from per-threshold totals spread uniformly; "
                     "graded messages bounded above by spikes (run with record=True or collect_activity)"},
        "lowering": lowering, "layers": main["rows"], "totals": tot, "energy": energy,
        "mapping": mapping.summary(per_core=mapping.cores <= PER_CORE_LIMIT) if mapping else None,
        "fits": main["fits"], "reasons": main["reasons"], "timing": main["timing"],
        "lowerings": {lw: _lowering_summary(ev) for lw, ev in evals.items()},
        "assumptions": {"profile": profile.assumed(), "model": MODEL_ASSUMPTIONS},
    }
    return _jsonable(report)


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return f"{x:.3g}" if x and (abs(x) >= 1e4 or abs(x) < 1e-2) else f"{x:,.2f}".rstrip("0").rstrip(".")
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return lines


def to_markdown(report: dict[str, Any]) -> str:
    p, t, e = report["profile"], report["totals"], report["energy"]
    out = [f"# Hardware report: {p['name']} ({report['lowering']} lowering)", "",
           f"Profile file `{p['file']}`"
           + (f", overrides: `{' '.join(p['overrides'])}`" if p["overrides"] else "") + ".",
           f"T = {report['activity']['steps']} steps, batch {report['activity']['batch']}, activity: "
           f"{report['activity']['note']}. Counts are per inference.", "", "## Energy per inference", ""]
    rows = [[e["paper"]["label"], e["paper"]["flops"], e["paper"]["energy_j"], e["ratios"]["ann_over_paper"]],
            [e["paper_synops"]["label"], e["paper_synops"]["flops"], e["paper_synops"]["energy_j"],
             e["ratios"]["ann_over_paper_synops"]]]
    if e.get("profile"):
        rows.append([e["profile"]["label"], None, e["profile"]["energy_j"], e["ratios"].get("ann_over_profile")])
    rows.append([e["ann"]["label"], e["ann"]["macs"], e["ann"]["energy_j"], 1.0])
    out += _table(["method", "ops", "energy (J)", "ANN / method"], rows)
    out += ["", "Paper's reference-code variant (pooling neurons left out): "
            f"{_fmt(e['paper']['energy_excluding_pool_j'])} J. "
            f"ANN with int8 MACs ({_fmt(e['ann']['energy_int8_j'])} J) for comparison.", ""]
    if e.get("profile"):
        out += ["Profile-method breakdown (J): "
                + ", ".join(f"{k} {_fmt(v)}" for k, v in e["profile"]["breakdown_j"].items()), ""]
    out += ["## Per layer", ""]
    columns = ["layer", "type", "shape", "neurons", "compartments", "cores", "synapses", "spikes", "synops",
               "energy (J)"]
    out += _table(columns,
                  [[r["layer"], r["type"], "x".join(map(str, r["shape"])), r["neurons"], r["compartments"],
                    r.get("cores"), r["synapses"], r["spikes"], r["synops"], r.get("energy_j")]
                   for r in report["layers"]])
    out += ["", "## Totals", ""]
    out += _table(["quantity", "value"], [[k, v] for k, v in t.items()])
    out += ["", "## MT lowerings compared", ""]
    keys = ["fits", "compartments", "synapses", "messages", "synops", "cores", "chips", "synapse_bytes",
            "energy_profile_j", "time_per_step_s", "latency_s"]
    lw = report["lowerings"]
    out += _table(["quantity", *lw.keys()], [[k, *[lw[n].get(k) for n in lw]] for k in keys])
    for name, s in lw.items():
        for reason in s["reasons"]:
            out.append(f"- {name} does not fit: {reason}")
    if report["mapping"]:
        m = report["mapping"]
        out += ["", "## Mapping", "", f"{m['cores']} cores on {m['chips']} chip(s) (max {m['max_chips']}); "
                f"per-core limits {m['limits']}.", ""]
        out += _table(["layer", "cores", "tile (c,h,w)", "compartments max", "memory max", "fan-in max", "fan-out max"],
                      [[x["layer"], x["cores"], "x".join(map(str, x["tile"])), x["compartments_util_max"],
                        x["memory_util_max"], x["fan_in_util_max"], x["fan_out_util_max"]] for x in m["layers"]])
    if report["timing"]:
        tm = report["timing"]
        out += ["", f"Time per step {_fmt(tm['time_per_step_s'])} s (busiest core in {tm['busiest_layer']}); "
                f"latency {tm['latency_steps']} steps = {_fmt(tm['latency_s'])} s. {tm['note']}."]
    out += ["", "## Assumptions", ""]
    out += [f"- {a}" for a in report["assumptions"]["model"]]
    out += [f"- `{k}` = {q['value']} {q['unit']} (assumed): {q['source']}"
            for k, q in report["assumptions"]["profile"].items()]
    out += ["", "## Plots", ""] + [f"![{name}]({name})" for name in PLOTS]
    return "\n".join(out) + "\n"


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

"""report.md of a hardware report (this toolchain's networks and stock netx networks, either resource model)."""
from __future__ import annotations

from typing import Any

from toolchain.hardware.plots import PLOTS


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return f"{x:.3g}" if x and (abs(x) >= 1e4 or abs(x) < 1e-2) else f"{x:,.2f}".rstrip("0").rstrip(".")
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, dict) and {"value", "low", "high"} <= set(x):
        return f"{_fmt(x['value'])} ({_fmt(x['low'])}..{_fmt(x['high'])})"
    return str(x)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return lines


def _energy(report: dict[str, Any]) -> list[str]:
    e = report["energy"]
    ratios = e["ratios"]
    rows = [[e["paper"]["label"], e["paper"]["flops"], e["paper"]["energy_j"], ratios["ann_over_paper"]],
            [e["paper_synops"]["label"], e["paper_synops"]["flops"], e["paper_synops"]["energy_j"],
             ratios["ann_over_paper_synops"]]]
    prof = e.get("profile")
    if prof:
        rows.append([prof["label"], None, prof.get("band_j", prof["energy_j"]), ratios.get("ann_over_profile")])
    rows.append([e["ann"]["label"], e["ann"]["macs"], e["ann"]["energy_j"], 1.0])
    rows.append(["ANN, int8: MACs x 0.23 pJ (Horowitz 2014, 45 nm int8 MAC)", e["ann"]["macs"],
                 e["ann"]["energy_int8_j"], e["ann"]["energy_j"] / e["ann"]["energy_int8_j"]
                 if e["ann"]["energy_int8_j"] else None])
    out = _table(["method", "ops", "energy (J)", "ANN fp32 / method"], rows)
    out += ["", "Paper's reference-code variant (pooling neurons left out): "
            f"{_fmt(e['paper']['energy_excluding_pool_j'])} J. The paper's eq. 13 is the paper's method (raw spikes "
            "x 0.9 pJ), not a hardware estimate; the ANN rows are 45 nm figures (fp32, the paper's; int8 beside it), "
            "not a measured CPU or GPU.", ""]
    if prof:
        out += ["Profile-method breakdown (J): "
                + ", ".join(f"{k} {_fmt(v)}" for k, v in prof["breakdown_j"].items()), ""]
        if "dynamic_j" in prof:
            out += [f"Energy per inference with its band (low..high: the calibration's run-to-run spread): dynamic "
                    f"{_fmt(prof['dynamic_j'])} J, static {_fmt(prof['static_j'])} J, total {_fmt(prof['total_j'])} J "
                    f"(inferences back to back, static power over T steps); one isolated inference, static power "
                    f"over its latency: {_fmt(prof['single_inference_j'])} J.", ""]
    return out


def _mapping(report: dict[str, Any]) -> list[str]:
    m = report["mapping"]
    resources = m.get("resources", ["compartments", "memory", "fan_in", "fan_out"])
    out = ["", "## Mapping", "", f"{m['cores']} cores on {m['chips']} chip(s) of {m['cores_per_chip']} cores "
           f"(target {m['max_chips']} chip(s)); per-core limits {m['limits']}.", ""]
    if m.get("model") == "compiler":
        system = m.get("smallest_system")
        largest = ", ".join(f"{x['layer']} ({x['cores']} cores, bound by {x['binding']})" for x in m["largest_layers"])
        if m["fits_target"]:
            out += [f"Fits the target ({m['max_chips']} chip(s)). Largest layers: {largest}.", ""]
        else:
            where = (f"the smallest listed system that holds it is {system['name']} ({system['chips']} chips)"
                     if system else "no listed system is large enough")
            out += [f"**Does not fit the target ({m['max_chips']} chips)**: it needs {m['chips']} chips; {where}. "
                    f"Largest layers: {largest}.", ""]
    header = ["layer", "cores", "tile (c,h,w)"] + [f"{r} max" for r in resources]
    if m.get("model") == "compiler":
        header.append("binding")
    rows = []
    for x in m["layers"]:
        row = [x["layer"], x["cores"], "x".join(map(str, x["tile"]))] + [x[f"{r}_util_max"] for r in resources]
        if m.get("model") == "compiler":
            row.append(x["binding"])
        rows.append(row)
    return out + _table(header, rows)


def to_markdown(report: dict[str, Any]) -> str:
    p, t = report["profile"], report["totals"]
    out = [f"# Hardware report: {p['name']} ({report['lowering']} lowering)", "",
           f"Profile file `{p['file']}`"
           + (f", overrides: `{' '.join(p['overrides'])}`" if p["overrides"] else "") + ".",
           f"T = {report['activity']['steps']} steps, batch {report['activity']['batch']}, activity: "
           f"{report['activity']['note']}. Counts are per inference.", "", "## Energy per inference", ""]
    out += _energy(report)
    out += ["## Per layer", ""]
    columns = ["layer", "type", "shape", "neurons", "compartments", "cores", "synapses", "spikes", "synops",
               "energy (J)"]
    nonzero = any("synops_nonzero" in r for r in report["layers"])
    if nonzero:
        columns.insert(-1, "synops (non-zero w)")
    out += _table(columns,
                  [[r["layer"], r["type"], "x".join(map(str, r["shape"])), r["neurons"], r["compartments"],
                    r.get("cores"), r["synapses"], r["spikes"], r["synops"],
                    *([r.get("synops_nonzero")] if nonzero else []), r.get("energy_j")]
                   for r in report["layers"]])
    out += ["", "## Totals", ""]
    out += _table(["quantity", "value"], [[k, v] for k, v in t.items()])
    out += ["", "## MT lowerings compared" if report["lowering"] != "binary" else "## Summary", ""]
    keys = ["fits", "compartments", "synapses", "messages", "synops", "synops_nonzero", "cores", "chips",
            "synmem_words", "synapse_bytes", "energy_profile_j", "energy_profile_band_j", "time_per_step_s",
            "latency_s", "smallest_system"]
    lw = report["lowerings"]
    keys = [k for k in keys if any(k in s for s in lw.values())]
    out += _table(["quantity", *lw.keys()], [[k, *[lw[n].get(k) for n in lw]] for k in keys])
    for name, s in lw.items():
        for reason in s["reasons"]:
            out.append(f"- {name} does not fit: {reason}")
    if report["mapping"]:
        out += _mapping(report)
    if report["timing"]:
        tm = report["timing"]
        band = tm.get("band", {})
        out += ["", f"Time per step {_fmt(band.get('time_per_step_s', tm['time_per_step_s']))} s (busiest core in "
                f"{tm['busiest_layer']}); latency {tm['latency_steps']} steps = "
                f"{_fmt(band.get('latency_s', tm['latency_s']))} s. {tm['note']}."]
    out += ["", "## Assumptions", ""]
    out += [f"- {a}" for a in report["assumptions"]["model"]]
    out += [f"- `{k}` = {q['value']} {q['unit']} (assumed): {q['source']}"
            for k, q in report["assumptions"]["profile"].items()]
    calibrated = report["assumptions"].get("calibrated") or {}
    if calibrated:
        out += ["", "## Measured and derived profile values (sources in the profile file)", ""]
        out += [f"- `{k}` = {q['value']} {q['unit']}"
                + (f" (band {q['low']}..{q['high']})" if "low" in q else "")
                + f", {q['status']} [{', '.join(q.get('refs', []))}]: {q['source']}" for k, q in calibrated.items()]
    out += ["", "## Plots", ""] + [f"![{name}]({name})" for name in PLOTS]
    return "\n".join(out) + "\n"

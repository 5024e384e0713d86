"""PNG plots of a hardware report (matplotlib's object API with the Agg canvas: no pyplot, no global backend)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from toolchain.files import atomic_path


def _save(fig: Figure, target: Path) -> None:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=110)


def _short(names: list[str]) -> list[str]:
    return [n if len(n) <= 22 else "…" + n[-21:] for n in names]


def spikes_per_layer(report: dict[str, Any], target: Path) -> None:
    rows = [r for r in report["layers"] if r["spikes_per_threshold"]]
    fig = Figure(figsize=(max(6, 0.45 * len(rows) + 2), 4.2))
    ax = fig.add_subplot()
    x = np.arange(len(rows))
    n_thr = max((len(r["spikes_per_threshold"]) for r in rows), default=0)
    bottom = np.zeros(len(rows))
    for i in range(n_thr):
        vals = np.array([r["spikes_per_threshold"][i] if i < len(r["spikes_per_threshold"]) else 0 for r in rows])
        ax.bar(x, vals, bottom=bottom, label=f"threshold {i + 1}")
        bottom += vals
    ax.set_xticks(x, _short([r["layer"] for r in rows]), rotation=70, ha="right", fontsize=7)
    ax.set_ylabel("spikes per inference")
    ax.set_title("Spikes per layer, by threshold (highest first)")
    if n_thr:
        ax.legend(fontsize=7)
    _save(fig, target)


def firing_rate(report: dict[str, Any], target: Path) -> None:
    rows = [r for r in report["layers"] if r["spikes_per_threshold"]]
    fig = Figure(figsize=(max(6, 0.45 * len(rows) + 2), 4.2))
    ax = fig.add_subplot()
    ax.bar(np.arange(len(rows)), [r["firing_rate"] for r in rows], color="tab:orange")
    ax.set_xticks(np.arange(len(rows)), _short([r["layer"] for r in rows]), rotation=70, ha="right", fontsize=7)
    ax.set_ylabel("spikes per neuron per step")
    ax.set_title("Firing rate per layer (all thresholds)")
    _save(fig, target)


def energy_breakdown(report: dict[str, Any], target: Path) -> None:
    energy = report["energy"]
    fig = Figure(figsize=(9, 4.2))
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    labels = ["ANN (fp32 MAC)", "ANN (int8 MAC)", "paper eq. 13 (spikes)", "paper (synops)"]
    values = [energy["ann"]["energy_j"], energy["ann"]["energy_int8_j"], energy["paper"]["energy_j"],
              energy["paper_synops"]["energy_j"]]
    errors = [[0.0] * 4, [0.0] * 4]
    if energy.get("profile"):
        labels.append(f"profile {report['profile']['name']}")
        values.append(energy["profile"]["energy_j"])
        band = energy["profile"].get("band_j") or {"low": values[-1], "high": values[-1]}
        errors[0].append(values[-1] - band["low"])
        errors[1].append(band["high"] - values[-1])
    ax1.bar(range(len(values)), values, yerr=errors, capsize=3,
            color=["tab:gray", "silver", "tab:blue", "tab:cyan", "tab:green"][:len(values)])
    ax1.set_yscale("log")
    ax1.set_xticks(range(len(values)), labels, rotation=25, ha="right", fontsize=8)
    ax1.set_ylabel("J per inference")
    ax1.set_title("Energy by method")
    if energy.get("profile"):
        parts = energy["profile"]["breakdown_j"]
        ax2.bar(range(len(parts)), list(parts.values()), color="tab:green")
        ax2.set_xticks(range(len(parts)), list(parts.keys()), rotation=25, ha="right", fontsize=8)
        ax2.set_title(f"Profile method breakdown ({report['lowering']})")
    else:
        ax2.text(0.5, 0.5, "no neuromorphic profile", ha="center", va="center")
        ax2.set_axis_off()
    _save(fig, target)


def core_utilization(report: dict[str, Any], target: Path) -> None:
    mapping = report.get("mapping")
    fig = Figure(figsize=(9, 4.2))
    ax = fig.add_subplot()
    if not mapping:
        ax.text(0.5, 0.5, "no core mapping (reference profile or the network does not fit)", ha="center", va="center")
        ax.set_axis_off()
    elif "per_core" in mapping:
        for name, values in mapping["per_core"].items():
            ax.plot(np.arange(len(values)), values, ".", markersize=3, label=name)
        ax.set_xlabel("core (layer order)")
        ax.set_ylabel("use / per-core limit")
        ax.set_ylim(0, 1.05)
        ax.legend(fontsize=7)
        ax.set_title(f"Per-core utilization: {mapping['cores']} cores, {mapping['chips']} chip(s)")
    else:
        layers = mapping["layers"]
        x = np.arange(len(layers))
        resources = mapping.get("resources", ["compartments", "memory", "fan_in", "fan_out"])
        for i, res in enumerate(resources):
            ax.bar(x + 0.2 * i - 0.3, [m[f"{res}_util_max"] for m in layers], width=0.2, label=f"{res} (max)")
        ax.set_xticks(x, _short([m["layer"] for m in layers]), rotation=70, ha="right", fontsize=7)
        ax.set_ylabel("use / per-core limit")
        ax.legend(fontsize=7)
        ax.set_title(f"Worst-core utilization per layer: {mapping['cores']} cores, {mapping['chips']} chip(s)")
    _save(fig, target)


PLOTS = {"spikes_per_layer.png": spikes_per_layer, "firing_rate.png": firing_rate,
         "energy_breakdown.png": energy_breakdown, "core_utilization.png": core_utilization}

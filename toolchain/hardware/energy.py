"""Energy per inference by two methods, side by side and labelled.

``paper`` (the Spiking-UNet paper's eq. 13 and Table 5, Horowitz 2014 45 nm fp32 figures from the
``reference`` profile, normally ``generic45nm``)::

    FLOPs_SNN = #spikes + #MACs of the analog input layer
    E_SNN     = #spikes x E_AC (0.9 pJ) + #input-layer MACs x E_MAC (4.6 pJ)
    E_ANN     = #MACs of the ANN x E_MAC

with MACs counted in the paper's (thop) convention: output elements x (input channels x k^2 + 1).
``paper_synops`` is the same formula with synaptic operations (every spike times its exact fan-out)
in place of raw spikes: the honest per-synapse count for hardware. The paper's reference code also
leaves the pooling neurons' spikes out; that figure is given as ``energy_excluding_pool_j``.

``profile`` (a neuromorphic profile's per-operation energies, every one times ``energy.scale``)::

    E = synops x E_synop [x graded_synop_scale]  +  active updates x E_update,active
        + (updates - active) x E_update,inactive +  packets x (E_spike,tile + mean_hops x E_hop)
        + host MACs x E_host_MAC                 +  static power x chips x latency
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from toolchain.hardware.profile import Profile

PJ = 1e-12


def paper_energy(totals: dict[str, Any], reference: Profile) -> dict[str, Any]:
    """The paper's method (raw spikes) and its synaptic-op variant, plus the ANN's energy."""
    ac, mac = reference.value("energy.fp32_add") * PJ, reference.value("energy.fp32_mac") * PJ
    spikes, synops, macs_in = totals["spikes"], totals["synops_spikes"], totals["host_macs"]
    ann_macs = totals["ann_macs"]
    paper = spikes * ac + macs_in * mac
    variant = synops * ac + macs_in * mac
    ann = ann_macs * mac
    return {
        "reference_profile": reference.name,
        "e_ac_pj": ac / PJ, "e_mac_pj": mac / PJ,
        "paper": {
            "label": "paper eq. 13: raw spikes x AC + input-layer MACs x MAC (Horowitz 45 nm fp32)",
            "flops": spikes + macs_in, "spikes": spikes, "input_macs": macs_in, "energy_j": paper,
            "energy_excluding_pool_j": totals["spikes_excluding_pool"] * ac + macs_in * mac,
        },
        "paper_synops": {
            "label": "paper's formula with synaptic ops (spikes x exact fan-out) instead of raw spikes",
            "flops": synops + macs_in, "synops": synops, "input_macs": macs_in, "energy_j": variant,
        },
        "ann": {
            "label": "ANN (the same layers), fp32: MACs x 4.6 pJ (Horowitz 2014, 45 nm fp32 MAC: the paper's figure)",
            "macs": ann_macs, "energy_j": ann,
            "energy_int8_j": ann_macs * reference.value("energy.int8_mac") * PJ,
        },
        "ratios": {"ann_over_paper": ann / paper if paper else None,
                   "ann_over_paper_synops": ann / variant if variant else None},
    }


def op_energies(profile: Profile) -> dict[str, float]:
    """Per-operation energies in joules, with ``energy.scale`` applied (host MACs are not scaled)."""
    s = profile.value("energy.scale") * PJ
    route = (profile.value("energy.spike_in_tile")
             + profile.value("routing.mean_hops") * profile.value("energy.tile_hop"))
    return {"synop": profile.value("energy.synop") * s,
            "graded_synop": profile.value("energy.synop") * profile.value("energy.graded_synop_scale") * s,
            "update_active": profile.value("energy.neuron_update_active") * s,
            "update_inactive": profile.value("energy.neuron_update_inactive") * s,
            "packet": route * s, "host_mac": profile.value("energy.host_mac") * PJ,
            "static_w_per_chip": float(profile.value("power.static_per_chip"))}


def profile_energy(rows: Sequence[dict[str, Any]], packets: dict[str, float], profile: Profile, lowering: str,
                   chips: int, latency_s: float) -> dict[str, Any]:
    """Per-layer and total energy by a neuromorphic profile; adds ``energy_j`` and its parts to each row."""
    e = op_energies(profile)
    e_syn = e["graded_synop"] if lowering == "graded" else e["synop"]
    breakdown = {"synops": 0.0, "neuron_updates": 0.0, "routing": 0.0, "host_input_layer": 0.0}
    per_layer = []
    for row in rows:
        parts = {
            "synops": row["synops"] * e_syn,
            "neuron_updates": row["active_updates"] * e["update_active"]
            + (row["neuron_updates"] - row["active_updates"]) * e["update_inactive"],
            "routing": packets.get(row["layer"], 0.0) * e["packet"],
            "host_input_layer": row["host_macs"] * e["host_mac"],
        }
        for k, v in parts.items():
            breakdown[k] += v
        per_layer.append({"layer": row["layer"], "energy_j": sum(parts.values()),
                          **{f"{k}_j": v for k, v in parts.items()}})
    breakdown["static"] = e["static_w_per_chip"] * chips * latency_s
    total = sum(breakdown.values())
    return {"label": f"profile {profile.name}: synops x E_synop + updates x E_update + packets x E_route "
                     f"+ host MACs x E_MAC + static power x chips x latency (energy.scale "
                     f"{profile.value('energy.scale')})",
            "energy_j": total, "breakdown_j": breakdown, "per_layer": per_layer,
            "op_energies_j": e, "packets": float(sum(packets.values()))}

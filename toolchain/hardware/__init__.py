"""Hardware profiles (Loihi 2, Loihi 1, generic 45 nm), per-layer costs, core mapping, energy and reports.

Public API::

    load_profile(name_or_path, overrides=())              -> Profile        (profile.py)
    collect_activity(network, images, steps, lowering)    -> (ReferenceResult, Activity)
    profile_network(network, result, profile, steps=None, *, activity=None, lowering=None,
                    max_chips=None, reference=None, strict=True) -> dict   (report.py)
    write_report(report, out_dir)                          -> {name: path}
    map_network(network, profile, lowering, max_chips=None) -> Mapping     (raises HardwareLimitError)
    fits(network, profile, lowering=None, max_chips=None)  -> (bool, reasons)
"""
from toolchain.hardware.costs import Activity, collect_activity, layer_costs, totals
from toolchain.hardware.energy import paper_energy, profile_energy
from toolchain.hardware.geometry import Geometry, axis_taps
from toolchain.hardware.mapping import LayerMapping, Mapping, fits, map_network, plan
from toolchain.hardware.profile import Profile, available_profiles, load_profile
from toolchain.hardware.report import profile_network, to_markdown, write_report

__all__ = ["Activity", "Geometry", "LayerMapping", "Mapping", "Profile", "available_profiles", "axis_taps",
           "collect_activity", "fits", "layer_costs", "load_profile", "map_network", "paper_energy", "plan",
           "profile_network", "profile_energy", "to_markdown", "totals", "write_report"]

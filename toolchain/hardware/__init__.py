"""Hardware profiles (Loihi 2, Loihi 1, generic 45 nm), per-layer costs, core mapping, time, energy and reports.

Public API::

    load_profile(name_or_path, overrides=())              -> Profile        (profile.py)
    collect_activity(network, images, steps, lowering)    -> (SimulationResult, Activity)
    profile_network(network, result, profile, steps=None, *, activity=None, lowering=None,
                    max_chips=None, reference=None, strict=True) -> dict   (report.py)
    profile_stock(network, trace, profile, window, ...)   -> dict           (report_chip.py; stock netx)
    write_report(report, out_dir)                          -> {name: path}
    fits(network, profile, lowering=None, max_chips=None)  -> (bool, reasons)

Loihi 2 (``compiler`` profiles): chip_layers (chip.py) -> ChipActivity (activity.py) -> compile_network
(compiler.py: the calibrated per-core limits, CoreLimits.fits) -> core_loads, chip_timing, chip_energy
(chipcost.py). Loihi 1 (``bytes`` profiles): map_network / plan (mapping.py), timing.py, energy.py.
"""
from toolchain.hardware.activity import ChipActivity, quantized_activity, stock_activity
from toolchain.hardware.chip import ChipLayer, ChipPart, chip_layers
from toolchain.hardware.chipcost import Estimate, chip_energy, chip_timing, core_loads
from toolchain.hardware.compiler import CoreLimits, CoreMap, compile_network
from toolchain.hardware.costs import Activity, collect_activity, layer_costs, totals
from toolchain.hardware.energy import paper_energy, profile_energy
from toolchain.hardware.geometry import Geometry, axis_taps
from toolchain.hardware.mapping import LayerMapping, Mapping, fits, map_network, plan
from toolchain.hardware.profile import Profile, available_profiles, load_profile
from toolchain.hardware.report import profile_network, to_markdown, write_report
from toolchain.hardware.report_chip import profile_stock

__all__ = ["Activity", "ChipActivity", "ChipLayer", "ChipPart", "CoreLimits", "CoreMap", "Estimate", "Geometry",
           "LayerMapping", "Mapping", "Profile", "available_profiles", "axis_taps", "chip_energy", "chip_layers",
           "chip_timing", "collect_activity", "compile_network", "core_loads", "fits", "layer_costs", "load_profile",
           "map_network", "paper_energy", "plan", "profile_energy", "profile_network", "profile_stock",
           "quantized_activity", "stock_activity", "to_markdown", "totals", "write_report"]

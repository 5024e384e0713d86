"""Partition every neuron layer onto cores within a neuromorphic profile's per-core limits.

Model (stated assumptions):

* a core holds neurons of one layer only; a layer is cut into tiles of (output-channel group x row band x
  column band) and each tile is one core;
* per core: compartments <= ``core.compartments``; fan-in (input axons: distinct source units whose
  spikes reach the core: source compartments under the compartment lowering, source neurons under the
  graded one) <= ``core.fan_in``; fan-out (output axons: one per (emitting unit, destination core)
  pair) <= ``core.fan_out``; memory <= ``core.memory`` where

      memory = ceil(synapse bits / 8) + compartments x state bytes + fan-in x axon_in bytes + fan-out x axon_out bytes
      synapse bits = entries x (weight bits + index bits [+ delay bits for a delayed concat part])
      entries = explicit: every valid weight tap into the core's neurons, per source unit
                shared:   kernel weights of the core's output channels (input channels x k^2), per source unit

* synapses are stored at the destination core; the static first layer's input comes from the host
  (no synapses, no fan-in); the output accumulator emits nothing (no fan-out).

Tiles are searched exhaustively over band sizes (rows, columns) with a binary search over the channel
group, minimising cores; limits are checked on upper bounds (each factor at its maximum), so the chosen
tiling never exceeds a limit, and the exact per-core figures are reported.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from toolchain.errors import ConfigError, HardwareLimitError
from toolchain.hardware.costs import compartments_per_neuron, emitters_per_neuron
from toolchain.hardware.geometry import Geometry, Part, consumers
from toolchain.hardware.placement import Placement
from toolchain.hardware.profile import Profile
from toolchain.ir import Concat, MultiThreshold, QuantizedNetwork, SynapticLayer
from toolchain.vocab import Lowering

RESOURCES = ("compartments", "memory", "fan_in", "fan_out")
FIXES = {
    "compartments": "use fewer thresholds or the graded lowering (one compartment per neuron)",
    "fan_in": "use the graded lowering (one input axon per source neuron instead of one per threshold), "
              "fewer channels (`width`), or a profile with a larger core.fan_in",
    "fan_out": "use the graded lowering, fewer channels downstream, or a profile with a larger core.fan_out",
    "memory": "use the graded lowering, fewer channels (`width`), fewer weight bits, the shared synapse "
              "encoding (profile override memory_model.synapse_encoding=shared) or a profile with more core memory",
}


def _sizes(n: int) -> list[int]:
    """Distinct band sizes ceil(n / k), k = 1..n, descending."""
    return sorted({-(-n // k) for k in range(1, n + 1)}, reverse=True)


def _bands(n: int, size: int) -> list[tuple[int, int]]:
    return Geometry.bands(n, size)


def reach(geo: Geometry, groups: tuple[list, list, list]) -> tuple[float, np.ndarray, np.ndarray]:
    """How many cores of a consumer (``geo``, tiled by ``groups``) a source unit reaches, factorised:
    (cores per source channel, per source row, per source column); the product is the count."""
    rows = (np.stack([geo.rows[a:b].sum(0) for a, b in groups[1]]) > 0).sum(0)
    cols = (np.stack([geo.cols[a:b].sum(0) for a, b in groups[2]]) > 0).sum(0)
    factor = 1.0 if geo.depthwise else float(len(groups[0]))
    return factor, rows.astype(np.float64), cols.astype(np.float64)


@dataclass
class LayerMapping:
    """A layer's tiling: band lists per axis and exact per-core figures as (n_cg, n_rb, n_cb) arrays."""

    layer: str
    tile: tuple[int, int, int]
    groups: tuple[list[tuple[int, int]], list[tuple[int, int]], list[tuple[int, int]]]
    compartments: np.ndarray
    synapse_bytes: np.ndarray
    state_bytes: np.ndarray
    routing_bytes: np.ndarray
    fan_in: np.ndarray
    fan_out: np.ndarray

    @property
    def memory(self) -> np.ndarray:
        return self.synapse_bytes + self.state_bytes + self.routing_bytes

    @property
    def cores(self) -> int:
        return int(self.compartments.size)

    def core_tiles(self) -> Iterator[tuple[tuple[int, int], tuple[int, int], tuple[int, int]]]:
        """((c0, c1), (y0, y1), (x0, x1)) of every core, in array order."""
        for cg in self.groups[0]:
            for rb in self.groups[1]:
                for cb in self.groups[2]:
                    yield cg, rb, cb

    def resource(self, name: str) -> np.ndarray:
        return getattr(self, name)


@dataclass
class Mapping(Placement[LayerMapping]):
    """Placement of a whole network: per-layer tilings, cores and chips."""

    profile: str
    lowering: Lowering
    layers: list[LayerMapping]
    limits: dict[str, int]
    cores_per_chip: int
    max_chips: int
    notes: list[str] = field(default_factory=list)

    def utilization(self, resource: str) -> np.ndarray:
        """Per-core use / limit of one resource, all cores in layer order."""
        return np.concatenate([m.resource(resource).ravel() / self.limits[resource] for m in self.layers])

    def summary(self, per_core: bool = False) -> dict[str, Any]:
        layers = []
        for m in self.layers:
            row: dict[str, Any] = {"layer": m.layer, "cores": m.cores, "tile": list(m.tile),
                                   "grid": [len(g) for g in m.groups],
                                   "synapse_bytes": int(m.synapse_bytes.sum()), "memory_bytes": int(m.memory.sum())}
            for r in RESOURCES:
                u = m.resource(r) / self.limits[r]
                row[f"{r}_util_max"] = float(u.max())
                row[f"{r}_util_mean"] = float(u.mean())
            layers.append(row)
        out: dict[str, Any] = {"lowering": self.lowering, "cores": self.cores, "chips": self.chips,
               "max_chips": self.max_chips, "cores_per_chip": self.cores_per_chip, "limits": dict(self.limits),
               "layers": layers, "notes": list(self.notes)}
        if per_core:
            out["per_core"] = {r: [round(float(x), 6) for x in self.utilization(r)] for r in RESOURCES}
            out["per_core_layer"] = [m.layer for m in self.layers for _ in range(m.cores)]
        return out


class _LayerModel:
    """Per-core resource arithmetic of one layer for a lowering and a profile."""

    def __init__(self, network: QuantizedNetwork, layer: SynapticLayer, geo: Geometry, lowering: Lowering,
                 profile: Profile, weight_bits: int) -> None:
        self.layer, self.geo = layer, geo
        self.static = geo.static
        self.c, self.h, self.w = layer.shape
        self.n_comp = compartments_per_neuron(layer, lowering)
        self.n_emit = emitters_per_neuron(layer, lowering)
        mm = "memory_model."
        self.shared = profile.value(mm + "synapse_encoding") == "shared"
        self.state_b = float(profile.value(mm + "state_bytes_per_compartment"))
        self.ain_b = float(profile.value(mm + "axon_in_bytes"))
        self.aout_b = float(profile.value(mm + "axon_out_bytes"))
        index_bits, delay_bits = profile.value(mm + "synapse_index_bits"), profile.value(mm + "synapse_delay_bits")
        k2 = geo.layer.kernel[0] * geo.layer.kernel[1]
        # fan-in(sc) = in_const + in_lin * sc; synapse bits = syn_coef * sc (* taps_r * taps_c if explicit)
        self.in_const = self.in_lin = self.syn_coef = 0.0
        parts: list[Part] = [] if self.static else geo.parts
        for p in parts:
            u = emitters_per_neuron(p.source, lowering)
            bits = weight_bits + index_bits + (delay_bits if p.delay > 0 else 0)
            if geo.depthwise:
                self.in_lin += u
                self.syn_coef += bits * u * (k2 if self.shared else 1)
            else:
                self.in_const += u * p.channels
                self.syn_coef += bits * u * p.channels * (k2 if self.shared else 1)
        self.reach: list[tuple[float, np.ndarray, np.ndarray]] = []   # (channel factor, rowreach, colreach)
        self._axis_cache: dict[tuple[str, int], tuple[np.ndarray, ...]] = {}

    def add_consumer(self, consumer: _LayerModel, groups: tuple[list, list, list]) -> None:
        """Record how many of a consumer's cores each of this layer's units reaches (for fan-out)."""
        self.reach.append(reach(consumer.geo, groups))

    def _axis(self, axis: str, size: int) -> tuple[np.ndarray, ...]:
        """(sizes, taps, reads, reach sums per consumer...) per band of one spatial axis."""
        key = (axis, size)
        if key not in self._axis_cache:
            n, m = (self.h, self.geo.rows) if axis == "r" else (self.w, self.geo.cols)
            bands = _bands(n, size)
            starts = [a for a, _ in bands]
            sizes = np.array([b - a for a, b in bands], dtype=np.float64)
            taps = Geometry.band_taps(m, bands).astype(np.float64)
            reads = Geometry.band_reads(m, bands).astype(np.float64)
            reach = [np.add.reduceat(r if axis == "r" else c, starts) for _, r, c in self.reach]
            self._axis_cache[key] = (sizes, taps, reads, *reach)
        return self._axis_cache[key]

    def _terms(self, sc: np.ndarray, rows: tuple[np.ndarray, ...],
               cols: tuple[np.ndarray, ...]) -> dict[str, np.ndarray]:
        """Per-core figures on the grid spanned by channel sizes ``sc`` and the two axes' band arrays."""
        s = sc[:, None, None]
        rs, rt, rr = (a[None, :, None] for a in rows[:3])
        cs, ct, cr = (a[None, None, :] for a in cols[:3])
        comps = self.n_comp * s * rs * cs
        fan_in = (self.in_const + self.in_lin * s) * rr * cr
        if self.static:
            fan_in = 0 * comps
        syn_bits = self.syn_coef * s * (np.ones_like(rt) * np.ones_like(ct) if self.shared else rt * ct)
        fan_out = 0 * comps
        for (factor, _, _), r_sum, c_sum in zip(self.reach, rows[3:], cols[3:]):
            fan_out = fan_out + self.n_emit * factor * s * r_sum[None, :, None] * c_sum[None, None, :]
        syn_bytes = np.ceil(syn_bits / 8)
        routing = fan_in * self.ain_b + fan_out * self.aout_b
        state = comps * self.state_b
        return {"compartments": comps, "fan_in": fan_in, "fan_out": fan_out, "synapse_bytes": syn_bytes,
                "state_bytes": state, "routing_bytes": routing, "memory": syn_bytes + state + routing}

    def bound(self, gc: int, gh: int, gw: int) -> dict[str, float]:
        """Each resource with every factor at its maximum over the tiles: >= every core's exact figure."""
        rows = tuple(np.array([a.max()]) for a in self._axis("r", gh))
        cols = tuple(np.array([a.max()]) for a in self._axis("c", gw))
        terms = self._terms(np.array([float(gc)]), rows, cols)
        return {k: float(v.max()) for k, v in terms.items()}

    def exact(self, gc: int, gh: int, gw: int) -> LayerMapping:
        groups = (_bands(self.c, gc), _bands(self.h, gh), _bands(self.w, gw))
        sc = np.array([b - a for a, b in groups[0]], dtype=np.float64)
        t = self._terms(sc, self._axis("r", gh), self._axis("c", gw))
        return LayerMapping(self.layer.name, (gc, gh, gw), groups, t["compartments"], t["synapse_bytes"],
                            t["state_bytes"], t["routing_bytes"], t["fan_in"], t["fan_out"])

    def over(self, values: dict[str, float], limits: dict[str, int]) -> list[str]:
        return [r for r in RESOURCES if values[r] > limits[r]]

    def search(self, limits: dict[str, int]) -> tuple[int, int, int] | None:
        """Fewest cores: every (row, column) band size, binary search on the channel group size."""
        ch = sorted(_sizes(self.c))
        best: tuple[int, tuple[int, int, int]] | None = None
        for gh in _sizes(self.h):
            n_rb = -(-self.h // gh)
            for gw in _sizes(self.w):
                n_cb = -(-self.w // gw)
                if best is not None and n_rb * n_cb >= best[0]:
                    break
                if self.over(self.bound(1, gh, gw), limits):
                    continue
                lo, hi = 0, len(ch) - 1
                while lo < hi:
                    mid = (lo + hi + 1) // 2
                    if self.over(self.bound(ch[mid], gh, gw), limits):
                        hi = mid - 1
                    else:
                        lo = mid
                cost = -(-self.c // ch[lo]) * n_rb * n_cb
                if best is None or cost < best[0]:
                    best = (cost, (ch[lo], gh, gw))
        return None if best is None else best[1]


def _limits(profile: Profile) -> dict[str, int]:
    return {"compartments": int(profile.value("core.compartments")), "memory": int(profile.value("core.memory")),
            "fan_in": int(profile.value("core.fan_in")), "fan_out": int(profile.value("core.fan_out"))}


def _global_checks(network: QuantizedNetwork, profile: Profile, lowering: Lowering) -> list[str]:
    reasons = []
    weight_bits = int(network.meta.weight_bits or 8)
    if weight_bits > profile.value("core.weight_bits"):
        reasons.append(f"weights have {weight_bits} bits but {profile.name} allows "
                       f"{profile.value('core.weight_bits')}; export with fewer weight bits")
    max_delay = profile.value("core.max_synaptic_delay")
    for layer in network:
        for src, delay in zip(layer.inputs, layer.delays if isinstance(layer, Concat) else ()):
            if delay + 1 > max_delay:
                reasons.append(f"layer {layer.name}: input {src} needs a synaptic delay of {delay + 1} steps, beyond "
                               f"{profile.name}'s core.max_synaptic_delay {max_delay}; use a shallower U-Net")
    if lowering == "graded":
        payload = profile.value("core.graded_payload_bits")
        for layer in network.synaptic_layers:
            if isinstance(layer.neuron, MultiThreshold):
                need = int(sum(layer.neuron.spike_weights())).bit_length()
                if need > payload:
                    reasons.append(f"layer {layer.name}: graded spikes need a {need}-bit payload but {profile.name} "
                                   f"carries {payload} (core.graded_payload_bits); use the compartments lowering")
                    break
    return reasons


def plan(network: QuantizedNetwork, profile: Profile, lowering: Lowering, max_chips: int | None = None,
         geometries: dict[str, Geometry] | None = None) -> tuple[Mapping | None, list[str]]:
    """Map the network; returns the mapping (None if it does not fit) and every reason it does not."""
    if not profile.neuromorphic:
        return None, [f"profile {profile.name} ({profile.kind}) has no cores to map onto"]
    if profile.resource_model != "bytes":
        raise ConfigError(f"profile {profile.name} uses the {profile.resource_model} resource model: map with "
                          "toolchain.hardware.compile_network (or fits())")
    limits = _limits(profile)
    geos = geometries or {lay.name: Geometry(network, lay) for lay in network.synaptic_layers}
    weight_bits = int(network.meta.weight_bits or profile.value("core.weight_bits"))
    reasons = _global_checks(network, profile, lowering)
    models = {lay.name: _LayerModel(network, lay, geos[lay.name], lowering, profile, weight_bits)
              for lay in network.synaptic_layers}
    users = consumers(network)
    chosen: dict[str, LayerMapping] = {}
    notes = [f"{name}: grouped convolution (groups {geo.groups}) mapped as a dense one (an upper bound on its "
             f"fan-in and synaptic memory)" for name, geo in geos.items() if geo.groups > 1 and not geo.depthwise]
    layer_reasons: list[str] = []     # filled back to front, so it ends in layer order
    for layer in reversed(network.synaptic_layers):
        model = models[layer.name]
        for consumer, _part in users[layer.name]:
            if consumer.name in chosen:
                model.add_consumer(models[consumer.name], chosen[consumer.name].groups)
            else:
                notes.append(f"fan-out of {layer.name} into {consumer.name} not counted ({consumer.name} does not fit)")
        tile = model.search(limits)
        if tile is None:
            single = model.bound(1, 1, 1)
            for r in model.over(single, limits):
                what = "core (1 neuron)" if r != "fan_in" else "neuron"
                layer_reasons.insert(0, f"layer {layer.name}: a single {what} needs {r.replace('_', '-')} "
                               f"{single[r]:.0f} > {profile.name}'s per-core limit {limits[r]} "
                               f"(core.{'memory' if r == 'memory' else r}); "
                               f"{FIXES[r]}")
            continue
        chosen[layer.name] = model.exact(*tile)
        for r in RESOURCES:
            assert float(chosen[layer.name].resource(r).max()) <= limits[r], (layer.name, r)
    reasons += layer_reasons
    cores_per_chip = int(profile.value("chip.cores_per_chip"))
    cap = int(max_chips if max_chips is not None else profile.value("chip.max_chips"))
    mapping = Mapping(profile.name, lowering,
                      [chosen[lay.name] for lay in network.synaptic_layers if lay.name in chosen],
                      limits, cores_per_chip, cap, notes)
    if mapping.chips > cap and not reasons:
        biggest = sorted(mapping.layers, key=lambda m: -m.cores)[:3]
        names = ", ".join(f"{m.layer} ({m.cores} cores)" for m in biggest)
        reasons.append(f"the network needs {mapping.cores} cores = {mapping.chips} chips of {cores_per_chip} cores, "
                       f"more than max_chips {cap} (largest layers: {names}); use more chips "
                       f"(profile override chip.max_chips=N), a smaller input, fewer channels (`width`) "
                       f"or the graded lowering")
    return (None if reasons else mapping), reasons


def map_network(network: QuantizedNetwork, profile: Profile, lowering: Lowering, max_chips: int | None = None,
                geometries: dict[str, Geometry] | None = None) -> Mapping:
    """The mapping, or HardwareLimitError naming the layer and the limit exceeded (with a suggested fix)."""
    mapping, reasons = plan(network, profile, lowering, max_chips, geometries)
    if mapping is None:
        more = f" (and {len(reasons) - 1} more problem(s))" if len(reasons) > 1 else ""
        raise HardwareLimitError(f"{lowering} lowering does not fit {profile.name}: {reasons[0]}{more}")
    return mapping


def fits(network: QuantizedNetwork, profile: Profile, lowering: Lowering | None = None,
         max_chips: int | None = None) -> tuple[bool, list[str]]:
    """sinabs-style check: (True, []) or (False, every reason it does not fit). On a ``compiler`` profile
    (Loihi 2) the per-core limits of :mod:`toolchain.hardware.compiler`, and the chip count against
    ``max_chips`` (default ``chip.max_chips``)."""
    lowering = lowering or network.lowering
    if profile.neuromorphic and profile.resource_model == "compiler":
        from toolchain.hardware.chip import chip_layers
        from toolchain.hardware.compiler import compile_network

        cmap = compile_network(chip_layers(network, lowering), profile, max_chips)
        reasons = list(cmap.reasons)
        if cmap.fits and cmap.chips > cmap.max_chips:
            system = cmap.smallest_system()
            reasons.append(f"the network needs {cmap.cores} cores = {cmap.chips} chips, more than max_chips "
                           f"{cmap.max_chips}" + (f"; the smallest listed system that holds it is {system[0]} "
                                                  f"({system[1]} chips)" if system else ""))
        return not reasons, reasons
    mapping, reasons = plan(network, profile, lowering, max_chips)
    return mapping is not None, reasons

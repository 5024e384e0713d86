"""Loihi 2's resource model as its compiler counts it, calibrated on Intel's published compiler logs.

A core holds neurons of one layer. Per core (limits from a ``compiler`` profile, :class:`CoreLimits`):

* ``neurons``: compartments on the core (x y c units) <= ``core.neurons`` (4095);
* ``synmem_words``: synaptic memory in ``core.synmem_word_bits``-bit words <= ``core.synmem_words`` (12000)::

      conv / convT:  words = input units x kH kW x ceil(c x b / word)   (the kernel of the core's c output
                             channels, stored ONCE per core, b = memory_model.conv_weight_bits)
      pool:          words = ceil(c x units per source neuron x kH kW x b / word) (depthwise: each channel
                             reads its own source channel; so do depthwise convolutions; a grouped one
                             stores the input units of the groups its c channels span)
      dense:         words = input axons x ceil((n x (num_weight_bits + index bits) + header bits) / word)
                             (n neurons on the core; netx's num_weight_bits; index 12, header 16 bits)
      input, static: 0 (driven by a bias / the host, no synapses)

* ``axons_in``: dense: every source unit; conv-like: one shared axon per source core that feeds the tile
  (the compiler table shows 1-2 for conv cores) <= ``core.axons_in`` (16000);
* ``neuron_groups``: distinct neuron configurations = the compartments per neuron (one per MT threshold
  under the compartments lowering, else 1) <= ``core.neuron_groups`` (8).

Tiling, as both compilers' tables show (it reproduces PilotNet LIF's 74 cores layer by layer and the
held-out PilotNet SDNN (61) and YOLO-KP (574) tables): a conv-like layer takes the largest channel slice
c = ceil(C / 2^k) whose kernel fits SynMem, then the largest row band y = ceil(H / 2^j) with y c units <=
neurons, then the widest power-of-two column band x with x y c units <= neurons; cores = ceil(W/x)
ceil(H/y) ceil(C/c). A dense layer starts on one core and multiplies the core count by ceil(words /
limit) (at least 2) until a core's SynMem and neurons fit, n = ceil(N / cores) neurons per core.
Chips = ceil(cores / chip.usable_cores_per_chip).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..errors import ConfigError
from .chip import ChipLayer
from .geometry import axis_taps
from .placement import Placement
from .profile import Profile

Resource = Literal["neurons", "synmem_words", "axons_in", "neuron_groups"]
RESOURCES: tuple[Resource, ...] = ("neurons", "synmem_words", "axons_in", "neuron_groups")
Band = tuple[int, int]
Groups = tuple[list[Band], list[Band], list[Band]]
FIXES = {
    "neurons": "use fewer thresholds or the graded lowering (one compartment per neuron)",
    "synmem_words": "use the graded lowering (one kernel row per source neuron instead of one per threshold), "
                    "fewer channels (`width`), or a profile with more synaptic memory",
    "axons_in": "a dense layer cannot read more source neurons than a core has input axons; split it",
    "neuron_groups": "use at most as many thresholds as a core has neuron groups, or the graded lowering",
}


@dataclass(frozen=True)
class CoreLimits:
    """Per-core limits and memory-model constants of a ``compiler`` profile (hardware limits as data)."""

    neurons: int
    synmem_words: int
    axons_in: int
    neuron_groups: int
    word_bits: int
    conv_weight_bits: int
    dense_index_bits: int
    dense_header_bits: int

    @classmethod
    def of(cls, profile: Profile) -> CoreLimits:
        if profile.resource_model != "compiler":
            raise ConfigError(f"profile {profile.name} has no compiler resource model (resource_model "
                              f"{profile.resource_model!r})")
        v = profile.value
        return cls(int(v("core.neurons")), int(v("core.synmem_words")), int(v("core.axons_in")),
                   int(v("core.neuron_groups")), int(v("core.synmem_word_bits")),
                   int(v("memory_model.conv_weight_bits")), int(v("memory_model.dense_index_bits")),
                   int(v("memory_model.dense_axon_header_bits")))

    def limit(self, resource: Resource) -> int:
        return int(getattr(self, resource))

    def fits(self, usage: dict[Resource, float]) -> list[Resource]:
        """The resources ``usage`` (one core's figures) exceeds; [] when the core fits."""
        return [r for r in RESOURCES if usage[r] > self.limit(r)]


def kernel_words(layer: ChipLayer, c: int, limits: CoreLimits) -> int:
    """SynMem words of a conv-like core holding ``c`` output channels (module docstring)."""
    if layer.kind in ("input", "static"):
        return 0
    b, word = limits.conv_weight_bits, limits.word_bits
    if layer.depthwise:               # channel c reads only source channel c: units x taps weights per channel
        return math.ceil(c * sum(p.units for p in layer.parts) * layer.taps * b / word)
    units = layer.in_units
    if layer.groups > 1:              # c contiguous output channels span at most ceil(c / per group) + 1 groups
        per_out = layer.shape[0] // layer.groups
        units = min(units, (math.ceil(c / per_out) + 1) * (units // layer.groups))
    return units * layer.taps * math.ceil(c * b / word)


def dense_words(axons: int, n: int, weight_bits: int, limits: CoreLimits) -> int:
    """SynMem words of a dense core with ``n`` neurons reading ``axons`` input axons."""
    return axons * math.ceil((n * (weight_bits + limits.dense_index_bits) + limits.dense_header_bits)
                             / limits.word_bits)


def _halvings(n: int) -> list[int]:
    """ceil(n / 2^k) for k = 0, 1, ... down to 1 (distinct, largest first)."""
    sizes: list[int] = []
    k = 0
    while True:
        s = math.ceil(n / 2 ** k)
        if not sizes or s != sizes[-1]:
            sizes.append(s)
        if s == 1:
            return sizes
        k += 1


def conv_tile(layer: ChipLayer, limits: CoreLimits) -> tuple[int, int, int] | None:
    """(c, y, x) of the compiler's x-first tiling, or None when no tile fits a core."""
    c_out, h, w = layer.shape
    for c in _halvings(c_out):
        if kernel_words(layer, c, limits) > limits.synmem_words:
            continue
        for y in _halvings(h):
            if y * c * layer.units > limits.neurons:
                continue
            x = 1
            while x < w and 2 * x * y * c * layer.units <= limits.neurons:
                x *= 2
            return c, y, min(x, w)
    return None


def dense_cores(layer: ChipLayer, limits: CoreLimits) -> int | None:
    """Cores of a dense layer (the compiler's ratio split), or None when no split fits."""
    n_out, axons, bits = layer.neurons, layer.in_units, int(layer.weight_bits or 8)
    cores = 1
    while True:
        per = math.ceil(n_out / cores)
        words = dense_words(axons, per, bits, limits)
        if words <= limits.synmem_words and per * layer.units <= limits.neurons:
            return cores
        if per == 1:
            return None
        cores = min(n_out, cores * (max(2, math.ceil(words / limits.synmem_words))
                                    if words > limits.synmem_words else 2))


def _bands(n: int, size: int) -> list[Band]:
    return [(a, min(a + size, n)) for a in range(0, n, size)]


@dataclass
class LayerCores:
    """A layer's tiling: bands per axis (channels, rows, columns) and per-core figures shaped
    (channel groups, row bands, column bands)."""

    layer: str
    tile: tuple[int, int, int]
    groups: Groups
    usage: dict[Resource, np.ndarray]

    @property
    def cores(self) -> int:
        return int(self.usage["neurons"].size)

    def binding(self, limits: CoreLimits) -> Resource:
        """The resource closest to its limit on this layer's fullest core (what sets its core count)."""
        return max(RESOURCES, key=lambda r: float(self.usage[r].max()) / limits.limit(r))


@dataclass
class CoreMap(Placement[LayerCores]):
    """Placement of a whole network on cores and chips, and every reason it does not fit."""

    layers: list[LayerCores]
    limits: CoreLimits
    cores_per_chip: int
    max_chips: int
    systems: list[tuple[str, int]]
    reasons: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return not self.reasons

    def smallest_system(self) -> tuple[str, int] | None:
        """The smallest listed system with enough chips, None if none is large enough."""
        return next(((name, chips) for name, chips in self.systems if chips >= self.chips), None)

    def summary(self, per_core: bool = False) -> dict[str, Any]:
        layers = []
        for m in self.layers:
            row: dict[str, Any] = {"layer": m.layer, "cores": m.cores, "tile": list(m.tile),
                                   "grid": [len(g) for g in m.groups], "binding": m.binding(self.limits),
                                   "synmem_words": int(m.usage["synmem_words"].sum())}
            for r in RESOURCES:
                u = m.usage[r] / self.limits.limit(r)
                row[f"{r}_util_max"] = float(u.max())
                row[f"{r}_util_mean"] = float(u.mean())
            layers.append(row)
        system = self.smallest_system()
        out: dict[str, Any] = {
            "model": "compiler", "cores": self.cores, "chips": self.chips, "max_chips": self.max_chips,
            "cores_per_chip": self.cores_per_chip, "resources": list(RESOURCES),
            "limits": {r: self.limits.limit(r) for r in RESOURCES}, "layers": layers,
            "fits_target": self.chips <= self.max_chips,
            "target_systems_needed": math.ceil(self.chips / self.max_chips),
            "smallest_system": None if system is None else {"name": system[0], "chips": system[1]},
            "largest_layers": [{"layer": m.layer, "cores": m.cores, "binding": m.binding(self.limits)}
                               for m in sorted(self.layers, key=lambda m: -m.cores)[:3]],
            "notes": ["tile is (channels, rows, columns) per core; binding = the per-core resource closest to its "
                      "limit on the layer's fullest core"]}
        if per_core:
            out["per_core"] = {r: [round(float(x), 6) for m in self.layers
                                   for x in (m.usage[r] / self.limits.limit(r)).ravel()] for r in RESOURCES}
            out["per_core_layer"] = [m.layer for m in self.layers for _ in range(m.cores)]
        return out


def _tiling(layer: ChipLayer, limits: CoreLimits) -> tuple[tuple[int, int, int], Groups] | None:
    c, h, w = layer.shape
    if layer.kind == "dense":
        cores = dense_cores(layer, limits)
        if cores is None:
            return None
        per = math.ceil(layer.neurons / cores)
        return (per, 1, 1), (_bands(c, per), [(0, 1)], [(0, 1)])
    tile = conv_tile(layer, limits)
    if tile is None:
        return None
    tc, ty, tx = tile
    return tile, (_bands(c, tc), _bands(h, ty), _bands(w, tx))


def tap_matrices(layer: ChipLayer, in_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) tap matrices (out x in) of a conv-like layer's synapses."""
    transposed = layer.kind == "convT"
    pad = (0, 0) if layer.kind == "pool" else layer.padding
    rows = axis_taps(transposed, in_hw[0], layer.shape[1], layer.kernel[0], layer.stride[0], pad[0])
    cols = axis_taps(transposed, in_hw[1], layer.shape[2], layer.kernel[1], layer.stride[1], pad[1])
    return rows, cols


def _overlaps(read: np.ndarray, bands: list[Band]) -> int:
    """Bands of the source axis that hold at least one index in ``read`` (a boolean mask)."""
    return sum(bool(read[a:b].any()) for a, b in bands)


def _axons_in(layer: ChipLayer, groups: Groups, placed: dict[str, LayerCores]) -> np.ndarray:
    shape = tuple(len(g) for g in groups)
    if layer.kind in ("input", "static"):
        return np.zeros(shape)
    if layer.kind == "dense":
        return np.full(shape, float(layer.in_units))
    out = np.zeros(shape)
    for p in layer.parts:
        src = placed.get(p.source)
        if src is None:
            continue
        rows, cols = tap_matrices(layer, p.in_hw)
        r_read = [_overlaps(rows[a:b].sum(0) > 0, src.groups[1]) for a, b in groups[1]]
        c_read = [_overlaps(cols[a:b].sum(0) > 0, src.groups[2]) for a, b in groups[2]]
        if layer.depthwise:       # channel c reads source channel c
            ch = [sum(1 for sa, sb in src.groups[0] if sa < b and a < sb) for a, b in groups[0]]
        else:
            ch = [len(src.groups[0])] * len(groups[0])
        out += np.asarray(ch, float)[:, None, None] * np.outer(r_read, c_read)[None]
    return out


def compile_network(layers: list[ChipLayer], profile: Profile, max_chips: int | None = None) -> CoreMap:
    """Tile every layer (:func:`conv_tile` / :func:`dense_cores`) and check every core against the limits."""
    limits = CoreLimits.of(profile)
    placed: dict[str, LayerCores] = {}
    reasons: list[str] = []
    for layer in layers:
        tiling = _tiling(layer, limits)
        if tiling is None:
            single = {"neurons": layer.units, "synmem_words": (kernel_words(layer, 1, limits) if layer.kind != "dense"
                      else dense_words(layer.in_units, 1, int(layer.weight_bits or 8), limits))}
            what = ("one neuron" if single["synmem_words"] <= limits.synmem_words else
                    "one neuron's synapses" if layer.kind == "dense" else "one output channel's kernel")
            res: Resource = "synmem_words" if single["synmem_words"] > limits.synmem_words else "neurons"
            reasons.append(f"layer {layer.name}: {what} needs {res.replace('_', ' ')} {single[res]} > "
                           f"{profile.name}'s per-core limit {limits.limit(res)} (core.{res}); {FIXES[res]}")
            continue
        tile, groups = tiling
        sizes = [np.array([b - a for a, b in g], dtype=np.float64) for g in groups]
        neurons = sizes[0][:, None, None] * sizes[1][None, :, None] * sizes[2][None, None, :] * layer.units
        if layer.kind == "dense":
            words = np.array([dense_words(layer.in_units, int(n), int(layer.weight_bits or 8), limits)
                              for n in sizes[0]], float)[:, None, None]
        else:
            words = np.array([kernel_words(layer, int(n), limits) for n in sizes[0]], float)[:, None, None]
        shape = neurons.shape
        usage: dict[Resource, np.ndarray] = {
            "neurons": neurons, "synmem_words": np.broadcast_to(words, shape).copy(),
            "axons_in": _axons_in(layer, groups, placed), "neuron_groups": np.full(shape, float(layer.units))}
        cores = LayerCores(layer.name, tile, groups, usage)
        over = [r for r in RESOURCES if float(usage[r].max()) > limits.limit(r)]
        for r in over:
            reasons.append(f"layer {layer.name}: a core needs {r.replace('_', ' ')} {usage[r].max():.0f} > "
                           f"{profile.name}'s per-core limit {limits.limit(r)} (core.{r}); {FIXES[r]}")
        placed[layer.name] = cores
    cap = int(max_chips if max_chips is not None else profile.value("chip.max_chips"))
    return CoreMap([placed[lay.name] for lay in layers if lay.name in placed], limits,
                   int(profile.value("chip.usable_cores_per_chip")), cap, profile.systems(), reasons)


def fits(layers: list[ChipLayer], profile: Profile) -> tuple[bool, list[str]]:
    """(True, []) when every core of every layer fits the profile's per-core limits, else every reason."""
    cmap = compile_network(layers, profile)
    return cmap.fits, list(cmap.reasons)

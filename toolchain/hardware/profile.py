"""Hardware profiles as data: load ``hw_profiles/<name>.json`` (or any JSON file), apply overrides, validate.

Every number in a profile is a *quantity*::

    {"value": 23.6, "unit": "pJ", "status": "published" | "measured" | "assumed", "source": "..."}

Keys are addressed with dots (``energy.synop``). ``--set energy.synop=20`` replaces a value (its status
becomes ``assumed`` and its source says it was overridden, unless ``--set energy.synop.status=measured``
and ``--set energy.synop.source=...`` say otherwise). Two kinds of profile exist:

* ``neuromorphic`` (``loihi2``, ``loihi1``): core limits, memory model, per-operation energy and time;
* ``reference`` (``generic45nm``): Horowitz 2014 45 nm figures, used by the paper's energy method.

Anything malformed raises :class:`~toolchain.errors.ProfileError` naming the file and the key.
"""
from __future__ import annotations

import difflib
import importlib.resources
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolchain.errors import ProfileError

PROFILE_DIR = Path(str(importlib.resources.files("hw_profiles")))   # package data (installed or not)
STATUSES = ("published", "measured", "assumed")
FIELDS = ("value", "unit", "status", "source")

# key -> (unit, rule). Rules: "int>=1", "int>=0", ">0", ">=0", or a tuple of allowed strings.
_ENERGY = {f"energy.{k}": ("pJ", rule) for k, rule in (
    ("synop", ">0"), ("neuron_update_inactive", ">0"), ("neuron_update_active", ">0"),
    ("spike_in_tile", ">0"), ("tile_hop", ">=0"), ("host_mac", ">=0"))}
SCHEMA: dict[str, dict[str, tuple[str, Any]]] = {
    "neuromorphic": {
        "chip.cores_per_chip": ("cores", "int>=1"),
        "chip.max_chips": ("chips", "int>=1"),
        "core.compartments": ("compartments", "int>=1"),
        "core.memory": ("bytes", "int>=1"),
        "core.fan_in": ("axons", "int>=1"),
        "core.fan_out": ("axons", "int>=1"),
        "core.max_synaptic_delay": ("steps", "int>=0"),
        "core.weight_bits": ("bits", "int>=1"),
        "core.graded_payload_bits": ("bits", "int>=0"),
        "memory_model.synapse_encoding": ("choice", ("explicit", "shared")),
        "memory_model.synapse_index_bits": ("bits", "int>=0"),
        "memory_model.synapse_delay_bits": ("bits", "int>=0"),
        "memory_model.state_bytes_per_compartment": ("bytes", ">=0"),
        "memory_model.axon_in_bytes": ("bytes", ">=0"),
        "memory_model.axon_out_bytes": ("bytes", ">=0"),
        "energy.scale": ("ratio", ">0"),
        "energy.graded_synop_scale": ("ratio", ">0"),
        **_ENERGY,
        "routing.mean_hops": ("hops", ">=0"),
        "time.synop": ("ns", ">=0"),
        "time.neuron_update": ("ns", ">=0"),
        "time.spike": ("ns", ">=0"),
        "time.barrier": ("ns", ">=0"),
        "power.static_per_chip": ("W", ">=0"),
    },
    "reference": {
        "energy.fp32_mac": ("pJ", ">0"),
        "energy.fp32_add": ("pJ", ">0"),
        "energy.int8_mac": ("pJ", ">0"),
        "energy.int8_add": ("pJ", ">0"),
    },
}
_INT_MAX = 2 ** 48
_BITS_MAX = 64


@dataclass
class Profile:
    """A validated hardware profile. ``value(key)`` reads a quantity's value by dotted key."""

    name: str
    kind: str
    path: str
    data: dict[str, Any]
    overrides: tuple[str, ...] = ()
    description: str = ""
    _flat: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._flat = dict(_quantities(self.data))

    def quantity(self, key: str) -> dict[str, Any]:
        try:
            return self._flat[key]
        except KeyError:
            raise ProfileError(f"{self.path}: profile has no key {key!r}") from None

    def value(self, key: str) -> Any:
        return self.quantity(key)["value"]

    def has(self, key: str) -> bool:
        return key in self._flat

    @property
    def neuromorphic(self) -> bool:
        return self.kind == "neuromorphic"

    def quantities(self) -> dict[str, dict[str, Any]]:
        return {k: dict(q) for k, q in self._flat.items()}

    def assumed(self) -> dict[str, dict[str, Any]]:
        """Every quantity whose status is ``assumed`` (the report lists them)."""
        return {k: dict(q) for k, q in self._flat.items() if q["status"] == "assumed"}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "file": self.path, "description": self.description,
                "overrides": list(self.overrides), "quantities": self.quantities()}


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.json"))


def _is_quantity(node: Any) -> bool:
    return isinstance(node, dict) and "value" in node


def _quantities(data: dict[str, Any], prefix: str = "") -> Iterable[tuple[str, dict[str, Any]]]:
    for key, node in data.items():
        if not isinstance(node, dict):
            continue
        path = f"{prefix}{key}"
        if _is_quantity(node):
            yield path, node
        else:
            yield from _quantities(node, path + ".")


def _resolve(name_or_path: str | Path) -> Path:
    text = str(name_or_path)
    path = Path(text)
    if path.suffix == ".json" or path.exists() or "/" in text or "\\" in text:
        if not path.is_file():
            raise ProfileError(f"{path}: profile file not found")
        return path
    candidate = PROFILE_DIR / f"{text}.json"
    if not candidate.is_file():
        raise ProfileError(f"unknown hardware profile {text!r}; available: {', '.join(available_profiles())} "
                           f"(or give a path to a JSON profile file)")
    return candidate


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _apply_overrides(data: dict[str, Any], overrides: Iterable[str], where: str) -> None:
    flat = dict(_quantities(data))
    value_sets: list[tuple[str, str, Any]] = []
    field_sets: list[tuple[str, str, Any]] = []
    for item in overrides:
        if "=" not in item:
            raise ProfileError(f"{where}: override {item!r}: expected KEY=VALUE")
        key, text = (s.strip() for s in item.split("=", 1))
        if key in flat:
            value_sets.append((key, "value", _parse_value(text)))
            continue
        head, _, last = key.rpartition(".")
        if head in flat and last in ("value", "status", "source"):
            (value_sets if last == "value" else field_sets).append(
                (head, last, text if last != "value" else _parse_value(text)))
            continue
        close = difflib.get_close_matches(key, list(flat), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known keys: {', '.join(sorted(flat))}"
        raise ProfileError(f"{where}: override {key}: no such key in the profile{hint}")
    for key, _, value in value_sets:
        old = flat[key].get("value")
        flat[key]["value"] = value
        flat[key]["status"] = "assumed"
        flat[key]["source"] = f"overridden with {key}={value} (the file had {old!r})"
    for key, name, value in field_sets:
        flat[key][name] = value


def _check_quantity(key: str, q: dict[str, Any], where: str) -> None:
    missing = [f for f in FIELDS if f not in q]
    if missing:
        raise ProfileError(f"{where}: key {key}: quantity lacks {', '.join(missing)} "
                           f"(each needs value, unit, status, source)")
    if q["status"] not in STATUSES:
        raise ProfileError(f"{where}: key {key}: status must be one of {STATUSES}, got {q['status']!r}")
    if not isinstance(q["source"], str) or not q["source"].strip():
        raise ProfileError(f"{where}: key {key}: source must be a non-empty text")
    if not isinstance(q["unit"], str):
        raise ProfileError(f"{where}: key {key}: unit must be a text")
    value = q["value"]
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ProfileError(f"{where}: key {key}: value must be a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ProfileError(f"{where}: key {key}: value must be finite, got {value!r}")


def _check_rule(key: str, q: dict[str, Any], unit: str, rule: Any, where: str) -> None:
    value = q["value"]
    if q["unit"] != unit:
        raise ProfileError(f"{where}: key {key}: unit must be {unit!r}, got {q['unit']!r}")
    if isinstance(rule, tuple):
        if value not in rule:
            raise ProfileError(f"{where}: key {key}: must be one of {rule}, got {value!r}")
        return
    if isinstance(value, (str, bool)):
        raise ProfileError(f"{where}: key {key}: value must be a number, got {value!r}")
    if rule.startswith("int"):
        if float(value) != int(value):
            raise ProfileError(f"{where}: key {key}: value must be an integer, got {value!r}")
        q["value"] = value = int(value)
        low = int(rule[-1])
        top = _BITS_MAX if unit == "bits" else _INT_MAX
        if not low <= value <= top:
            raise ProfileError(f"{where}: key {key}: value must be an integer in [{low}, {top}], got {value}")
        return
    if rule == ">0" and not value > 0:
        raise ProfileError(f"{where}: key {key}: value must be positive, got {value!r}")
    if rule == ">=0" and not value >= 0:
        raise ProfileError(f"{where}: key {key}: value must be >= 0, got {value!r}")


def validate(data: Any, where: str) -> tuple[str, str]:
    """Check a parsed profile; returns (name, kind). Raises ProfileError naming ``where`` and the key."""
    if not isinstance(data, dict):
        raise ProfileError(f"{where}: a profile must be a JSON object")
    for key in ("name", "kind"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise ProfileError(f"{where}: key {key}: missing or not a text")
    kind = data["kind"]
    if kind not in SCHEMA:
        raise ProfileError(f"{where}: key kind: must be one of {sorted(SCHEMA)}, got {kind!r}")
    flat = dict(_quantities(data))
    for key, q in flat.items():
        _check_quantity(key, q, where)
    for key, (unit, rule) in SCHEMA[kind].items():
        if key not in flat:
            raise ProfileError(f"{where}: required key {key} is missing")
        _check_rule(key, flat[key], unit, rule, where)
    return data["name"], kind


def load_profile(name_or_path: str | Path, overrides: Iterable[str] = ()) -> Profile:
    """Load ``hw_profiles/<name>.json`` or a JSON file, apply ``KEY=VALUE`` overrides, validate."""
    path = _resolve(name_or_path)
    where = str(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ProfileError(f"{where}: not valid JSON: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{where}: cannot read the profile: {exc}") from exc
    if not isinstance(data, dict):
        raise ProfileError(f"{where}: a profile must be a JSON object")
    overrides = tuple(overrides)
    _apply_overrides(data, overrides, where)
    name, kind = validate(data, where)
    return Profile(name, kind, where, data, overrides, str(data.get("description", "")))

"""Hardware profiles as data: load ``hw_profiles/<name>.json`` (or any JSON file), apply overrides, validate.

Every number in a profile is a *quantity*::

    {"value": 0.275, "unit": "W", "status": "measured" | "derived" | "vendor" | "assumed",
     "source": "what it is and how it was obtained", "refs": ["<source id>", ...],
     "low": 0.178, "high": 0.382}

``refs`` name entries of the file's ``sources`` table (a repository file at a commit, or a document);
``measured`` and ``derived`` quantities must have them. ``low`` / ``high`` (optional) are the quantity's
uncertainty band: the report evaluates the model at both ends (:meth:`Profile.at`) and gives every time
and energy figure with that band. Required keys, units and rules: :mod:`.profile_schema`.

Keys are addressed with dots (``energy.synop``). ``--set energy.synop=20`` replaces a value (its status
becomes ``assumed``, its source says it was overridden, and its band is dropped), unless
``--set energy.synop.status=measured``, ``.source=...``, ``.low=...`` / ``.high=...`` say otherwise.

Anything malformed raises :class:`~toolchain.errors.ProfileError` naming the file and the key.
"""
from __future__ import annotations

import copy
import difflib
import importlib.resources
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from toolchain.errors import ProfileError
from toolchain.hardware.profile_schema import (
    CODE_SOURCE,
    DOCUMENT_SOURCE,
    FIELDS,
    LEGACY_STATUSES,
    NEEDS_REFS,
    RESOURCE_MODELS,
    STATUSES,
    SYSTEM_RULE,
    ResourceModel,
    required,
)

PROFILE_DIR = Path(str(importlib.resources.files("hw_profiles")))   # package data (installed or not)
_INT_MAX = 2 ** 48
_BITS_MAX = 64
_COMMIT = re.compile(r"^[0-9a-f]{7,40}$")
End = Literal["value", "low", "high"]


@dataclass
class Profile:
    """A validated hardware profile. ``value(key)`` reads a quantity's value by dotted key."""

    name: str
    kind: str
    path: str
    data: dict[str, Any]
    overrides: tuple[str, ...] = ()
    description: str = ""
    end: End = "value"
    _flat: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._flat = dict(_quantities(self.data))

    @property
    def resource_model(self) -> ResourceModel | None:
        """``compiler`` or ``bytes`` for a neuromorphic profile (see :mod:`.profile_schema`), None otherwise."""
        if not self.neuromorphic:
            return None
        return "compiler" if self.data.get("resource_model") == "compiler" else "bytes"

    def quantity(self, key: str) -> dict[str, Any]:
        try:
            return self._flat[key]
        except KeyError:
            raise ProfileError(f"{self.path}: profile has no key {key!r}") from None

    def value(self, key: str) -> Any:
        q = self.quantity(key)
        return q.get(self.end, q["value"]) if self.end != "value" else q["value"]

    def band(self, key: str) -> tuple[Any, Any]:
        """(low, high) of a quantity: its band, or (value, value) without one."""
        q = self.quantity(key)
        return q.get("low", q["value"]), q.get("high", q["value"])

    def has(self, key: str) -> bool:
        return key in self._flat

    def at(self, end: End) -> Profile:
        """The same profile read at one end of every band (``low`` or ``high``; ``value``: the central one)."""
        return Profile(self.name, self.kind, self.path, self.data, self.overrides, self.description, end)

    @property
    def neuromorphic(self) -> bool:
        return self.kind == "neuromorphic"

    def quantities(self) -> dict[str, dict[str, Any]]:
        return {k: copy.deepcopy(q) for k, q in self._flat.items()}

    def with_status(self, *statuses: str) -> dict[str, dict[str, Any]]:
        """Every quantity with one of ``statuses``."""
        return {k: copy.deepcopy(q) for k, q in self._flat.items() if q["status"] in statuses}

    def assumed(self) -> dict[str, dict[str, Any]]:
        """Every quantity whose status is ``assumed`` (the report lists them)."""
        return self.with_status("assumed")

    @property
    def sources(self) -> dict[str, dict[str, Any]]:
        return copy.deepcopy(self.data.get("sources", {}))

    def systems(self) -> list[tuple[str, int]]:
        """(name, chips) of the systems the profile lists (``systems.<name>``), smallest first."""
        rows = [(k.split(".", 1)[1], int(q["value"])) for k, q in self._flat.items() if k.startswith("systems.")]
        return sorted(rows, key=lambda r: r[1])

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "resource_model": self.resource_model, "file": self.path,
                "description": self.description, "overrides": list(self.overrides),
                "quantities": self.quantities(), "sources": self.sources}


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.json"))


def _is_quantity(node: Any) -> bool:
    return isinstance(node, dict) and "value" in node


def _quantities(data: dict[str, Any], prefix: str = "") -> Iterable[tuple[str, dict[str, Any]]]:
    for key, node in data.items():
        if not isinstance(node, dict) or (not prefix and key == "sources"):
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
        if head in flat and last in ("value", "status", "source", "low", "high"):
            parsed = _parse_value(text) if last in ("value", "low", "high") else text
            (value_sets if last == "value" else field_sets).append((head, last, parsed))
            continue
        close = difflib.get_close_matches(key, list(flat), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known keys: {', '.join(sorted(flat))}"
        raise ProfileError(f"{where}: override {key}: no such key in the profile{hint}")
    for key, _, value in value_sets:
        old = flat[key].get("value")
        flat[key]["value"] = value
        flat[key]["status"] = "assumed"
        flat[key]["source"] = f"overridden with {key}={value} (the file had {old!r})"
        for name in ("low", "high", "refs"):
            flat[key].pop(name, None)
    for key, name, value in field_sets:
        flat[key][name] = value


def _number(key: str, name: str, value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProfileError(f"{where}: key {key}: {name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ProfileError(f"{where}: key {key}: {name} must be finite, got {value!r}")


def _check_quantity(key: str, q: dict[str, Any], sources: dict[str, Any], where: str) -> None:
    missing = [f for f in FIELDS if f not in q]
    if missing:
        raise ProfileError(f"{where}: key {key}: quantity lacks {', '.join(missing)} "
                           f"(each needs value, unit, status, source)")
    q["status"] = LEGACY_STATUSES.get(q["status"], q["status"])
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
    refs = q.get("refs", [])
    if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
        raise ProfileError(f"{where}: key {key}: refs must be a list of source ids")
    unknown = [r for r in refs if r not in sources]
    if unknown:
        raise ProfileError(f"{where}: key {key}: refs {unknown} are not in the file's sources table")
    if q["status"] in NEEDS_REFS and not refs:
        raise ProfileError(f"{where}: key {key}: a {q['status']} quantity must cite its sources (refs)")
    if "low" in q or "high" in q:
        _number(key, "value", value, where)
        low, high = q.get("low", value), q.get("high", value)
        _number(key, "low", low, where)
        _number(key, "high", high, where)
        if not low <= value <= high:
            raise ProfileError(f"{where}: key {key}: the band needs low <= value <= high, got {low}, {value}, {high}")


def _check_sources(sources: Any, where: str) -> dict[str, Any]:
    if not isinstance(sources, dict):
        raise ProfileError(f"{where}: key sources: must be an object of source id -> source")
    for sid, src in sources.items():
        if not isinstance(src, dict):
            raise ProfileError(f"{where}: source {sid}: must be an object")
        shape = CODE_SOURCE if "repository" in src else DOCUMENT_SOURCE
        missing = [k for k in shape if not isinstance(src.get(k), str) or not src[k].strip()]
        if missing:
            raise ProfileError(f"{where}: source {sid}: lacks {', '.join(missing)} (a repository source needs "
                               f"{', '.join(CODE_SOURCE)}; a document needs {', '.join(DOCUMENT_SOURCE)})")
        if shape is CODE_SOURCE and not _COMMIT.match(src["commit"]):
            raise ProfileError(f"{where}: source {sid}: commit must be 7 to 40 hex digits, got {src['commit']!r}")
    return sources


def _check_rule(key: str, q: dict[str, Any], unit: str, rule: Any, where: str) -> None:
    if q["unit"] != unit:
        raise ProfileError(f"{where}: key {key}: unit must be {unit!r}, got {q['unit']!r}")
    if isinstance(rule, tuple):
        if q["value"] not in rule:
            raise ProfileError(f"{where}: key {key}: must be one of {rule}, got {q['value']!r}")
        return
    for name in ("value", "low", "high"):
        if name not in q:
            continue
        value = q[name]
        label = "value" if name == "value" else f"{name} end"
        if isinstance(value, (str, bool)):
            raise ProfileError(f"{where}: key {key}: {label} must be a number, got {value!r}")
        if rule.startswith("int"):
            if float(value) != int(value):
                raise ProfileError(f"{where}: key {key}: {label} must be an integer, got {value!r}")
            q[name] = value = int(value)
            low = int(rule[-1])
            top = _BITS_MAX if unit == "bits" else _INT_MAX
            if not low <= value <= top:
                raise ProfileError(f"{where}: key {key}: {label} must be an integer in [{low}, {top}], got {value}")
        elif rule == ">0" and not value > 0:
            raise ProfileError(f"{where}: key {key}: {label} must be positive, got {value!r}")
        elif rule == ">=0" and not value >= 0:
            raise ProfileError(f"{where}: key {key}: {label} must be >= 0, got {value!r}")


def validate(data: Any, where: str) -> tuple[str, str]:
    """Check a parsed profile; returns (name, kind). Raises ProfileError naming ``where`` and the key."""
    if not isinstance(data, dict):
        raise ProfileError(f"{where}: a profile must be a JSON object")
    for key in ("name", "kind"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise ProfileError(f"{where}: key {key}: missing or not a text")
    kind = data["kind"]
    if kind not in ("neuromorphic", "reference"):
        raise ProfileError(f"{where}: key kind: must be one of ['neuromorphic', 'reference'], got {kind!r}")
    model = data.get("resource_model", "bytes" if kind == "neuromorphic" else None)
    if kind == "neuromorphic" and model not in RESOURCE_MODELS:
        raise ProfileError(f"{where}: key resource_model: must be one of {RESOURCE_MODELS}, got {model!r}")
    sources = _check_sources(data.get("sources", {}), where)
    flat = dict(_quantities(data))
    for key, q in flat.items():
        _check_quantity(key, q, sources, where)
    rules = required(kind, model)
    for key, (unit, rule) in rules.items():
        if key not in flat:
            raise ProfileError(f"{where}: required key {key} is missing")
        _check_rule(key, flat[key], unit, rule, where)
    for key, q in flat.items():
        if key.startswith("systems."):
            _check_rule(key, q, *SYSTEM_RULE, where)
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

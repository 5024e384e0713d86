"""What a hardware profile file must hold: the required keys of each kind and resource model, with their
units and value rules, the statuses, and the shape of a source.

Kinds and resource models:

* ``reference`` (``generic45nm``): Horowitz 2014 45 nm figures, used by the paper's energy method;
* ``neuromorphic`` with ``"resource_model": "compiler"`` (``loihi2``): per-core limits as Loihi 2's
  compiler counts them (neurons, synaptic memory in 64-bit words, input axons, neuron groups),
  calibrated on Intel's published compiler logs (:mod:`toolchain.hardware.compiler`);
* ``neuromorphic`` with ``"resource_model": "bytes"`` (``loihi1``, and the default for a file that
  names none): compartments, bytes of core memory, fan-in and fan-out (:mod:`toolchain.hardware.mapping`).

Statuses: ``measured`` (printed by the vendor's hardware profiler or compiler), ``derived`` (this
project's arithmetic on measured data), ``vendor`` (a specification, paper or press figure of the maker,
or a published literature figure, not checked here), ``assumed``. ``published`` (the status of profile
files before issue 13) is read as ``vendor``. A ``measured`` or ``derived`` quantity must cite at least one
entry of the file's ``sources`` table by id (``"refs": ["..."]``); a source is either a file in a
repository (``repository`` URL, ``path``, ``commit``: 7 to 40 hex digits) or a ``document`` (a citation,
optionally with a ``url``), and says ``what`` it shows.
"""
from __future__ import annotations

from typing import Any, Literal, get_args

Status = Literal["measured", "derived", "vendor", "assumed"]
STATUSES: tuple[Status, ...] = get_args(Status)
LEGACY_STATUSES = {"published": "vendor"}
NEEDS_REFS: tuple[Status, ...] = ("measured", "derived")
ResourceModel = Literal["compiler", "bytes"]
RESOURCE_MODELS: tuple[ResourceModel, ...] = get_args(ResourceModel)
FIELDS = ("value", "unit", "status", "source")
OPTIONAL_FIELDS = ("low", "high", "refs")
CODE_SOURCE = ("repository", "path", "commit", "what")
DOCUMENT_SOURCE = ("document", "what")

# key -> (unit, rule). Rules: "int>=1", "int>=0", ">0", ">=0", or a tuple of allowed strings.
Rule = tuple[str, Any]
_ENERGY: dict[str, Rule] = {f"energy.{k}": ("pJ", rule) for k, rule in (
    ("synop", ">0"), ("neuron_update_inactive", ">0"), ("neuron_update_active", ">0"),
    ("spike_in_tile", ">0"), ("tile_hop", ">=0"), ("host_mac", ">=0"))}
NEUROMORPHIC: dict[str, Rule] = {
    "chip.cores_per_chip": ("cores", "int>=1"),
    "chip.max_chips": ("chips", "int>=1"),
    "core.max_synaptic_delay": ("steps", "int>=0"),
    "core.weight_bits": ("bits", "int>=1"),
    "core.graded_payload_bits": ("bits", "int>=0"),
    "energy.scale": ("ratio", ">0"),
    "energy.graded_synop_scale": ("ratio", ">0"),
    **_ENERGY,
    "routing.mean_hops": ("hops", ">=0"),
    "time.synop": ("ns", ">=0"),
    "time.neuron_update": ("ns", ">=0"),
    "time.spike": ("ns", ">=0"),
    "time.barrier": ("ns", ">=0"),
    "time.floor": ("ns", ">=0"),
    "power.static_per_chip": ("W", ">=0"),
}
RESOURCES: dict[ResourceModel, dict[str, Rule]] = {
    "bytes": {
        "core.compartments": ("compartments", "int>=1"),
        "core.memory": ("bytes", "int>=1"),
        "core.fan_in": ("axons", "int>=1"),
        "core.fan_out": ("axons", "int>=1"),
        "memory_model.synapse_encoding": ("choice", ("explicit", "shared")),
        "memory_model.synapse_index_bits": ("bits", "int>=0"),
        "memory_model.synapse_delay_bits": ("bits", "int>=0"),
        "memory_model.state_bytes_per_compartment": ("bytes", ">=0"),
        "memory_model.axon_in_bytes": ("bytes", ">=0"),
        "memory_model.axon_out_bytes": ("bytes", ">=0"),
    },
    "compiler": {
        "chip.usable_cores_per_chip": ("cores", "int>=1"),
        "core.neurons": ("neurons", "int>=1"),
        "core.synmem_words": ("words", "int>=1"),
        "core.synmem_word_bits": ("bits", "int>=1"),
        "core.axons_in": ("axons", "int>=1"),
        "core.neuron_groups": ("groups", "int>=1"),
        "memory_model.conv_weight_bits": ("bits", "int>=1"),
        "memory_model.dense_index_bits": ("bits", "int>=0"),
        "memory_model.dense_axon_header_bits": ("bits", "int>=0"),
    },
}
REFERENCE: dict[str, Rule] = {
    "energy.fp32_mac": ("pJ", ">0"),
    "energy.fp32_add": ("pJ", ">0"),
    "energy.int8_mac": ("pJ", ">0"),
    "energy.int8_add": ("pJ", ">0"),
}
SYSTEM_RULE: Rule = ("chips", "int>=1")     # every ``systems.<name>`` quantity (optional group)


def required(kind: str, model: ResourceModel | None) -> dict[str, Rule]:
    """The keys a profile of ``kind`` (and resource ``model``) must hold, with their rules."""
    if kind == "reference":
        return dict(REFERENCE)
    return {**NEUROMORPHIC, **RESOURCES[model or "bytes"]}

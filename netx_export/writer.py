"""Write a quantized :class:`~toolchain.ir.QuantizedNetwork` to a netx-style HDF5 ``.net`` file.

The file is built in memory (:mod:`netx_export.h5image`), read back through the reader's checks
(so a network the reader would refuse is refused here, with :class:`ExportError`), and written
atomically (a temporary file beside the target, renamed when complete). It is byte-stable: the
same network always gives the same bytes, so write -> read -> write reproduces the file exactly.
Mantissas and exponents are stored in the narrowest integer dtype (int8 weights) and large datasets
deflate-compressed where that pays (see :mod:`netx_export.schema`). Every group is created without
object timestamps and with link creation order tracked (h5py lists keys in the order written); every
dataset is created with ``track_times=False`` and an explicit dtype. The last dataset written is the
content checksum (:mod:`netx_export.structure`).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from netx_export import schema
from netx_export.h5image import create_group, put, write_checked
from netx_export.reader import parse_file
from netx_export.schema import FLOAT, INT, INTS, JSON, PAIR, STR
from netx_export.structure import add_digest
from toolchain.errors import ExportError
from toolchain.ir import (
    Accumulator,
    Concat,
    ConvTranspose,
    FixedSynapses,
    Layer,
    MultiThreshold,
    QuantizedNetwork,
    SumPool,
    SynapticLayer,
    validate,
)

Entry = tuple[str, Any]          # (key, value); neuron keys are "neuron/<key>"


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


def encode_json(value: Any, what: str) -> str:
    """Deterministic JSON (sorted keys, ASCII) of a metadata mapping; ExportError if not encodable."""
    try:
        return json.dumps(value, sort_keys=True, ensure_ascii=True, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise ExportError(f"{what} cannot be stored as JSON: {exc}") from exc


def _encode(kind: str, key: str, value: Any, where: str) -> np.ndarray:
    """One value as the numpy array the file stores for a key of this kind."""
    if kind in (STR, JSON):
        text = value if kind == STR else encode_json(value, f"{where} {key}")
        if not isinstance(text, str) or "\x00" in text:
            raise ExportError(f"{where}: {key} must be a string without NUL characters, got {text!r}")
        return np.array([text.encode("utf-8")])   # dtype S<n>, shape (1,): slayer's convention
    if kind == PAIR:
        value = list(value) if isinstance(value, (tuple, list)) else [value, value]
    array = np.asarray(value)
    if kind == FLOAT:
        if array.shape != () or array.dtype.kind not in "iuf":
            raise ExportError(f"{where}: {key} must be a number, got {value!r}")
        return array.astype(np.float64)
    if array.dtype.kind not in "iub" and not (array.size == 0 and array.dtype.kind == "f"):
        raise ExportError(f"{where}: {key} must hold integers, got dtype {array.dtype}")
    if kind == INT and array.shape != ():
        raise ExportError(f"{where}: {key} must be a scalar, got shape {array.shape}")
    if kind in (INTS, PAIR) and array.ndim != 1:
        raise ExportError(f"{where}: {key} must be one-dimensional, got shape {array.shape}")
    return array.astype(np.int64)


def _neuron_entries(network: QuantizedNetwork, layer: SynapticLayer) -> list[Entry]:
    graded = network.lowering == "graded"
    prefix = schema.NEURON_GROUP + "/"
    common = [("iDecay", schema.I_DECAY_FULL), ("vDecay", schema.V_DECAY_NONE)]
    if isinstance(layer.neuron, Accumulator):
        entries = [("type", "ACC"), *common, ("refDelay", schema.REF_DELAY), ("gradedSpike", 0),
                   ("messageBits", 0), ("compartments", 1)]
    else:
        assert isinstance(layer.neuron, MultiThreshold)
        thresholds = tuple(int(t) for t in layer.neuron.thresholds)
        ratios = layer.neuron.spike_weights()
        entries = [("type", "MT"), *common, ("vThMant", thresholds[-1] >> 6),
                   ("refDelay", schema.REF_DELAY), ("gradedSpike", int(graded)),
                   ("messageBits", schema.message_bits(ratios, graded)), ("thresholds", thresholds),
                   ("compartments", len(thresholds)), ("spikeWeights", ratios)]
    return [(prefix + key, value) for key, value in entries]


def layer_entries(network: QuantizedNetwork, layer: Layer) -> list[Entry]:
    """Every (key, value) of one layer's group, in the order written (see :mod:`netx_export.schema`)."""
    index = {other.name: i for i, other in enumerate(network.layers)}
    c, h, w = layer.shape
    unit = (layer.synapses.unit if isinstance(layer, SynapticLayer) and isinstance(layer.synapses, FixedSynapses)
            else 0.0)
    entries: list[Entry] = [("type", layer.kind), ("name", layer.name), ("shape", (c, h, w)),
                            ("inputs", [index[s] for s in layer.inputs]), ("depth", layer.depth),
                            ("unit", float(unit))]
    if isinstance(layer, Concat):
        offsets = np.cumsum([0] + [network[s].shape[0] for s in layer.inputs])[:-1]
        entries += [("layers", [index[s] for s in layer.inputs]), ("delays", list(layer.delays)),
                    ("offsets", offsets)]
    elif isinstance(layer, SynapticLayer):
        syn = layer.synapses
        assert isinstance(syn, FixedSynapses)
        entries += [("inChannels", network[layer.source_name].shape[0]), ("outChannels", c),
                    ("kernelSize", layer.kernel), ("stride", layer.stride),  # type: ignore[attr-defined]
                    ("padding", layer.padding), ("dilation", 1),  # type: ignore[attr-defined]
                    ("groups", getattr(layer, "groups", 1))]
        if isinstance(layer, ConvTranspose):
            entries.append(("outputPadding", layer.output_padding))
        entries += [("weight", syn.weight), ("weightExp", list(syn.weight_exp)), ("bias", syn.bias),
                    ("biasExp", syn.bias_exp), ("static", int(getattr(layer, "static", False)))]
        if isinstance(layer, SumPool):
            entries.append(("poolWeight", float(layer.pool_weight)))
        entries += _neuron_entries(network, layer)
    source = layer.source.to_dict()
    if source:
        entries.append(("source", source))
    return entries


def _put(group: h5py.Group, key: str, array: np.ndarray, compact: bool = False) -> None:
    """One dataset; ``compact``: deflate-compressed (and shuffled) when :func:`schema.compression_pays`."""
    if compact and array.ndim >= 1 and schema.compression_pays(array):
        group.create_dataset(key, data=array, dtype=array.dtype, track_times=False,
                             chunks=schema.chunk_shape(array.shape, array.dtype.itemsize), compression="gzip",
                             compression_opts=schema.COMPRESS_LEVEL, shuffle=array.dtype.itemsize > 1)
    else:
        put(group, key, array)


def write_layer(layers_group: h5py.Group, index: int, entries: list[tuple[str, np.ndarray]]) -> None:
    """Create ``layer/<index>`` holding already-encoded entries (a neuron key opens the neuron group)."""
    group = create_group(layers_group, str(index))
    neuron: h5py.Group | None = None
    for key, array in entries:
        if key.startswith(schema.NEURON_GROUP + "/"):
            if neuron is None:
                neuron = create_group(group, schema.NEURON_GROUP)
            _put(neuron, key.split("/", 1)[1], array, compact=True)
        else:
            _put(group, key, array, compact=True)


def _encoded_layer(network: QuantizedNetwork, i: int, layer: Layer) -> list[tuple[str, np.ndarray]]:
    where = f"layer {i} ({layer.name})"
    try:
        entries = layer_entries(network, layer)
    except ExportError as exc:            # the IR's own checks (e.g. NeuronSpec.spike_weights)
        raise ExportError(str(exc) if str(exc).startswith(where) else f"{where}: {exc}") from exc
    encoded = []
    for key, value in entries:
        table = schema.NEURON_KEYS if key.startswith(schema.NEURON_GROUP + "/") else schema.LAYER_KEYS
        kind = table[key.split("/", 1)[-1]]
        array = _encode(kind, key, value, where)
        if key in schema.NARROW_KEYS:            # mantissas and exponents: the narrowest dtype
            array = array.astype(schema.narrowest_int(array))
        encoded.append((key, array))
    return encoded


def write_network(network: QuantizedNetwork, path: str | os.PathLike[str]) -> Path:
    """Write a quantized network to ``path`` atomically and byte-stably; returns the path.

    Raises :class:`ExportError` for a float (non-quantized) network, a network
    :func:`toolchain.ir.validate` refuses, or a value the format cannot hold (the message names the
    layer and key). The written file is read back through the reader before it replaces ``path``.
    """
    target = Path(path)
    if not isinstance(network, QuantizedNetwork):
        raise ExportError(f"cannot write {target}: only quantized networks can be written (export first)")
    try:
        validate(network)
        meta = _encode(JSON, "meta", {**network.meta.to_dict(), "format_version": schema.FORMAT_VERSION}, "meta")
        layers = [_encoded_layer(network, i, layer) for i, layer in enumerate(network.layers)]
    except ExportError as exc:
        raise ExportError(f"cannot write {target}: {exc}") from exc

    def fill(f: h5py.File) -> None:
        put(f, schema.FORMAT_KEY, _encode(STR, schema.FORMAT_KEY, schema.FORMAT_NAME, "root"))
        put(f, schema.VERSION_KEY, _encode(INT, schema.VERSION_KEY, schema.FORMAT_VERSION, "root"))
        put(create_group(f, schema.META_GROUP), schema.META_KEY, meta)
        layers_group = create_group(f, schema.LAYER_GROUP)
        for i, entries in enumerate(layers):
            write_layer(layers_group, i, entries)
        add_digest(f)

    write_checked(target, fill, parse_file, "")
    return target

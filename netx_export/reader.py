"""Read and validate a ``.net`` file written by :mod:`netx_export.writer` into a quantized Network.

Every problem is reported as a one-line :class:`~toolchain.errors.NetFileError` naming the file, the
layer index (and name) and the key. The reader checks the encoding (missing keys, wrong dtypes,
dataset shapes, keys that restate others, wiring that points forward, a format version newer than
this toolchain's); what the network means (shapes that follow from the wiring, Loihi's ranges,
depths and delays) is checked by the IR's one semantic pass, :func:`toolchain.ir.validate`.
Any other exception raised while parsing a
corrupted file (h5py, numpy, json) is converted to NetFileError with the location reached.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from toolchain.errors import NetFileError, ToolchainError
from toolchain.ir import (
    Accumulator,
    Concat,
    Conv,
    ConvTranspose,
    FixedSynapses,
    Input,
    Layer,
    LayerSource,
    MultiThreshold,
    NetworkMeta,
    Neuron,
    QuantizedNetwork,
    SumPool,
    SynapticLayer,
)
from toolchain.ir.limits import THRESHOLD_MANT_BITS, THRESHOLD_SHIFT
from toolchain.ir.validate import NetworkChecker
from toolchain.vocab import LOWERINGS, Lowering

from . import schema
from .fields import FieldGroup, one_line

# What h5py / numpy / json raise on corrupted input; converted to NetFileError.
_CORRUPTION = (KeyError, TypeError, ValueError, IndexError, ArithmeticError, OSError, RuntimeError,
               AttributeError, UnicodeError, RecursionError, MemoryError, ToolchainError)


@dataclass
class _Context:
    """What layer parsing needs from the file and from the layers before it."""

    layers: list[Layer] = field(default_factory=list)
    lowering: Lowering = "compartments"
    where: str = "file"


def _missing(group: FieldGroup, kind: str, required: tuple[str, ...]) -> None:
    missing = [key for key in required if not group.has(key)]
    if kind in schema.SYNAPTIC_KINDS and not group.has(schema.NEURON_GROUP):
        missing.append(schema.NEURON_GROUP)
    if missing:
        raise NetFileError(f"{group.where} ({kind}): missing required key(s) {', '.join(missing)}")


def _parse_neuron(g: FieldGroup, ctx: _Context) -> Neuron:
    kind = g.string("type")
    if kind not in schema.NEURON_REQUIRED:
        g.fail("type", f"unknown neuron type {kind!r} (expected MT or ACC)")
    _missing(g, kind, schema.NEURON_REQUIRED[kind])
    g.expect("iDecay", schema.I_DECAY_FULL, "integrate-and-fire: no current memory")
    g.expect("vDecay", schema.V_DECAY_NONE, "integrate-and-fire: no leak")
    g.expect("refDelay", schema.REF_DELAY, "netx default")
    graded = ctx.lowering == "graded"
    if kind == "ACC":
        g.expect("gradedSpike", 0, "the accumulator does not spike")
        g.expect("messageBits", 0, "the accumulator does not spike")
        g.expect("compartments", 1, "one accumulator per neuron")
        return Accumulator()
    thresholds = g.ints("thresholds", ndim=1).tolist()
    if not thresholds:
        g.fail("thresholds", "an MT neuron needs at least one threshold")
    neuron = MultiThreshold(tuple(int(t) for t in thresholds))
    smallest = thresholds[-1]
    # Keys restating the thresholds are checked only against valid thresholds: invalid ones are named
    # by the IR's check (validate: 'thresholds'), not by the first key that restates them.
    limit = (2 ** THRESHOLD_MANT_BITS - 1) << THRESHOLD_SHIFT
    valid = (smallest >= 1 and all(a > b for a, b in zip(thresholds, thresholds[1:]))
             and all(t <= limit and t % smallest == 0 and t % (1 << THRESHOLD_SHIFT) == 0 for t in thresholds))
    if valid:
        ratios = [t // smallest for t in thresholds]
        if g.ints("spikeWeights", ndim=1).tolist() != ratios:
            g.fail("spikeWeights", f"is {g.ints('spikeWeights', ndim=1).tolist()}, expected thresholds / "
                                   f"smallest threshold = {ratios}")
        g.expect("messageBits", schema.message_bits(tuple(ratios), graded), f"lowering {ctx.lowering!r}")
    g.expect("compartments", len(thresholds), "one per threshold")
    if valid:
        g.expect("vThMant", smallest >> THRESHOLD_SHIFT, "smallest threshold >> 6")
    g.expect("gradedSpike", int(graded), f"lowering {ctx.lowering!r}")
    return neuron


def _parse_concat(g: FieldGroup, common: dict[str, Any], inputs: list[int], ctx: _Context) -> Concat:
    if g.ints("layers", ndim=1).tolist() != inputs:
        g.fail("layers", f"must equal 'inputs' {inputs}")
    channels = [ctx.layers[j].shape[0] for j in inputs]
    offsets = np.cumsum([0] + channels)[:-1].tolist()
    if g.ints("offsets", shape=(len(inputs),)).tolist() != offsets:
        g.fail("offsets", f"expected the parts' channel offsets {offsets}")
    delays = g.ints("delays", shape=(len(inputs),))
    return Concat(**common, delays=tuple(int(d) for d in delays))


def _parse_synaptic(g: FieldGroup, common: dict[str, Any], inputs: list[int], ctx: _Context) -> SynapticLayer:
    kind, (c_out, _, _) = g.string("type"), common["shape"]
    if len(inputs) != 1:
        g.fail("inputs", f"a {kind} layer has exactly one input, got {len(inputs)}")
    src = ctx.layers[inputs[0]]
    static = g.int("static", lo=0, hi=1)
    parts = len(src.inputs) if isinstance(src, Concat) and not static else 1
    c_in = src.shape[0]
    g.expect("inChannels", c_in, f"channels of source {src.name}")
    g.expect("outChannels", c_out, "channels of 'shape'")
    kernel, stride, padding = g.pair("kernelSize", 1), g.pair("stride", 1), g.pair("padding", 0)
    if g.pair("dilation", 1) != 1:
        g.fail("dilation", "only dilation 1 is supported")
    groups = g.int("groups", lo=1, hi=max(1, c_in)) if kind != "pool" else g.int("groups", lo=1, hi=1)
    if c_in % groups or c_out % groups:
        g.fail("groups", f"{groups} must divide the {c_in} input and {c_out} output channels")
    if groups > 1 and isinstance(src, Concat):
        g.fail("groups", "a grouped convolution cannot be fed by a concat")
    output_padding = g.pair("outputPadding", 0) if kind == "convT" else 0
    if output_padding >= stride:
        g.fail("outputPadding", f"{output_padding} must be smaller than the stride {stride}")
    if kind == "pool" and (stride != kernel or padding != 0):
        g.fail("stride", "a pool layer needs stride = kernel and no padding "
                         f"(got stride {stride}, kernel {kernel}, padding {padding})")
    weight_shape = {"conv": (c_out, c_in // groups, kernel, kernel), "convT": (c_in, c_out // groups, kernel, kernel),
                    "pool": (1,)}
    weight = g.ints("weight", shape=weight_shape[kind])
    weight_exp = g.ints("weightExp", shape=(parts,))
    bias = g.ints("bias", shape=(c_out,))
    bias_exp = g.ints("biasExp", shape=(c_out,))
    neuron = _parse_neuron(g.sub(schema.NEURON_GROUP, f"{g.where} neuron"), ctx)
    synapses = FixedSynapses(weight=weight.astype(schema.MEMORY_DTYPE["weight"]),
                             weight_exp=tuple(int(e) for e in weight_exp),
                             bias=bias.astype(schema.MEMORY_DTYPE["bias"]),
                             bias_exp=bias_exp.astype(schema.MEMORY_DTYPE["biasExp"]), unit=common.pop("unit"))
    k, st, pd = (kernel, kernel), (stride, stride), (padding, padding)
    if kind == "conv":
        return Conv(**common, neuron=neuron, synapses=synapses, kernel=k, stride=st, padding=pd, static=bool(static),
                    groups=groups)
    if static:
        g.fail("static", "only a conv fed directly by the input layer can be static")
    if kind == "convT":
        return ConvTranspose(**common, neuron=neuron, synapses=synapses, kernel=k, stride=st, padding=pd,
                             output_padding=(output_padding, output_padding), groups=groups)
    return SumPool(**common, neuron=neuron, synapses=synapses, kernel=k, pool_weight=g.float("poolWeight"))


def _parse_layer(group: Any, index: int, ctx: _Context) -> Layer:
    g = FieldGroup(group, f"layer {index}")
    kind = g.string("type")
    if kind not in schema.REQUIRED:
        g.fail("type", f"unknown layer type {kind!r} (expected one of {', '.join(schema.REQUIRED)})")
    if (kind == "input") != (index == 0):
        g.fail("type", "layer 0, and only layer 0, must be the input layer")
    _missing(g, kind, schema.REQUIRED[kind])
    name = g.string("name")
    if not name or any(name == layer.name for layer in ctx.layers):
        g.fail("name", f"layer names must be non-empty and unique, got {name!r}")
    g.where = f"layer {index} ({name})"
    z, y, x = g.ints("shape", shape=(3,), lo=1).tolist()   # stored (C, H, W); netx reverses it to (x, y, z)
    inputs = g.ints("inputs", ndim=1).tolist()
    for j in inputs:
        if not 0 <= j < index:
            g.fail("inputs", f"{j} is not an earlier layer (0..{index - 1})")
    try:
        source = LayerSource.from_dict(g.json("source")) if g.has("source") else LayerSource()
    except ValueError as exc:
        g.fail("source", str(exc))
    common: dict[str, Any] = {"name": name, "shape": (z, y, x), "inputs": tuple(ctx.layers[j].name for j in inputs),
                              "depth": g.int("depth"), "source": source}
    unit = g.float("unit")
    if kind == "input":
        return Input(**common)
    if kind == "concat":
        return _parse_concat(g, common, inputs, ctx)
    return _parse_synaptic(g, {**common, "unit": unit}, inputs, ctx)


def _parse(f: h5py.File, ctx: _Context) -> QuantizedNetwork:
    root = FieldGroup(f, "file")
    if not root.has(schema.FORMAT_KEY):
        root.fail(schema.FORMAT_KEY, f"missing: not a {schema.FORMAT_NAME} file")
    name = root.string(schema.FORMAT_KEY)
    if name != schema.FORMAT_NAME:
        root.fail(schema.FORMAT_KEY, f"is {name!r}: not a {schema.FORMAT_NAME} file")
    version = root.int(schema.VERSION_KEY)
    if version > schema.FORMAT_VERSION:
        raise NetFileError(f"written by a newer toolchain: version {version} > {schema.FORMAT_VERSION}")
    if version < 1:
        root.fail(schema.VERSION_KEY, f"invalid format version {version}")
    meta_group = root.sub(schema.META_GROUP, "meta")
    meta = meta_group.json(schema.META_KEY)
    bits = meta.get("weight_bits")
    if not isinstance(bits, int) or isinstance(bits, bool) or not 2 <= bits <= 8:
        meta_group.fail(schema.META_KEY, f"weight_bits must be an integer in 2..8, got {bits!r}")
    lowering = meta.get("lowering", "compartments")
    if lowering not in LOWERINGS:
        meta_group.fail(schema.META_KEY, f"lowering must be one of {LOWERINGS}, got {lowering!r}")
    layers = root.sub(schema.LAYER_GROUP, "layer")
    count = len(layers.group)
    if count < 2 or set(layers.group.keys()) != {str(i) for i in range(count)}:
        layers.fail("*", f"layer groups must be named 0..L-1 with L >= 2, got {sorted(layers.group.keys())[:8]}")
    ctx.lowering = lowering
    try:
        network_meta = NetworkMeta.from_dict(meta)
    except TypeError as exc:
        meta_group.fail(schema.META_KEY, f"malformed ({exc})")
    check = NetworkChecker(network_meta, count, NetFileError)
    for i in range(count):
        ctx.where = f"layer {i}"
        layer = _parse_layer(layers.group.get(str(i)), i, ctx)
        check.add(layer)                 # the IR's semantic checks, as each layer is read
        ctx.layers.append(layer)
    ctx.where = "file"
    check.finish()
    return QuantizedNetwork(tuple(ctx.layers), network_meta)


def parse_file(f: h5py.File) -> QuantizedNetwork:
    """Validate an open file and build its network; NetFileError (without the file name) on any problem."""
    ctx = _Context()
    try:
        return _parse(f, ctx)
    except NetFileError:
        raise
    except _CORRUPTION as exc:
        raise NetFileError(one_line(f"{ctx.where}: malformed ({type(exc).__name__}: {exc})")) from exc


def read_network(path: str | os.PathLike[str]) -> QuantizedNetwork:
    """Read a ``.net`` file into a quantized :class:`~toolchain.ir.QuantizedNetwork`; every problem is a
    one-line NetFileError."""
    path = Path(path)
    if not path.exists():
        raise NetFileError(f"{path}: no such file")
    if not path.is_file():
        raise NetFileError(f"{path}: not a file")
    try:
        f = h5py.File(path, "r")
    except _CORRUPTION as exc:
        raise NetFileError(one_line(f"{path}: not a readable HDF5 file ({exc})")) from exc
    try:
        with f:
            return parse_file(f)
    except NetFileError as exc:
        raise NetFileError(one_line(f"{path}: {exc}")) from exc
    except _CORRUPTION as exc:       # closing a damaged file
        raise NetFileError(one_line(f"{path}: malformed file ({type(exc).__name__}: {exc})")) from exc

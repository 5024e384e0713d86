"""Read and validate a ``.net`` file written by :mod:`netx_export.writer` into a quantized Network.

Every problem is reported as a one-line :class:`~toolchain.errors.NetFileError` naming the file, the
layer index (and name) and the key: missing keys, wrong dtypes, inconsistent shapes (each layer's
output shape is re-derived from its source, kernel, stride and padding), wiring that points
forward, values outside Loihi's ranges, depths and delays that do not follow from the wiring,
and a format version newer than this toolchain's. Any other exception raised while parsing a
corrupted file (h5py, numpy, json) is converted to NetFileError with the location reached.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from toolchain.errors import NetFileError, ToolchainError
from toolchain.lowering.lower import FORMAT_VERSION
from toolchain.lowering.fixed_point import (BIAS_EXP_MAX, BIAS_MANT_BITS, HOST_EXP_MIN, THRESHOLD_MANT_BITS,
                                   THRESHOLD_SHIFT, WEIGHT_EXP_MAX)
from toolchain.ir.graph import LOWERINGS, MAX_SYNAPTIC_DELAY, Layer, Network, NeuronSpec, output_hw

from netx_export import schema
from netx_export.fields import FieldGroup, one_line

# What h5py / numpy / json raise on corrupted input; converted to NetFileError.
_CORRUPTION = (KeyError, TypeError, ValueError, IndexError, ArithmeticError, OSError, RuntimeError,
               AttributeError, UnicodeError, RecursionError, MemoryError, ToolchainError)


@dataclass
class _Context:
    """What layer parsing needs from the file and from the layers before it."""

    layers: list[Layer]
    count: int
    weight_bits: int
    lowering: str
    where: str = "file"

    def layer(self, name: str) -> Layer:
        return next(layer for layer in self.layers if layer.name == name)


def _missing(group: FieldGroup, kind: str, required: tuple[str, ...]) -> None:
    missing = [key for key in required if not group.has(key)]
    if kind in schema.SYNAPTIC_KINDS and not group.has(schema.NEURON_GROUP):
        missing.append(schema.NEURON_GROUP)
    if missing:
        raise NetFileError(f"{group.where} ({kind}): missing required key(s) {', '.join(missing)}")


def _parse_neuron(g: FieldGroup, ctx: _Context) -> NeuronSpec:
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
        return NeuronSpec("ACC")
    limit = (2 ** THRESHOLD_MANT_BITS - 1) << THRESHOLD_SHIFT
    thresholds = g.ints("thresholds", ndim=1, lo=1, hi=limit, what="threshold (17-bit mantissa << 6)").tolist()
    if not thresholds:
        g.fail("thresholds", "an MT neuron needs at least one threshold")
    if any(a <= b for a, b in zip(thresholds, thresholds[1:])):
        g.fail("thresholds", f"must be strictly decreasing, got {thresholds}")
    if any(t % (1 << THRESHOLD_SHIFT) for t in thresholds):
        g.fail("thresholds", f"must be multiples of {1 << THRESHOLD_SHIFT} (a mantissa << {THRESHOLD_SHIFT}), "
                             f"got {thresholds}")
    smallest = thresholds[-1]
    if any(t % smallest for t in thresholds):
        g.fail("thresholds", f"must be integer multiples of the smallest threshold, got {thresholds}")
    ratios = [t // smallest for t in thresholds]
    spike_weights = g.ints("spikeWeights", ndim=1).tolist()
    if spike_weights != ratios:
        g.fail("spikeWeights", f"is {spike_weights}, expected thresholds / smallest threshold = {ratios}")
    g.expect("compartments", len(thresholds), "one per threshold")
    g.expect("vThMant", smallest >> THRESHOLD_SHIFT, "smallest threshold >> 6")
    g.expect("gradedSpike", int(graded), f"lowering {ctx.lowering!r}")
    g.expect("messageBits", schema.message_bits(tuple(ratios), graded), f"lowering {ctx.lowering!r}")
    return NeuronSpec("MT", tuple(int(t) for t in thresholds))


def _parse_concat(g: FieldGroup, common: dict[str, Any], inputs: list[int], ctx: _Context) -> Layer:
    if not inputs:
        g.fail("inputs", "a concat needs at least one part")
    if g.ints("layers", ndim=1).tolist() != inputs:
        g.fail("layers", f"must equal 'inputs' {inputs}")
    parts = [ctx.layers[j] for j in inputs]
    for part in parts:
        if part.neuron is None or part.neuron.kind != "MT":
            g.fail("inputs", f"part {part.name} is not a spiking (MT) layer")
        if part.shape[1:] != common["shape"][1:]:
            g.fail("shape", f"part {part.name} is {part.shape[1]}x{part.shape[2]}, the concat "
                            f"{common['shape'][1]}x{common['shape'][2]}")
    channels = [part.shape[0] for part in parts]
    if sum(channels) != common["shape"][0]:
        g.fail("shape", f"concat has {common['shape'][0]} channels, its parts {sum(channels)}")
    offsets = np.cumsum([0] + channels)[:-1].tolist()
    if g.ints("offsets", shape=(len(parts),)).tolist() != offsets:
        g.fail("offsets", f"expected the parts' channel offsets {offsets}")
    delays = g.ints("delays", shape=(len(parts),), lo=0, hi=MAX_SYNAPTIC_DELAY - 1, what="delay").tolist()
    depth = max(part.depth for part in parts)
    if common["depth"] != depth:
        g.fail("depth", f"is {common['depth']}, expected {depth} (the deepest part)")
    expected = [depth - part.depth for part in parts]
    if delays != expected:
        g.fail("delays", f"is {delays}, expected {expected} (aligning the parts' depths)")
    return Layer(**common, delays=tuple(delays))


def _parse_synaptic(g: FieldGroup, common: dict[str, Any], inputs: list[int], index: int, ctx: _Context) -> Layer:
    kind, (c_out, h, w) = common["kind"], common["shape"]
    if len(inputs) != 1:
        g.fail("inputs", f"a {kind} layer has exactly one input, got {len(inputs)}")
    src = ctx.layers[inputs[0]]
    static = g.int("static", lo=0, hi=1)
    if src.kind == "input":
        if not static or kind != "conv":
            g.fail("static", "a layer fed by the input must be a static conv (static coding)")
        parts = [src]
    elif static:
        g.fail("static", "only a conv fed directly by the input layer can be static")
    elif src.kind == "concat":
        if kind == "pool":
            g.fail("inputs", "a pool layer cannot be fed by a concat")
        parts = [ctx.layer(name) for name in src.inputs]
    else:
        if src.neuron is None or src.neuron.kind != "MT":
            g.fail("inputs", f"source {src.name} is not a spiking (MT) layer")
        parts = [src]
    c_in = src.shape[0]
    g.expect("inChannels", c_in, f"channels of source {src.name}")
    g.expect("outChannels", c_out, "channels of 'shape'")
    kernel, stride, padding = g.pair("kernelSize", 1), g.pair("stride", 1), g.pair("padding", 0)
    if g.pair("dilation", 1) != 1:
        g.fail("dilation", "only dilation 1 is supported")
    g.expect("groups", 1, "only ungrouped convolutions are supported")
    output_padding = g.pair("outputPadding", 0) if kind == "convT" else 0
    if output_padding >= stride:
        g.fail("outputPadding", f"{output_padding} must be smaller than the stride {stride}")
    if kind == "pool" and (stride != kernel or padding != 0):
        g.fail("stride", f"a pool layer needs stride = kernel and no padding (got stride {stride}, kernel {kernel}, padding {padding})")
    expected_hw = output_hw(kind, src.shape[1:], kernel, stride, padding, output_padding)
    if expected_hw != (h, w):
        g.fail("shape", f"{h}x{w} does not follow from the {src.shape[1]}x{src.shape[2]} input of "
                        f"{src.name} (expected {expected_hw[0]}x{expected_hw[1]})")
    weight_shape = {"conv": (c_out, c_in, kernel, kernel), "convT": (c_in, c_out, kernel, kernel), "pool": (1,)}
    limit = 2 ** (ctx.weight_bits - 1)
    weight = g.ints("weight", shape=weight_shape[kind], lo=-limit, hi=limit - 1, what="weight mantissa")
    weight_exp = g.ints("weightExp", shape=(len(parts),), lo=HOST_EXP_MIN if static else 0,
                        hi=WEIGHT_EXP_MAX, what="weight exponent")
    bias_limit = 2 ** (BIAS_MANT_BITS - 1)
    bias = g.ints("bias", shape=(c_out,), lo=-bias_limit, hi=bias_limit - 1, what="bias mantissa")
    bias_exp = g.ints("biasExp", shape=(c_out,), lo=0, hi=BIAS_EXP_MAX, what="bias exponent")
    pool_weight = g.float("poolWeight") if kind == "pool" else 0.0
    neuron = _parse_neuron(g.sub(schema.NEURON_GROUP, f"{g.where} neuron"), ctx)
    last = index == ctx.count - 1
    if (neuron.kind == "ACC") != last:
        g.fail(schema.NEURON_GROUP, "the last layer must be the ACC output accumulator, and only it")
    depth = 0 if static else src.depth + 1
    if common["depth"] != depth:
        g.fail("depth", f"is {common['depth']}, expected {depth} (one step after {src.name})")
    if common["unit"] <= 0:
        g.fail("unit", f"a neuron layer needs a positive membrane unit, got {common['unit']}")
    return Layer(**common, neuron=neuron, weight=weight.astype(schema.MEMORY_DTYPE["weight"]),
                 bias=bias.astype(schema.MEMORY_DTYPE["bias"]), kernel=kernel, stride=stride,
                 padding=padding, output_padding=output_padding, pool_weight=pool_weight, static=bool(static),
                 weight_exp=tuple(int(e) for e in weight_exp),
                 bias_exp=bias_exp.astype(schema.MEMORY_DTYPE["biasExp"]))


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
    common = {"name": name, "kind": kind, "shape": (z, y, x), "inputs": tuple(ctx.layers[j].name for j in inputs),
              "depth": g.int("depth"), "unit": g.float("unit"),
              "source": g.json("source") if g.has("source") else {}}
    if kind == "input":
        if inputs:
            g.fail("inputs", "the input layer has no inputs")
        if common["depth"] != -1:
            g.fail("depth", f"the input layer's depth is -1, got {common['depth']}")
        return Layer(**common)
    if kind == "concat":
        return _parse_concat(g, common, inputs, ctx)
    return _parse_synaptic(g, common, inputs, index, ctx)


def _parse(f: h5py.File, ctx: _Context) -> Network:
    root = FieldGroup(f, "file")
    if not root.has(schema.FORMAT_KEY):
        root.fail(schema.FORMAT_KEY, f"missing: not a {schema.FORMAT_NAME} file")
    name = root.string(schema.FORMAT_KEY)
    if name != schema.FORMAT_NAME:
        root.fail(schema.FORMAT_KEY, f"is {name!r}: not a {schema.FORMAT_NAME} file")
    version = root.int(schema.VERSION_KEY)
    if version > FORMAT_VERSION:
        raise NetFileError(f"written by a newer toolchain: version {version} > {FORMAT_VERSION}")
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
    ctx.count, ctx.weight_bits, ctx.lowering = count, bits, lowering
    for i in range(count):
        ctx.where = f"layer {i}"
        ctx.layers.append(_parse_layer(layers.group.get(str(i)), i, ctx))
    ctx.where = "file"
    last = ctx.layers[-1]
    if last.neuron is None or last.neuron.kind != "ACC":
        raise NetFileError(f"layer {count - 1} ({last.name}): the last layer must be the ACC output accumulator")
    return Network(ctx.layers, meta, quantized=True)


def parse_file(f: h5py.File) -> Network:
    """Validate an open file and build its Network; NetFileError (without the file name) on any problem."""
    ctx = _Context([], 0, 8, "compartments")
    try:
        return _parse(f, ctx)
    except NetFileError:
        raise
    except _CORRUPTION as exc:
        raise NetFileError(one_line(f"{ctx.where}: malformed ({type(exc).__name__}: {exc})")) from exc


def read_network(path: str | os.PathLike[str]) -> Network:
    """Read a ``.net`` file into a quantized :class:`Network`; every problem is a one-line NetFileError."""
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

"""Read a STOCK Lava-DL netx ``.net`` file (as slayer writes it, as lava-dl's tests ship it) into the IR.

A stock file has no ``format`` / ``formatVersion`` / ``inputs`` keys: its layers ``layer/0 ..
layer/L-1`` are wired strictly in sequence, as :class:`lava.lib.dl.netx.hdf5.Network` wires them.
Supported (what netx itself loads with binary spikes): ``input`` (with a CUBA neuron), ``conv``,
``flatten`` and ``dense`` layers whose neurons are ``CUBA`` or ``LOIHI`` (netx treats both as
Lava's LIF). Everything else is refused with a one-line :class:`~toolchain.errors.NetFileError`
naming the layer and the unsupported type: ``pool``, ``convT``, ``unpool``, ``average``,
``concat`` (netx raises NotImplementedError for them too), ``dense_rec`` / ``dense_comp``,
``SDNN`` / ``RF*`` neurons, graded spikes, synaptic ``delay`` arrays, dilation or groups != 1.

Mapping (netx's ``get_neuron_params`` and blocks): CUBA -> :class:`~toolchain.ir.Cuba` ``(vth=vThMant,
du=iDecay-1, dv=vDecay, bias_exp=6)``; a dense layer without a ``neuron`` group gets netx's
default (iDecay 0, vDecay 4096, vThMant 1 << 17). File shapes are (C, H, W) (netx reverses them
into (x, y, z)); conv weights are torch's (out, in, kH, kW) layout; ``stride`` / ``padding`` are
(H, W) pairs. Weights and biases are kept as the file's integers: the quirks Lava applies to them
(Conv ignores any exponent, Dense re-scales and truncates via ``optimize_weight_bits``) are the
simulator's business (:mod:`toolchain.simulators.physical`). The input layer's ``weight`` / ``bias``
(a host-side transform netx stores but never applies) are recorded in the layer's source; its
neurons are driven by a per-neuron bias mantissa (the image) given at run time.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from netx_export.fields import one_line
from netx_export.structure import STOCK, inspect_file, verify_digest
from toolchain.errors import NetFileError
from toolchain.ir import Conv, Cuba, Dense, Flatten, Input, Layer, LayerSource, StockMeta, StockNetwork, StockSynapses

SUPPORTED_LAYERS = ("input", "conv", "flatten", "dense")
SUPPORTED_NEURONS = ("CUBA", "LOIHI")
WEIGHT_MIN, WEIGHT_MAX = -256, 255        # what Lava's 8-bit synapses (mantissa with sign) can hold
DEFAULT_DENSE_NEURON = {"type": "CUBA", "iDecay": 0, "vDecay": 4096, "vThMant": 1 << 17}
STOCK_BIAS_EXP = 6                        # netx: bias_exp = 6 for every CUBA layer


def _text(value: Any) -> str:
    value = np.asarray(value)
    if value.shape:
        value = value.reshape(-1)[0]
    value = value.item() if isinstance(value, (np.generic, np.ndarray)) else value
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _scalar(group: h5py.Group, key: str, where: str) -> int:
    if key not in group:
        raise NetFileError(f"{where}: missing required key '{key}'")
    value = np.asarray(group[key][()]).reshape(-1)
    if value.size != 1 or not np.isfinite(value.astype(np.float64)).all() or value[0] != np.round(value[0]):
        raise NetFileError(f"{where}: '{key}' must be one integer, got {value.tolist()[:4]}")
    return int(value[0])


def _ints(group: h5py.Group, key: str, where: str, lo: int | None = None, hi: int | None = None) -> np.ndarray:
    value = np.asarray(group[key][()], dtype=np.float64)
    if not np.isfinite(value).all() or (value != np.round(value)).any():
        raise NetFileError(f"{where}: '{key}' must hold integers")
    value = value.astype(np.int64)
    if value.size and lo is not None and (value.min() < lo or value.max() > hi):
        raise NetFileError(f"{where}: '{key}' has values in {value.min()}..{value.max()}, outside {lo}..{hi}")
    return value


def _pair(group: h5py.Group, key: str, where: str, default: int) -> tuple[int, int]:
    if key not in group:
        return default, default
    value = _ints(group, key, where).reshape(-1)
    if value.size == 1:
        return int(value[0]), int(value[0])
    if value.size != 2:
        raise NetFileError(f"{where}: '{key}' must be a scalar or an (H, W) pair, got {value.tolist()}")
    return int(value[0]), int(value[1])


def _neuron(group: h5py.Group | None, where: str) -> Cuba:
    cfg: Any = group if group is not None else DEFAULT_DENSE_NEURON
    kind = _text(cfg["type"])
    if kind not in SUPPORTED_NEURONS:
        raise NetFileError(f"{where}: neuron type {kind!r} is not supported (supported: CUBA, LOIHI)")
    if group is None:
        values = {k: int(v) for k, v in DEFAULT_DENSE_NEURON.items() if isinstance(v, int)}
    else:
        values = {k: _scalar(group, k, f"{where} neuron") for k in ("iDecay", "vDecay", "vThMant")}
        graded = "gradedSpike" in group and bool(np.asarray(group["gradedSpike"][()]).reshape(-1)[0])
        bits = _scalar(group, "messageBits", f"{where} neuron") if "messageBits" in group else 0
        if graded or bits:
            raise NetFileError(f"{where}: graded-spike CUBA neurons are not supported")
    if not 0 <= values["iDecay"] <= 4096 or not 0 <= values["vDecay"] <= 4096:
        raise NetFileError(f"{where}: iDecay / vDecay must be in 0..4096, got {values['iDecay']}, {values['vDecay']}")
    if not 0 <= values["vThMant"] < 1 << 18:
        raise NetFileError(f"{where}: vThMant {values['vThMant']} is outside 0..{(1 << 18) - 1}")
    return Cuba(vth=values["vThMant"], du=values["iDecay"] - 1, dv=values["vDecay"], bias_exp=STOCK_BIAS_EXP)


def _shape(group: h5py.Group, where: str) -> tuple[int, int, int]:
    if "shape" not in group:
        raise NetFileError(f"{where}: missing required key 'shape'")
    dims = _ints(group, "shape", where, 1, 1 << 30).reshape(-1).tolist()
    if not 1 <= len(dims) <= 3:
        raise NetFileError(f"{where}: 'shape' must have 1 to 3 entries, got {dims}")
    dims = dims + [1] * (3 - len(dims))       # (C,) -> (C, 1, 1)
    return int(dims[0]), int(dims[1]), int(dims[2])


def _bias(group: h5py.Group, where: str, channels: int) -> np.ndarray:
    if "bias" not in group:
        return np.zeros(channels, np.int64)
    bias = _ints(group, "bias", where, -(1 << 12), (1 << 12) - 1).reshape(-1)
    if bias.size == 1 and channels != 1:
        bias = np.full(channels, bias[0])
    if bias.size != channels:
        raise NetFileError(f"{where}: 'bias' has {bias.size} entries for {channels} channels")
    return bias


def _layer(group: h5py.Group, index: int, prev: Layer | None) -> Layer:
    where = f"layer {index}"
    kind = _text(group["type"]) if "type" in group else ""
    shape = _shape(group, f"{where} ({kind})")
    name = f"{kind}{index}"
    depth = 0 if prev is None else prev.depth + (kind != "flatten")
    common: dict[str, Any] = {"name": name, "shape": shape, "depth": depth,
                              "inputs": () if prev is None else (prev.name,)}
    if kind == "input":
        if prev is not None:
            raise NetFileError(f"{where}: only layer 0 can be an input layer")
        if "neuron" not in group:
            raise NetFileError(f"{where}: an input layer without a neuron is not supported "
                               "(spikes fed straight into layer 1)")
        source = {k: float(np.asarray(group[k][()]).reshape(-1)[0]) for k in ("weight", "bias") if k in group}
        return Input(**common, neuron=_neuron(group["neuron"], where), source=LayerSource.from_dict(source))
    if prev is None:
        raise NetFileError(f"{where}: layer 0 must be an input layer, got {kind!r}")
    if kind == "flatten":
        c, h, w = prev.shape
        if shape[0] * shape[1] * shape[2] != c * h * w:
            raise NetFileError(f"{where}: flatten shape {shape} does not hold the {prev.shape} of layer {index - 1}")
        return Flatten(**{**common, "shape": (c * h * w, 1, 1)})
    neuron = _neuron(group.get("neuron"), where)
    if "weight" not in group:
        raise NetFileError(f"{where} ({kind}): missing required key 'weight'")
    if "delay" in group:
        raise NetFileError(f"{where} ({kind}): synaptic 'delay' arrays are not supported")
    weight = _ints(group, "weight", where, WEIGHT_MIN, WEIGHT_MAX)
    c_in = prev.shape[0] * prev.shape[1] * prev.shape[2]
    if kind == "dense":
        c_out = shape[0] * shape[1] * shape[2]
        if isinstance(prev, Conv) or prev.shape[1:] != (1, 1):
            raise NetFileError(f"{where}: a dense layer needs a flat (C, 1, 1) source, got {prev.shape}")
        if weight.size != c_out * c_in:
            raise NetFileError(f"{where}: 'weight' has {weight.size} entries, expected {c_out} x {c_in}")
        return Dense(**{**common, "shape": (c_out, 1, 1)}, neuron=neuron,
                     synapses=StockSynapses(weight.reshape(c_out, c_in).astype(np.int32), _bias(group, where, c_out)))
    if kind != "conv":
        raise NetFileError(f"{where}: layer type {kind!r} is not supported")
    weight = weight.reshape(weight.shape[:4]) if weight.ndim == 5 else weight
    c_out, h, w = shape
    if weight.ndim != 4 or weight.shape[:2] != (c_out, prev.shape[0]):
        raise NetFileError(f"{where}: conv 'weight' of shape {weight.shape} does not connect "
                           f"{prev.shape[0]} to {c_out} channels")
    stride, padding = _pair(group, "stride", where, 1), _pair(group, "padding", where, 0)
    if _pair(group, "dilation", where, 1) != (1, 1):
        raise NetFileError(f"{where}: dilation other than 1 is not supported")
    if "groups" in group and _scalar(group, "groups", where) != 1:
        raise NetFileError(f"{where}: grouped convolutions are not supported")
    kh, kw = weight.shape[2:]
    expected = tuple((n + 2 * p - k) // s + 1 for n, p, k, s in zip(prev.shape[1:], padding, (kh, kw), stride))
    if expected != (h, w):
        raise NetFileError(f"{where}: shape {h}x{w} does not follow from the {prev.shape[1]}x{prev.shape[2]} "
                           f"input (expected {expected[0]}x{expected[1]})")
    return Conv(**common, neuron=neuron, synapses=StockSynapses(weight.astype(np.int32), _bias(group, where, c_out)),
                kernel=(int(kh), int(kw)), stride=stride, padding=padding)


def parse_stock(f: h5py.File, num_layers: int | None = None, path: str | None = None) -> StockNetwork:
    """Parse an open stock netx file (see the module docstring); ``num_layers`` keeps the first ones only.

    The file's structure is checked first (:func:`netx_export.structure.inspect_file`, lava-dl's rules:
    nothing that refers to another file, every dataset within the size limits); a content checksum
    (written by :func:`netx_export.write_netx_compatible`) is compared when the file has one."""
    datasets = inspect_file(f, STOCK)
    if "format" in f or "formatVersion" in f:
        raise NetFileError("this is a spiking-unet-netx file, not a stock netx file: use read_network")
    if "layer" not in f or not isinstance(f["layer"], h5py.Group):
        raise NetFileError("missing the 'layer' group")
    group = f["layer"]
    count = len(group)
    if count < 2 or set(group.keys()) != {str(i) for i in range(count)}:
        raise NetFileError(f"layer groups must be named 0..L-1 with L >= 2, got {sorted(group.keys())[:8]}")
    count = count if num_layers is None else min(count, num_layers)
    unsupported = []
    for i in range(count):
        g = group[str(i)]
        kind = _text(g["type"]) if "type" in g else "<missing>"
        if kind not in SUPPORTED_LAYERS:
            unsupported.append(f"layer {i}: layer type {kind!r}")
        elif "neuron" in g and _text(g["neuron"]["type"]) not in SUPPORTED_NEURONS:
            unsupported.append(f"layer {i}: neuron type {_text(g['neuron']['type'])!r}")
    if unsupported:
        raise NetFileError(f"unsupported by this toolchain's stock reader: {'; '.join(unsupported)}")
    layers: list[Layer] = []
    for i in range(count):
        layers.append(_layer(group[str(i)], i, layers[-1] if layers else None))
    simulation = {k: int(np.asarray(f["simulation"][k][()]).reshape(-1)[0]) for k in ("Ts", "tSample")
                  if "simulation" in f and k in f["simulation"]}
    verify_digest(f, datasets, required=False)
    return StockNetwork(tuple(layers), StockMeta(simulation.get("Ts"), simulation.get("tSample"), path))


def read_netx(path: str | os.PathLike[str], num_layers: int | None = None) -> StockNetwork:
    """Read a stock netx ``.net`` file into a :class:`~toolchain.ir.StockNetwork` (physical-time semantics).

    Every problem, including an unsupported layer or neuron type, is a one-line NetFileError.
    """
    path = Path(path)
    if not path.is_file():
        raise NetFileError(f"{path}: no such file")
    try:
        with h5py.File(path, "r") as f:
            return parse_stock(f, num_layers, str(path))
    except NetFileError as exc:
        raise NetFileError(one_line(f"{path}: {exc}")) from exc
    except (KeyError, TypeError, ValueError, IndexError, OSError, AttributeError, UnicodeError, RuntimeError,
            MemoryError, RecursionError, SystemError) as exc:
        raise NetFileError(one_line(f"{path}: malformed stock netx file ({type(exc).__name__}: {exc})")) from exc

"""The .net file schema as data: key names, value kinds, on-disk dtypes, required keys per layer kind.

Writer and reader both work from these tables, so a key is spelled, typed and required in one place.

File layout (netx's ``layer/<i>`` protocol plus our extensions, marked *)::

    format         str    "spiking-unet-netx"                                  *
    formatVersion  int    FORMAT_VERSION (this module)                         *
    meta/json      str    Network.meta as JSON (sort_keys)                     *
    contentSha256  str    SHA-256 of every other dataset (netx_export.structure; version 2 on) *
    layer/<i>/     one group per layer, i = 0..L-1 in topological order
        type       str    input | conv | convT | pool | concat
        name       str    our layer name                                       *
        shape      ints   (C, H, W): netx reads it reversed, as (x, y, z) = (W, H, C)
        inputs     ints   indices of the source layers (netx wires i-1 -> i)   *
        depth      int    latency depth (toolchain.ir.assign_depths)           *
        unit       float  integer membrane units per 1.0 of the float SNN      *
        source     str    JSON of the layer's LayerSource (only when non-empty) *
      conv / convT / pool:
        inChannels outChannels groups (1 for pools; divides both channel counts)   int
        kernelSize stride padding dilation (=1) [outputPadding*, convT]   ints (y, x)
        weight     int mantissas; conv (out, in/groups, k, k), convT (in, out/groups, k, k) (torch layouts),
                   pool shape (1,)
        weightExp* one exponent per input part;  bias, biasExp*: one per output channel
        static*    0/1;   poolWeight* (pool): the float SNN's pooling weight
        neuron/    type "MT" | "ACC", netx CUBA keys iDecay vDecay vThMant refDelay gradedSpike
                   messageBits, and thresholds* compartments* spikeWeights* (MT)
      concat:
        layers     ints   part layer indices (the netx protocol key; equals ``inputs``)
        delays*    ints   extra delay per part;  offsets*: channel offset per part

Storage (version 2; version 1 files were written so or with every integer int64): the mantissas and
exponents (:data:`NARROW_KEYS`: ``weight``, ``bias``, ``weightExp``, ``biasExp``) are stored in the
narrowest signed integer dtype that holds their values (:func:`narrowest_int`: int8 for 8-bit weight
mantissas, int16 for the 13-bit bias mantissas), every other integer as int64 and every float as
float64; strings as fixed-length ASCII/UTF-8 bytes of shape (1,), as slayer writes ``type``. Files
written before (every integer int64) read the same: the reader accepts any integer dtype and widens it.
A dataset of at least :data:`COMPRESS_MIN_BYTES` is stored deflate-compressed (with the byte shuffle
filter for multi-byte dtypes, chunks of about :data:`CHUNK_BYTES`) when that pays,
:func:`compression_pays`. Both filters are built into every HDF5 library, so h5py (lava-dl's netx
reader included) reads such datasets transparently.
"""
from __future__ import annotations

import numpy as np

FORMAT_NAME = "spiking-unet-netx"
FORMAT_VERSION = 2          # the newest version this toolchain writes and reads
CHECKSUMMED_VERSION = 2     # from this version on a file must carry its content checksum (contentSha256)
FORMAT_KEY = "format"
VERSION_KEY = "formatVersion"
META_GROUP = "meta"
META_KEY = "json"
LAYER_GROUP = "layer"
NEURON_GROUP = "neuron"

# Value kinds.
STR = "str"        # fixed-length bytes, shape (1,)
JSON = "json"      # a STR holding JSON
INT = "int"        # 0-d int64
FLOAT = "float"    # 0-d float64
INTS = "ints"      # 1-d int64
PAIR = "pair"      # (y, x) int64 pair; square kernels only, so both entries are equal
ARRAY = "array"    # n-d int64

DISK_DTYPE: dict[str, type] = {INT: np.int64, FLOAT: np.float64, INTS: np.int64, PAIR: np.int64,
                               ARRAY: np.int64}

LAYER_KEYS: dict[str, str] = {
    "type": STR, "name": STR, "shape": INTS, "inputs": INTS, "depth": INT, "unit": FLOAT, "source": JSON,
    "inChannels": INT, "outChannels": INT, "kernelSize": PAIR, "stride": PAIR, "padding": PAIR,
    "dilation": PAIR, "groups": INT, "outputPadding": PAIR, "weight": ARRAY, "weightExp": INTS,
    "bias": INTS, "biasExp": INTS, "static": INT, "poolWeight": FLOAT,
    "layers": INTS, "delays": INTS, "offsets": INTS,
}

NEURON_KEYS: dict[str, str] = {
    "type": STR, "iDecay": INT, "vDecay": INT, "vThMant": INT, "refDelay": INT, "gradedSpike": INT,
    "messageBits": INT, "thresholds": INTS, "compartments": INT, "spikeWeights": INTS,
}

_COMMON = ("type", "name", "shape", "inputs", "depth", "unit")
_SYNAPTIC = ("inChannels", "outChannels", "kernelSize", "stride", "padding", "dilation", "groups",
             "weight", "weightExp", "bias", "biasExp", "static")

# Keys every layer of a kind must have, in the order the writer writes them ("neuron" is the group).
REQUIRED: dict[str, tuple[str, ...]] = {
    "input": _COMMON,
    "conv": _COMMON + _SYNAPTIC,
    "convT": _COMMON + _SYNAPTIC + ("outputPadding",),
    "pool": _COMMON + _SYNAPTIC + ("poolWeight",),
    "concat": _COMMON + ("layers", "delays", "offsets"),
}
SYNAPTIC_KINDS = ("conv", "convT", "pool")
OPTIONAL = ("source",)

NEURON_REQUIRED: dict[str, tuple[str, ...]] = {
    "MT": ("type", "iDecay", "vDecay", "vThMant", "refDelay", "gradedSpike", "messageBits",
           "thresholds", "compartments", "spikeWeights"),
    "ACC": ("type", "iDecay", "vDecay", "refDelay", "gradedSpike", "messageBits", "compartments"),
}

# Keys stored in the narrowest integer dtype that holds them (mantissas and exponents).
NARROW_KEYS = frozenset({"weight", "bias", "weightExp", "biasExp"})
_SIGNED = (np.int8, np.int16, np.int32, np.int64)

# Compression: datasets of at least this many bytes, when the estimate saves at least 1 - COMPRESS_RATIO.
COMPRESS_MIN_BYTES = 1 << 12
COMPRESS_RATIO = 0.9
COMPRESS_LEVEL = 4
CHUNK_BYTES = 1 << 20

# In-memory dtypes of the IR's arrays (what toolchain.lowering.quantize produces).
MEMORY_DTYPE: dict[str, type] = {"weight": np.int32, "bias": np.int64, "biasExp": np.int64}

# netx CUBA parameters of an integrate-and-fire neuron: current fully replaced every step
# (iDecay = 4096, netx's du = iDecay - 1), no voltage leak, one step refractory delay.
I_DECAY_FULL = 4096
V_DECAY_NONE = 0
REF_DELAY = 1

# Guards against absurd sizes in corrupted files (elements in one dataset / bytes of one string).
MAX_ELEMENTS = 1 << 27
MAX_STRING_BYTES = 1 << 24


def message_bits(spike_weights: tuple[int, ...], graded: bool) -> int:
    """Bits of the graded payload sum(r_i) (e.g. 4 for r = (8, 4, 2, 1)); 0 for binary spikes."""
    return int(sum(spike_weights)).bit_length() if graded else 0


def narrowest_int(array: np.ndarray) -> np.dtype:
    """The narrowest of int8, int16, int32, int64 that holds every value of an integer array (int8 if empty)."""
    if array.size == 0:
        return np.dtype(np.int8)
    low, high = int(array.min()), int(array.max())
    for dtype in _SIGNED:
        info = np.iinfo(dtype)
        if info.min <= low and high <= info.max:
            return np.dtype(dtype)
    raise ValueError(f"values {low}..{high} do not fit int64")


def byte_entropy(array: np.ndarray) -> float:
    """Mean Shannon entropy, in bits per byte, of the byte planes of ``array``.

    With the shuffle filter the bytes of significance k of all elements are stored together (plane k),
    and deflate's Huffman stage codes memoryless bytes in about H_k = -sum_b p_k(b) log2 p_k(b) bits
    each (p_k(b): the frequency of byte value b in plane k); the estimate is H = mean_k H_k.
    """
    planes = np.ascontiguousarray(array).view(np.uint8).reshape(-1, array.dtype.itemsize)
    total = 0.0
    for k in range(planes.shape[1]):
        p = np.bincount(planes[:, k], minlength=256) / planes.shape[0]
        p = p[p > 0]
        total += float(-(p * np.log2(p)).sum())
    return total / planes.shape[1]


def compression_pays(array: np.ndarray) -> bool:
    """Whether to store ``array`` compressed: at least COMPRESS_MIN_BYTES and an estimated size
    H / 8 x nbytes (:func:`byte_entropy`) of at most COMPRESS_RATIO x nbytes."""
    if array.nbytes < COMPRESS_MIN_BYTES or array.dtype.kind not in "iuf":
        return False
    return byte_entropy(array) / 8 <= COMPRESS_RATIO


def chunk_shape(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    """Chunks of whole rows along the first axis, about CHUNK_BYTES each (at least one row)."""
    row = itemsize * int(np.prod(shape[1:], dtype=np.int64))
    rows = max(1, min(shape[0], CHUNK_BYTES // max(1, row)))
    return (rows, *shape[1:])

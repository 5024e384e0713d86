"""The checks of a quantized network's metadata (a ``.net`` file's ``meta/json``), like every other field.

A file's metadata steers a run: ``steps`` is how long it simulates, ``multiple`` how far every input is
padded, ``task`` how the output is decoded. Each field that is present must have its type and lie in its
range (:func:`check_meta`); the channel counts and the task must agree with the layers
(:func:`check_meta_against`). Every violation raises the caller's error type with one line
``meta: '<field>': ...``.
"""
from __future__ import annotations

import math
from typing import Any, NoReturn

from ..errors import ConfigError, ToolchainError
from ..vocab import LOWERINGS, NORMALIZATIONS, TASKS
from .limits import IMAGE_LEVELS, INPUT_LEVEL_MAX, INPUT_LEVEL_MIN, V_LIMIT
from .network import NetworkMeta

MAX_STEPS = 1_000_000          # time steps a file may ask for (the paper runs T <= 320)
MAX_MULTIPLE = 1024            # input sides are padded to multiples of this (2**depth for a U-Net)
MAX_CHANNELS = 1 << 16
MAX_THRESHOLDS = 64


def _fail(key: str, value: Any, expected: str, error: type[ToolchainError]) -> NoReturn:
    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    raise error(f"meta: '{key}': {expected}, got {shown}")


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _positive_numbers(values: Any) -> bool:
    return isinstance(values, tuple) and 1 <= len(values) <= MAX_THRESHOLDS and all(_number(t) and t > 0
                                                                                   for t in values)


def check_meta(meta: NetworkMeta, error: type[ToolchainError]) -> None:
    """Every present field of ``meta`` of the right type and in range (module docstring)."""
    ranges = {"format_version": (1, 1 << 16), "in_channels": (1, MAX_CHANNELS), "out_channels": (1, MAX_CHANNELS),
              "width": (1, MAX_CHANNELS), "depth": (0, 64), "multiple": (1, MAX_MULTIPLE), "steps": (1, MAX_STEPS),
              "theta_unit": (1, 1 << 40), "weight_bits": (2, 8)}
    for key, (lo, hi) in ranges.items():
        value = getattr(meta, key)
        if value is not None and (not _integer(value) or not lo <= value <= hi):
            _fail(key, value, f"must be an integer in {lo}..{hi}", error)
    for key, choices in (("task", TASKS), ("lowering", LOWERINGS), ("normalization", NORMALIZATIONS)):
        value = getattr(meta, key)
        if value is not None and (not isinstance(value, str) or value not in choices):
            _fail(key, value, f"must be one of {', '.join(choices)}", error)
    if meta.noise_map is not None and not isinstance(meta.noise_map, bool):
        _fail("noise_map", meta.noise_map, "must be true or false", error)
    if meta.percentile is not None and (not _number(meta.percentile) or not 0 < meta.percentile <= 100):
        _fail("percentile", meta.percentile, "must be a number in (0, 100]", error)
    thresholds = meta.thresholds
    if thresholds is not None and not _positive_numbers(thresholds):
        _fail("thresholds", thresholds, f"must be a list of 1..{MAX_THRESHOLDS} positive numbers", error)
    for key, fixed in (("v_limit", V_LIMIT), ("input_levels", IMAGE_LEVELS),
                       ("input_level_range", (INPUT_LEVEL_MIN, INPUT_LEVEL_MAX))):
        value = getattr(meta, key)
        if value is not None and value != fixed:
            _fail(key, value, f"is Loihi 2's fixed {fixed!r} in every file (the simulators use it)", error)
    prov = meta.provenance
    if prov is not None:
        if not isinstance(prov.source_checkpoint, str) or not isinstance(prov.source_sha256, str):
            _fail("source_checkpoint", prov.source_checkpoint, "source_checkpoint and source_sha256 must be strings",
                  error)
        if prov.finetuned_steps is not None and (not _integer(prov.finetuned_steps) or prov.finetuned_steps < 1):
            _fail("finetuned_steps", prov.finetuned_steps, "must be a positive integer or null", error)


def check_meta_against(meta: NetworkMeta, input_channels: int, output_channels: int,
                       error: type[ToolchainError]) -> None:
    """The metadata's task and channels against the input and output layers' channel counts."""
    from ..tasks.spec import TaskSpec
    if meta.in_channels is not None and meta.in_channels + int(bool(meta.noise_map)) != input_channels:
        _fail("in_channels", meta.in_channels, f"must be the input layer's {input_channels} channels"
              + (" less the noise-level channel" if meta.noise_map else ""), error)
    if meta.out_channels is not None and meta.out_channels != output_channels:
        _fail("out_channels", meta.out_channels, f"must be the output layer's {output_channels} channels", error)
    if meta.task is not None and meta.in_channels is not None and meta.out_channels is not None:
        try:
            TaskSpec(meta.task, meta.in_channels, meta.out_channels, bool(meta.noise_map))
        except ConfigError as exc:
            _fail("task", meta.task, f"does not fit the channels ({exc})", error)

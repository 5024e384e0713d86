"""The toolchain's vocabularies, defined once: every module and the CLI import them from here.

Each is a :data:`typing.Literal` (for type checkers) with the tuple of its values (for choices and
run-time checks), read off the Literal so the two can never disagree.
"""
from __future__ import annotations

from typing import Literal, get_args

Task = Literal["denoise", "segment"]
TASKS: tuple[Task, ...] = get_args(Task)

Lowering = Literal["compartments", "graded"]
"""How an MT neuron becomes hardware neurons: N binary IF compartments on one membrane, or one
graded-spike neuron (see :mod:`toolchain.lowering`)."""
LOWERINGS: tuple[Lowering, ...] = get_args(Lowering)

Normalization = Literal["layer", "connection"]
NORMALIZATIONS: tuple[Normalization, ...] = get_args(Normalization)

Backend = Literal["reference", "lava-cpu"]
"""The simulators a network runs on (:mod:`toolchain.backends`): the integer reference simulator
(physical time for stock netx networks) and Lava's CPU simulator."""
BACKENDS: tuple[Backend, ...] = get_args(Backend)

Target = Literal["reference", "lava-cpu", "loihi2"]
"""What ``simulate`` runs a file on: a backend, or ``loihi2``: the reference backend with a Loihi 2
cost report over its run (:mod:`toolchain.hardware`)."""
TARGETS: tuple[Target, ...] = get_args(Target)

Layout = Literal["auto", "folder", "drive", "isbi2012", "camseq01", "bsd68", "cbsd68", "set12"]
"""Layouts of a user's dataset folder (``auto``: detected; see :mod:`toolchain.data.readers`)."""
LAYOUTS: tuple[Layout, ...] = get_args(Layout)

StepKernel = Literal["fused", "reference"]
"""Implementation of the PyTorch SNN's MT step: the fused numba kernel (inference, no gradient) or
:func:`toolchain.neuron.mt.mt_step` op by op; both give the same numbers."""
STEP_KERNELS: tuple[StepKernel, ...] = get_args(StepKernel)

Record = Literal["none", "counts", "spikes"]
"""What a simulation keeps besides its output: spike totals only, per-neuron spike counts (the
hardware report's input; memory independent of T), or every spike of every step."""
RECORDS: tuple[Record, ...] = get_args(Record)

MaxPoolRewrite = Literal["refuse", "avg"]
"""What conversion does with MaxPool2d, which has no exact spiking form here: refuse (default), or
replace it by AvgPool2d of the same kernel (changes the function; fine-tune afterwards)."""
MAXPOOL_REWRITES: tuple[MaxPoolRewrite, ...] = get_args(MaxPoolRewrite)

LinearRewrite = Literal["refuse", "pair"]
"""What conversion does with a layer without activation whose signed output feeds a concat or another
layer: refuse (default), or a signed pair of neuron populations [ReLU(z), ReLU(-z)] (exact)."""
LINEAR_REWRITES: tuple[LinearRewrite, ...] = get_args(LinearRewrite)

AlignCornersRewrite = Literal["refuse", "approx"]
"""Bilinear upsampling with align_corners=True has no fixed-stride kernel: refuse (default), or use
the align_corners=False kernel (a sub-pixel shift of up to 1/4 pixel towards the borders)."""
ALIGN_CORNERS_REWRITES: tuple[AlignCornersRewrite, ...] = get_args(AlignCornersRewrite)

"""Spiking-UNet -> Loihi 2: a U-Net for image processing, converted, quantized, simulated and costed.

The pipeline, one package per stage; every stage imports only the stages before it (a test checks
this, see ``pyproject.toml``'s import-linter contract)::

    errors, vocab, checks, files     the exceptions, vocabularies, validators, atomic output
    neuron, data, tasks              neuron step functions; images; losses, sampling and metrics
    ir                               the typed layer graph: float, quantized and stock networks
    frontend                         PyTorch: U-Net, trace, capture of any model, conversion, the SNN,
                                     fine-tuning, checkpoints
    lowering                         Loihi fixed point: the quantizer
    simulators                       exact integer simulation (logical and physical time), shared kernels
    netx_export                      the .net (netx HDF5) format: write, read, stock netx files
    backends                         one interface: the reference simulator, Lava's CPU simulator
    hardware                         Loihi 2 profile (calibrated): costs, cores, time, energy, reports
    verbs, cli                       train / convert / finetune / evaluate / export / simulate / report / demo

A Python user's way through it::

    from toolchain import ConversionSettings, QuantSettings, UNet, UNetConfig, convert, export_network, get_backend
    snn, info = convert(trained_unet, calibration_batch, ConversionSettings())
    network, _ = export_network(snn, info, (64, 64), QuantSettings(steps=10))
    result = get_backend("reference", network).run(network, images, 10, record="counts")

Any other U-Net (an ``nn.Module``, or a ``torch.export`` program read by ``load_pt2``)::

    snn, info = from_model(model, calibration_batch, TaskSpec("denoise", 1, 1), options=CaptureOptions())

The names below are imported lazily, so ``import toolchain`` costs nothing until one is used.
"""
from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    # errors
    "ToolchainError": "toolchain.errors", "ConfigError": "toolchain.errors", "CheckpointError": "toolchain.errors",
    "NetFileError": "toolchain.errors", "DataError": "toolchain.errors", "ExportError": "toolchain.errors",
    "HardwareLimitError": "toolchain.errors", "ProfileError": "toolchain.errors", "BackendError": "toolchain.errors",
    "ExactnessError": "toolchain.errors", "ConversionError": "toolchain.errors",
    # IR
    "FloatNetwork": "toolchain.ir", "QuantizedNetwork": "toolchain.ir", "StockNetwork": "toolchain.ir",
    "NetworkMeta": "toolchain.ir", "validate": "toolchain.ir",
    # front end
    "UNet": "toolchain.frontend.unet", "UNetConfig": "toolchain.frontend.unet",
    "SpikingNetwork": "toolchain.frontend.snn", "trace_network": "toolchain.frontend.trace",
    "ConversionSettings": "toolchain.frontend.conversion", "convert": "toolchain.frontend.conversion",
    "load_ann": "toolchain.frontend.checkpoint", "load_snn": "toolchain.frontend.checkpoint",
    "save_checkpoint": "toolchain.frontend.checkpoint", "snn_checkpoint": "toolchain.frontend.checkpoint",
    "wrap_state_dict": "toolchain.frontend.checkpoint", "TaskSpec": "toolchain.tasks.spec",
    "from_model": "toolchain.frontend.capture", "from_program": "toolchain.frontend.capture",
    "load_pt2": "toolchain.frontend.capture", "CaptureOptions": "toolchain.frontend.capture",
    # lowering, simulation, file format
    "QuantSettings": "toolchain.lowering.quantize", "export_network": "toolchain.lowering.lower",
    "ReferenceSimulator": "toolchain.simulators.reference", "SimulationResult": "toolchain.simulators.result",
    "read_network": "netx_export", "write_network": "netx_export", "read_netx": "netx_export",
    "read_any": "netx_export",
    # backends and hardware
    "get_backend": "toolchain.backends", "BackendOptions": "toolchain.backends",
    "LavaNetwork": "toolchain.backends.lava.procs.network",      # imports Lava
    "load_profile": "toolchain.hardware", "profile_network": "toolchain.hardware", "fits": "toolchain.hardware",
    "profile_stock": "toolchain.hardware", "compile_network": "toolchain.hardware", "chip_layers": "toolchain.hardware",
    # verbs
    "train": "toolchain.verbs.train", "TrainSettings": "toolchain.verbs.train",
    "convert_checkpoint": "toolchain.verbs.convert", "ConvertSettings": "toolchain.verbs.convert",
    "finetune_checkpoint": "toolchain.verbs.train", "FinetuneSettings": "toolchain.verbs.train",
    "evaluate_checkpoint": "toolchain.verbs.evaluate", "EvaluateSettings": "toolchain.verbs.evaluate",
    "export_checkpoint": "toolchain.verbs.export", "ExportSettings": "toolchain.verbs.export",
    "simulate_file": "toolchain.verbs.simulate", "SimulateSettings": "toolchain.verbs.simulate",
    "report_file": "toolchain.verbs.hardware_report", "ReportSettings": "toolchain.verbs.hardware_report",
    "Schedule": "toolchain.verbs.runs", "DataSource": "toolchain.verbs.source", "run_demo": "toolchain.verbs.demo",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'toolchain' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__

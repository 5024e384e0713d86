"""Build ANN and SNN modules from checkpoints, and checkpoints from modules."""
from __future__ import annotations

import os
from typing import Any

from toolchain.frontend.checkpoint import Checkpoint, load_checkpoint, load_state_strict
from toolchain.errors import CheckpointError, ConfigError
from toolchain.neuron.mt import validate_thresholds
from toolchain.frontend.snn import SpikingUNet
from toolchain.frontend.unet import UNet


def load_ann(path: str | os.PathLike[str]) -> tuple[UNet, Checkpoint]:
    ckpt = load_checkpoint(path, expect_kind="ann")
    ann = UNet(ckpt.config)
    load_state_strict(ann.core, ckpt.state_dict, str(path))
    ann.eval()
    return ann, ckpt


def load_snn(path: str | os.PathLike[str]) -> tuple[SpikingUNet, Checkpoint]:
    ckpt = load_checkpoint(path, expect_kind="snn")
    try:
        thresholds = validate_thresholds(ckpt.spiking.get("thresholds") or ())
    except ConfigError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    snn = SpikingUNet(ckpt.config, thresholds)
    load_state_strict(snn.core, ckpt.state_dict, str(path))
    snn.eval()
    return snn, ckpt


def load_any(path: str | os.PathLike[str]) -> tuple[UNet | SpikingUNet, Checkpoint]:
    """An ANN or an SNN, whichever the checkpoint holds."""
    kind = load_checkpoint(path).kind
    return load_ann(path) if kind == "ann" else load_snn(path)


def ann_checkpoint(ann: UNet, meta: dict[str, Any]) -> Checkpoint:
    return Checkpoint("ann", ann.config, ann.core.state_dict(), meta=meta)


def snn_checkpoint(snn: SpikingUNet, spiking: dict[str, Any], meta: dict[str, Any]) -> Checkpoint:
    return Checkpoint("snn", snn.config, snn.core.state_dict(), spiking=spiking, meta=meta)

"""torch.export programs: capturing a module, one canonical dialect, running the original."""
from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import nn

from ...errors import ConversionError

Forward = Callable[[torch.Tensor], torch.Tensor]


def export_module(model: nn.Module, example: torch.Tensor) -> torch.export.ExportedProgram:
    """``torch.export.export`` of ``model`` in eval mode on one example batch (static shapes)."""
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)     # torch's own pytree deprecations
            return torch.export.export(model, (example,))
    except Exception as exc:  # torch.export raises many types for code it cannot capture
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConversionError(f"{type(model).__name__} cannot be captured by torch.export: {first[:300]}") from exc


def canonical(ep: torch.export.ExportedProgram) -> torch.export.ExportedProgram:
    """The program in core ATen (one spelling per operation: every conv is ``convolution``, every ReLU
    ``relu``, eval BatchNorm ``_native_batch_norm_legit_no_training``), keeping ``aten.pad`` whole."""
    table = torch.export.default_decompositions()
    table.pop(torch.ops.aten.pad.default, None)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return ep.run_decompositions(table)
    except Exception as exc:  # as above
        raise ConversionError(f"the program cannot be decomposed to core ATen: {str(exc).splitlines()[0][:300]}") \
            from exc


def input_shape(ep: torch.export.ExportedProgram) -> tuple[int, ...]:
    """The shape of the program's one user input (N, C, H, W) at export."""
    names = ep.graph_signature.user_inputs
    if len(names) != 1:
        raise ConversionError(f"the program takes {len(names)} inputs; a U-Net takes one image batch")
    node = next(n for n in ep.graph.nodes if n.op == "placeholder" and n.name == names[0])
    shape = tuple(int(s) for s in node.meta["val"].shape)
    if len(shape) != 4:
        raise ConversionError(f"the program's input has shape {shape}; a U-Net takes an NCHW image batch")
    return shape


def program_forward(ep: torch.export.ExportedProgram) -> Forward:
    """x -> the program's output for any batch at the export size (one image at a time: export
    fixed the batch size too)."""
    module = ep.module()
    batch = input_shape(ep)[0]

    @torch.no_grad()
    def forward(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([module(x[i:i + batch]) for i in range(0, x.shape[0], batch)])
    return forward

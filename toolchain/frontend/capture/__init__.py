"""Bring your own U-Net: capture any PyTorch model with torch.export and lower it to the layer graph.

* :func:`from_model` (``nn.Module``) and :func:`from_program` (an ExportedProgram, e.g. from
  :func:`load_pt2`, the safe .pt2 reader) return a normalized Spiking-UNet and its conversion record;
* :mod:`.lower` turns the core-ATen graph into layers, with the rewrites of :mod:`.rewrites`
  (BatchNorm folding, upsampling as fixed ConvTranspose, signed pairs, MaxPool -> AvgPool on request)
  and refusals that name the module, its type, its graph node and what to change.
"""
from .convert import Captured, CaptureReport, Fidelity, capture_module, capture_program, from_model, from_program
from .lower import lower_program
from .options import CaptureOptions
from .pt2 import load_pt2
from .rewrites import Rewrite

__all__ = ["CaptureOptions", "CaptureReport", "Captured", "Fidelity", "Rewrite", "capture_module", "capture_program",
           "from_model", "from_program", "load_pt2", "lower_program"]

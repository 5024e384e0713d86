"""How faithful the deployed network is: quantized vs float PSNR, and backend vs reference, spike for spike."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..data.embedded import ImageSet
from ..data.patches import add_gaussian_noise, center_crop
from ..frontend.snn import SpikingNetwork
from ..ir import QuantizedNetwork
from ..lowering.lower import export_network
from ..lowering.quantize import QuantSettings
from ..simulators.kernels import image_levels
from ..simulators.reference import ReferenceSimulator
from ..simulators.result import SimulationResult
from ..tasks import metrics
from ..tasks.sampling import denoiser_input
from ..vocab import Lowering


def quantization_psnr(snn: SpikingNetwork, spiking: dict[str, Any], test: ImageSet, steps: int, sigma: float,
                      crop: int, seed: int, lowering: Lowering = "graded") -> dict[str, Any]:
    """PSNR of the float SNN, of the float SNN on the integer input levels, and of the exported integer
    network on the reference simulator, image by image on the same seeded noisy input.

    The loss splits into input quantization (float -> levels) and network fixed point (levels -> integer net).
    Both lowerings compute identical integers; 'graded' simulates faster.
    """
    rows: list[dict[str, Any]] = []
    for k, (name, image) in enumerate(zip(test.names, test.images)):
        clean = np.ascontiguousarray(center_crop(image, crop) if crop else image)
        side_h, side_w = clean.shape[-2:]
        network, _ = export_network(snn, spiking, (side_h, side_w), QuantSettings(steps=steps), lowering)
        noisy = add_gaussian_noise(torch.from_numpy(clean)[None], sigma, torch.Generator().manual_seed(seed + k))[0]
        frame = denoiser_input(noisy, sigma, bool(snn.spec and snn.spec.noise_map))
        leveled = torch.from_numpy(image_levels(frame.numpy()) / 255.0).float()
        h, w = clean.shape[-2:]

        def psnr(noise_map: np.ndarray, clean: np.ndarray = clean, noisy: torch.Tensor = noisy,
                 h: int = h, w: int = w) -> float:
            return metrics.psnr(clean, np.clip(noisy[0].numpy() - noise_map[0, :, :h, :w], 0.0, 1.0))

        float_out = snn.simulate(frame, steps).output.numpy()
        leveled_out = snn.simulate(leveled, steps).output.numpy()
        pad_h, pad_w = network.input.shape[1] - h, network.input.shape[2] - w
        batch = np.pad(frame.numpy(), ((0, 0), (0, 0), (0, pad_h), (0, pad_w)), mode="edge")
        ref = ReferenceSimulator(network).run(batch, steps)
        rows.append({"image": name, "float": psnr(float_out), "float_leveled_input": psnr(leveled_out),
                     "quantized": psnr(ref.output)})
    mean = {key: float(np.mean([r[key] for r in rows])) for key in ("float", "float_leveled_input", "quantized")}
    return {"steps": steps, "sigma": sigma, "crop": crop, "lowering": lowering, "images": rows, "mean": mean,
            "loss_db": mean["float"] - mean["quantized"],
            "loss_input_db": mean["float"] - mean["float_leveled_input"],
            "loss_network_db": mean["float_leveled_input"] - mean["quantized"]}


def compare_results(network: QuantizedNetwork, reference: SimulationResult, other: SimulationResult) -> dict[str, Any]:
    """Layer by layer and step by step: are the spikes, the accumulator and the decoded output identical?"""
    layers = {}
    for layer in network.synaptic_layers:
        if layer.name not in reference.spikes:
            continue
        a, b = reference.spikes[layer.name], other.spikes.get(layer.name)
        same = b is not None and a.shape == b.shape and bool(np.array_equal(a, b))
        first = None
        if b is not None and a.shape == b.shape and not same:
            first = int(np.argwhere((a != b).reshape(a.shape[0], -1).any(axis=1))[0, 0])
        layers[layer.name] = {"identical": same, "spikes": int(a.sum()), "first_different_step": first}
    accumulator = bool(np.array_equal(reference.accumulator, other.accumulator))
    return {"identical": accumulator and all(v["identical"] for v in layers.values()),
            "accumulator_identical": accumulator,
            "output_max_abs_diff": float(np.abs(reference.output - other.output).max()), "layers": layers}

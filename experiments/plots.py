"""PNG figures (matplotlib, Agg), drawn from the experiments' JSON (so ``docs`` can redraw them without
recomputing), except the image grid, which is drawn from images by the ``figures`` experiment."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

DPI = 80


def _save(fig: Any, target: Path, palette: bool = False) -> Path:
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    if palette:
        small_png(target, target)
    return target


def small_png(source: Path, target: Path) -> Path:
    """Re-encode a PNG with a 256-colour palette (photos with noise do not compress otherwise)."""
    from PIL import Image

    with Image.open(source) as image:
        quantized = image.convert("RGB").quantize(colors=256)
    quantized.save(target, optimize=True)
    return target


def image_grid(rows: Sequence[Sequence[tuple[np.ndarray, str]]], target: Path) -> Path:
    """Rows of (CHW image in [0, 1], title) panels."""
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    side = max(max(im.shape[-1], im.shape[-2]) for r in rows for im, _ in r)
    inches = max(side / DPI * 1.15, 1.7)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(n_cols * inches, n_rows * (inches + 0.3)), squeeze=False)
    for r, row in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(row):
                image, title = row[c]
                shown = image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0)
                ax.imshow(np.clip(shown, 0, 1), cmap="gray" if image.shape[0] == 1 else None, vmin=0, vmax=1,
                          interpolation="nearest")
                ax.set_title(title, fontsize=7)
    fig.tight_layout()
    return _save(fig, target, palette=True)


def fig3(data: dict[str, Any], target: Path) -> Path:
    """ANN activation vs SNN spike rate for the layers after skip concats, layer-wise vs connection-wise."""
    layers = data["layers"]
    fig, axes = plt.subplots(1, len(layers), figsize=(3.4 * len(layers), 3.0), squeeze=False)
    for ax, layer in zip(axes[0], layers):
        for norm, color in (("layer", "tab:red"), ("connection", "tab:blue")):
            d = data["norms"][norm][layer]
            ax.scatter(d["ann"], d["rate"], s=3, alpha=0.35, color=color,
                       label=f"{norm}-wise  R$^2$={d['fit']['r2']:.3f}")
        ax.set_title(f"{layer} (after concat), T={data['steps']}", fontsize=8)
        ax.set_xlabel("U-Net activation", fontsize=8)
        ax.set_ylabel("SNN rate = flow_out / T", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, markerscale=3, loc="upper left")
    fig.tight_layout()
    return _save(fig, target)


def quality_vs_t(data: dict[str, Any], target: Path) -> Path:
    fig, ax = plt.subplots(figsize=(5.6, 3.4))
    styles = {"converted": ("converted only", "tab:gray")}
    for name, curve in data["curves"].items():
        label, color = styles.get(name, (name.replace("finetuned_T", "fine-tuned at T="), None))
        ts = sorted(int(t) for t in curve["psnr_every_t"])
        ax.plot(ts, [curve["psnr_every_t"][str(t)] for t in ts], label=label, color=color, lw=1.4)
    ax.axhline(data["ann_psnr"], color="k", ls="--", lw=1, label="U-Net (ANN)")
    m = data["match"]
    ax.axhline(m["finetuned_psnr"], color="tab:orange", ls=":", lw=1)
    if m["converted_steps_needed"]:
        ax.axvline(m["converted_steps_needed"], color="tab:orange", ls=":", lw=1,
                   label=f"converted needs T={m['converted_steps_needed']} to match FT at T={m['finetuned_steps']}")
    ax.set_xscale("log")
    ax.set_xlabel("time steps T")
    ax.set_ylabel(f"PSNR (dB), sigma {data['sigma']:g}")
    lo = min(min(c["psnr_every_t"].values()) for c in data["curves"].values())
    ax.set_ylim(max(lo, data["ann_psnr"] - 12), data["ann_psnr"] + 1)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, target)


def firing_rates(data: dict[str, Any], target: Path) -> Path:
    models = list(data["models"])
    layers = list(data["models"][models[0]])
    x = np.arange(len(layers))
    width = 0.8 / len(models)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * len(layers)), 3.2))
    for i, model in enumerate(models):
        ax.bar(x + i * width, [data["models"][model][l]["rate"] for l in layers], width, label=model)
    ax.set_xticks(x + width * (len(models) - 1) / 2)
    ax.set_xticklabels([l.replace("encoders", "enc").replace("convs.", "") for l in layers], rotation=60,
                       fontsize=7, ha="right")
    ax.set_ylabel("spikes per neuron per step")
    ax.set_title(f"firing rate per layer, T={data['steps']} ({data['image']}, {data['crop']} px)", fontsize=9)
    top = max(data["models"][m][l]["rate"] for m in models for l in layers)
    ax.set_ylim(0, top * 1.35)
    ax.legend(fontsize=7, ncol=len(models), loc="upper center")
    fig.tight_layout()
    return _save(fig, target)


def thresholds(data: dict[str, Any], target: Path) -> Path:
    labels = ["/".join(f"{t:g}" for t in r["thresholds"]) for r in data["rows"]]
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    ax.bar(x - 0.2, [r["converted"]["psnr"] for r in data["rows"]], 0.4, label="converted", color="tab:gray")
    ax.bar(x + 0.2, [r["finetuned"]["psnr"] for r in data["rows"]], 0.4, label="fine-tuned", color="tab:blue")
    ax.axhline(data["ann"]["psnr"], color="k", ls="--", lw=1, label="U-Net")
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=30, fontsize=7, ha="right")
    values = [r[k]["psnr"] for r in data["rows"] for k in ("converted", "finetuned")]
    ax.set_ylim(min(values) - 1, max(values + [data["ann"]["psnr"]]) + 0.5)
    ax.set_ylabel(f"PSNR (dB), sigma {data['sigma']:g}")
    ax.set_title(f"thresholds (connection-wise, T={data['steps']})", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, target)

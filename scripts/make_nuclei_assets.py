#!/usr/bin/env python3
"""Derive the embedded segmentation image from the stardist 0.9.2 wheel (run once; its output is committed).

    pip download --no-deps stardist==0.9.2 -d /tmp/stardist     # a registry download, at set-up time only
    python scripts/make_nuclei_assets.py /tmp/stardist/stardist-0.9.2-*.whl

The wheel's ``stardist/data/images/img2d.tif`` (512x512 uint16 holding 8-bit values 0..235) and
``mask2d.tif`` (uint16 instance labels, 0 = background) are one image of the 2018 Data Science Bowl
(BBBC038v1, CC0). They are written losslessly as ``toolchain/data/assets/nuclei.png`` (8-bit gray)
and ``nuclei_labels.png`` (16-bit instance labels); ``toolchain.data.embedded.segment_split`` reads them.
"""
from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

ASSETS = Path(__file__).resolve().parents[1] / "toolchain" / "data" / "assets"


def main(wheel: str) -> int:
    with zipfile.ZipFile(wheel) as zf:
        image = tifffile.imread(io.BytesIO(zf.read("stardist/data/images/img2d.tif")))
        labels = tifffile.imread(io.BytesIO(zf.read("stardist/data/images/mask2d.tif")))
    if image.max() > 255 or image.shape != labels.shape:
        raise SystemExit(f"unexpected data: image max {image.max()}, shapes {image.shape} {labels.shape}")
    Image.fromarray(image.astype(np.uint8)).save(ASSETS / "nuclei.png", optimize=True)
    Image.fromarray(labels.astype(np.uint16)).save(ASSETS / "nuclei_labels.png", optimize=True)
    print(f"wrote {ASSETS}/nuclei.png, nuclei_labels.png ({int(labels.max())} nuclei, "
          f"{(labels > 0).mean():.1%} foreground)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

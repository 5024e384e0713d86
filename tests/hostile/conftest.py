"""Fixtures of the hostile-input tests: the session's tiny models and two small images."""
from __future__ import annotations

import imageio.v3 as iio
import pytest
from hostile_helpers import gray


@pytest.fixture(scope="module")
def files(tiny, tmp_path_factory):
    """The tiny ANN / SNN checkpoints, its .net (T = 2, 16 x 16) and two gray PNGs (16 and 64 pixels a side).
    Read-only: copy a file before damaging it."""
    d = tmp_path_factory.mktemp("hostile")
    img, img64 = d / "img16.png", d / "img64.png"
    iio.imwrite(img, gray(16, 16))
    iio.imwrite(img64, gray(64, 64, 1))
    return {"dir": d, "ann": tiny.ann, "snn": tiny.snn, "net": tiny.net(2, 16), "img": img, "img64": img64}

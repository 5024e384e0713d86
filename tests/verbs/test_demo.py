"""The demo, end to end, in its tiny configuration: every stage runs and reports what it computed."""
from __future__ import annotations

import json

import pytest

import cli


@pytest.mark.lava
def test_quick_demo_runs_every_stage(tmp_path):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--quick", "--out-dir", str(out)]) == 0
    report = json.loads((out / "demo_report.json").read_text())
    scores = report["scores"]
    assert set(scores) == {"ann", "converted_layer", "converted_connection", "finetuned", "baselines"}
    assert set(scores["baselines"]) == {"nl-means", "wavelet", "tv", "bm3d"}
    rows = [scores[k]["25"] for k in ("ann", "converted_layer", "converted_connection", "finetuned")]
    rows += [row["25"] for row in scores["baselines"].values()]
    assert all(10.0 < r["psnr"] < 60.0 and 0.0 < r["ssim"] <= 1.0 for r in rows)
    assert all(set(r["images"]) == set(report["test_images"]) for r in rows)
    assert report["ann"] == "trained (quick)"
    deploy = report["deploy"]
    assert deploy["lava_matches_reference"]["identical"] is True
    assert deploy["lava_matches_reference"]["layers"], "no layer was compared"
    assert abs(deploy["quantization"]["loss_db"]) < 0.5
    assert deploy["loihi2"]["cores"] >= 1 and deploy["loihi2"]["spikes"] > 0
    for name in ("ann.pt", "snn_layer.pt", "snn_connection.pt", "snn_finetuned.pt", "demo.net",
                 "report/report.json", "report/report.md"):
        assert (out / name).is_file(), name
    assert not list(out.rglob("*.part"))

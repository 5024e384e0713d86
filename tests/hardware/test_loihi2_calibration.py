"""The Loihi 2 profile against Intel's measured PilotNet LIF runs (benchmarks/loihi2_pilotnet.py), pinned: a model
or profile change that breaks the comparison fails here. Also pinned: the shipped file is the benchmark's network,
the profile's fitted numbers are what the measured runs give, the held-out compiler tables (PilotNet SDNN, YOLO-KP)
are reproduced, and the profiler's per-core activity is the zero-input run's (the chip never received the frame)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lava_data import GTS

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not (GTS / "pilotnet_lif/network.net").exists(),
                                reason="lava-dl's netx test data is not installed")


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("pilotnet")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks/loihi2_pilotnet.py"), "--json", str(out / "a.json"),
                           "--details", str(out / "d.json")], capture_output=True, text=True, timeout=600, env=env,
                          cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((out / "a.json").read_text()), json.loads((out / "d.json").read_text()), proc.stdout


def test_json_has_the_issue_schema(bench):
    result, _, stdout = bench
    assert set(result) == {"measured", "predicted"}
    pred = result["predicted"]
    assert set(pred) == {"cores", "chips", "layers", "time_per_step_s", "energy_per_inference_j"}
    assert isinstance(pred["cores"], int) and isinstance(pred["chips"], int)
    assert [set(x) for x in pred["layers"]] == [{"name", "cores"}] * len(pred["layers"])
    assert [x["name"] for x in pred["layers"]][:2] == ["input0", "conv1"]                 # network order
    assert set(pred["energy_per_inference_j"]) == {"static", "dynamic", "total"}
    assert all(isinstance(v, float) for v in pred["energy_per_inference_j"].values())
    assert "the same network" in stdout and "cores per layer" in stdout


def test_shipped_file_is_the_benchmarks_network(bench):
    same = bench[1]["network_identity"]
    assert same["git_blob_sha1"] == "bd720b9e0be0700e0e787e2586e9452b9e0630c8" and same["bytes"] == 1_489_208
    assert same["layer_table_equal"] and same["same_network"]


def test_model_meets_the_goals_against_the_measured_runs(bench):
    result, details, _ = bench
    pred, meas = result["predicted"], result["measured"]
    assert abs(pred["cores"] - meas["cores"]) <= 0.15 * meas["cores"] and pred["chips"] == meas["chips"] == 1
    assert pred["layers"] == meas["layers"]                          # every layer's cores, as the compiler placed them

    def near(value, band):
        lo, hi = band["min"], band["max"]
        return lo * (1 - 0.30) <= value <= hi * (1 + 0.30)
    assert near(pred["time_per_step_s"], meas["time_per_step_s"])
    for k in ("static", "dynamic", "total"):
        assert near(pred["energy_per_inference_j"][k], meas["energy_per_inference_j"][k]), k
    assert all(g["ok"] for g in details["goals"].values())
    b = details["bands"]["energy_total_j"]
    assert b["low"] < pred["energy_per_inference_j"]["total"] < b["high"]          # every energy with its band


def test_profile_holds_what_the_measured_runs_give(bench):
    cal = bench[1]["calibration"]
    assert cal["calibrated_on"] == ["A", "B", "C", "D"]
    assert all(cal["profile_matches_fit"].values()), cal["profile_matches_fit"]
    assert cal["busiest_layer"] == "conv3" and cal["busiest_core_synops_per_step"] == 150710
    assert abs(cal["fit"]["energy.scale_sd"] - 0.245) < 0.005               # the run-to-run spread reported as sd


def test_held_out_compiler_tables(bench):
    held = bench[1]["held_out"]
    assert held["pilotnet_sdnn"]["per_layer_equal"] and held["pilotnet_sdnn"]["model_total"] == 61
    assert held["yolo_kp"]["per_layer_equal"] and held["yolo_kp"]["model_total"] == 574


def test_profiler_activity_is_the_zero_input_run(bench):
    for name, row in bench[1]["activity_vs_profiler"].items():
        assert abs(row["rel_zero"]) < 0.01, name                    # within 1 % of the digitized profiler counters
        assert abs(row["rel_frame"]) > 0.15, name                   # the frame as bias would not match

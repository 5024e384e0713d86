"""The experiments package (``python -m experiments``): its helpers agree with the toolchain, its neuron
variants behave as documented, and a couple of experiments run in --quick mode and render docs."""
from __future__ import annotations

import json
import math
import statistics

import pytest
import torch

from experiments.common import evaluate_denoise_sweep, prefix_outputs
from experiments.runner import main, run_experiment
from experiments.variants import MultiLevelCell, NeuronSpec, RealSpikeCell, with_neurons
from toolchain.frontend.conversion import ConversionSettings, convert
from toolchain.data.embedded import ImageSet
from toolchain.frontend.unet import UNet, UNetConfig
from toolchain.frontend.cells import RunOptions
from toolchain.verbs.evaluate import evaluate_model
from toolchain.verbs.source import DataSource


def _tiny_snn(thresholds=(2.0, 1.0, 0.5, 0.25)):
    torch.manual_seed(0)
    ann = UNet(UNetConfig("denoise", 1, 1, width=4, depth=2)).eval()
    snn, _ = convert(ann, torch.rand(4, 1, 16, 16), ConversionSettings("connection", 99.9, thresholds))
    return ann, snn


def test_prefix_outputs_equal_separate_simulations():
    _, snn = _tiny_snn()
    x = torch.rand(2, 1, 14, 18)             # not a multiple of 4: padded and cropped like simulate()
    outs = prefix_outputs(snn, x, (1, 3, 7))
    for t in (1, 3, 7):
        assert torch.equal(outs[t], snn.simulate(x, t).output)


def test_sweep_evaluation_matches_toolchain_evaluate_model():
    ann, snn = _tiny_snn()
    rng = torch.Generator().manual_seed(1)
    test = ImageSet(("a", "b"), tuple(torch.rand(1, 24, 24, generator=rng).numpy() for _ in range(2)))
    source = DataSource("denoise", 1)
    for model, t in ((snn, 3), (ann, 1)):
        mine = evaluate_denoise_sweep(model, test, (15.0, 50.0), 0, 16, (t,))[t]
        ref = evaluate_model(model, source, t, (15.0, 50.0), 0, 16, test).denoise
        for a, b in zip(mine, ref):
            assert a["sigma"] == b["sigma"]
            # batched vs one image at a time: convolutions may differ in the last float bits
            assert a["psnr"] == pytest.approx(b["psnr"], abs=1e-3)
            assert a["ssim"] == pytest.approx(b["ssim"], abs=1e-4)


def test_multilevel_neuron_emits_floor_capped_levels():
    cell = MultiLevelCell(theta=1.0, levels=4)
    state = cell.new_state()
    out = cell.step(state, torch.tensor([[0.5, 1.5, 2.5, 9.0]]), RunOptions())
    assert out.tolist() == [[0.0, 1.0, 2.0, 4.0]]
    assert state.v.tolist() == [[0.5, 0.5, 0.5, 5.0]]            # reset by subtraction, excess piles up
    assert state.counts.tolist() == [7.0]


def test_real_spike_net_with_unit_scales_is_the_if_net_and_learns_its_scales():
    _, snn = _tiny_snn((1.0,))
    rs = with_neurons(snn, NeuronSpec("rs", (1.0,)))
    x = torch.rand(2, 1, 16, 16)
    assert torch.equal(rs.simulate(x, 5).output, snn.simulate(x, 5).output)
    scales = [cell.scale for _, cell in rs.neurons() if isinstance(cell, RealSpikeCell)]
    assert scales and all(s.requires_grad for s in scales)
    rs.flow_forward(x, 5).abs().mean().backward()
    assert any(float(s.grad.abs().sum()) > 0 for s in scales)
    ml = with_neurons(snn, NeuronSpec("ml", (1.0,)))
    assert ml.run(x, 3, surrogate=True).output.requires_grad    # BPTT works through the ML levels


@pytest.fixture(scope="module")
def quick_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("experiments")
    for name in ("time_steps", "energy", "speed", "foreign_unet", "real_data"):
        run_experiment(name, out, quick=True)
    return out


def test_quick_experiments_write_their_json(quick_out):
    steps = json.loads((quick_out / "time_steps.json").read_text())
    assert steps["experiment"] == "time_steps" and steps["quick"] is True
    assert steps["command"].startswith("python -m experiments time_steps --quick")
    r = steps["results"]
    assert set(r["curves"]) == {"converted", "finetuned_T4", "finetuned_T8"}
    assert len(r["curves"]["converted"]["psnr_every_t"]) == max(r["sweep"])
    assert set(r["curves"]["converted"]["at"]) == {str(t) for t in r["sweep"]}
    assert {"finetuned_psnr", "converted_steps_needed", "reduction"} <= set(r["match"])
    energy = json.loads((quick_out / "energy.json").read_text())["results"]
    assert energy["paper_method"]["ann_energy_j"] > energy["paper_method"]["snn_energy_j"] > 0
    assert energy["loihi2"]["energy_j"] > 0 and energy["loihi2"]["cores"] >= 1
    # the paper's method counted from the float SNN and from the exported network's simulator agree closely
    assert energy["float_snn_paper_method"]["ann_macs"] == energy["paper_method"]["ann_macs"]
    assert energy["float_snn_paper_method"]["spikes"] == pytest.approx(energy["paper_method"]["snn_spikes"], rel=0.05)
    # the U-Net and the SNN were trained / fine-tuned once and cached for the other experiments
    assert (quick_out / "models" / "ann_gray.pt").exists()
    assert (quick_out / "models" / "snn_gray_connection_2-1-0.5-0.25_ft4.pt").exists()


def test_quick_foreign_unet_reports_the_maxpool_rewrite(quick_out):
    r = json.loads((quick_out / "foreign_unet.json").read_text())["results"]
    by_pool = {row["pool"]: row for row in r["rows"] if row["percentile"] == 99.9}
    assert sorted((row["pool"], row["percentile"]) for row in r["rows"]) == [("avg", 99.0), ("avg", 99.9),
                                                                              ("max", 99.0), ("max", 99.9)]
    assert {"maxpool-as-avgpool", "signed-pair", "batchnorm-folded"} <= set(by_pool["max"]["rewrites"])
    assert "maxpool-as-avgpool" not in by_pool["avg"]["rewrites"] and "signed-pair" in by_pool["avg"]["rewrites"]
    # with AvgPool trained in, the captured graph is the model up to float rounding: the same ANN PSNR
    assert by_pool["avg"]["rewritten_ann_psnr"] == pytest.approx(by_pool["avg"]["ann_psnr"], abs=1e-3)
    assert by_pool["avg"]["fidelity"][0]["max_abs_error"] < 1e-4
    assert all(0 < row["size"]["pair_extra"] < row["size"]["neurons"] for row in r["rows"])
    assert all(math.isfinite(row[k]) for row in r["rows"] for k in ("ann_psnr", "converted_psnr", "finetuned_psnr"))


def test_quick_speed_times_both_kernels(quick_out):
    r = json.loads((quick_out / "speed.json").read_text())["results"]
    settings = [(row["steps"], row["torch_threads"], row["fused"]) for row in r["rows"]]
    assert settings[:3] == [(4, 1, True), (8, 1, True), (4, 1, False)]
    assert all(row["ratio"] == pytest.approx(statistics.median(
        b / (row["steps"] * a) for a, b in zip(row["ann_times_s"], row["snn_times_s"]))) for row in r["rows"])
    assert 0 < r["profile"]["mt_kernel_share"] < 1


def test_quick_real_data_scores_every_method_on_the_same_photos(quick_out):
    r = json.loads((quick_out / "real_data.json").read_text())["results"]
    d, g = r["denoise"], r["segment"]
    names = set(d["test_images"])
    assert set(d["baselines"]) == {"nl-means", "wavelet", "tv", "bm3d"}
    rows = [d["ann"], *d["baselines"].values(), *(row["scores"] for row in d["snn"])]
    assert all(set(row) == {"15", "25", "50"} and set(row["25"]["images"]) == names for row in rows)
    assert [row["finetuned"] for row in d["snn"]].count(True) == 1
    assert set(d["contrast"]) == {"blind", "shipped"} and set(d["contrast"]["shipped"]["clean_input"]) == names
    assert g["finetuned_range"]["finetune"]["steps"] == [2, 4] and g["finetuned_single"]["finetune"]["steps"] == [2]
    assert set(g["converted"]) == set(g["finetuned_range"]["scores"]) == {"2", "4", "8"}
    assert 0.5 < g["otsu"]["f1"] < 1.0                       # Otsu on the real nuclei mask


def test_cached_result_is_reused(quick_out):
    before = (quick_out / "time_steps.json").read_text()
    record = run_experiment("time_steps", quick_out, quick=True)
    assert (quick_out / "time_steps.json").read_text() == before
    assert record["results"]["sweep"] == json.loads(before)["results"]["sweep"]


def test_docs_render_from_json_only(quick_out, tmp_path):
    docs = tmp_path / "docs"
    assert main(["docs", "--quick", "--out", str(quick_out), "--docs-dir", str(docs)]) == 0
    text = (docs / "RESULTS.md").read_text()
    assert "QUICK MODE" in text
    assert "## Quality vs time steps" in text and "## Energy (Table 5)" in text
    assert "## Speed: PyTorch SNN vs ANN" in text and "`mt_step` op by op" in text
    assert "## Real data" in text and "**The contrast fault.**" in text and "SNN fine-tuned over T = 2,4" in text
    assert f"python -m experiments time_steps --quick --out {quick_out}" in text
    assert "Not run yet: `python -m experiments tables12 --quick" in text       # never computed by docs
    png = docs / "figures" / "quality_vs_T.png"
    assert png.exists() and 0 < png.stat().st_size < 300_000
    assert not (quick_out / "tables12.json").exists()
    assert (docs / "results" / "time_steps.json").read_text() == (quick_out / "time_steps.json").read_text()

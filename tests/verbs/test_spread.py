"""Issue 17: simulate and evaluate spread their items over worker processes ("auto" by default) and torchrun
ranks, with the files and metrics of one process; the reports and the CLI say how many processes ran."""
from __future__ import annotations

import json
import os
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from cli_helpers import one_error_line, read_outputs, torchrun

import cli
from toolchain.errors import ConfigError
from toolchain.frontend.distributed import Context
from toolchain.verbs import spread as spread_module
from toolchain.verbs.spread import Spread, auto_workers, check_workers, resolve, spread_map


def _square_and_pid(x: int) -> tuple[int, int]:
    return x * x, os.getpid()


# ---------------------------------------------------------------- the spread function and the policy


@pytest.mark.parametrize("workers", [1, 2, 3, 7])
def test_spread_map_yields_every_result_in_order(workers):
    items = list(range(11))
    results = list(spread_map(_square_and_pid, items, Spread(workers)))
    assert [r for r, _ in results] == [x * x for x in items]
    pids = {pid for _, pid in results}
    if workers == 1:
        assert pids == {os.getpid()}                        # one worker: in this process, no fork
    else:
        assert os.getpid() not in pids and 1 < len(pids) <= workers


def test_spread_map_of_one_item_runs_here_and_of_none_yields_nothing():
    assert [pid for _, pid in spread_map(_square_and_pid, [3], Spread(4))] == [os.getpid()]
    assert list(spread_map(_square_and_pid, [], Spread(4))) == []


def test_a_worker_error_is_raised_here():
    def fail_on_three(x: int) -> int:
        if x == 3:
            raise ConfigError("three is not allowed")
        return x
    with pytest.raises(ConfigError, match="three is not allowed"):
        list(spread_map(fail_on_three, range(6), Spread(2)))


def _rank_main(rank: int, store: str, results) -> None:
    """One of two gloo ranks mapping over items 0..3; item 1 (rank 1's) raises."""
    import torch.distributed as dist

    def square_but_one(x: int) -> int:
        if x == 1:
            raise ValueError("item one is broken")
        return x * x

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        results.put((rank, "ok", list(spread_map(square_but_one, range(4), Spread(1, rank, 2)))))
    except Exception as exc:
        results.put((rank, type(exc).__name__, str(exc)))
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(120)
def test_a_failing_rank_stops_every_rank_and_rank_0_names_it(tmp_path):
    import multiprocessing

    context = multiprocessing.get_context("fork")
    results = context.Queue()
    ranks = [context.Process(target=_rank_main, args=(r, str(tmp_path / "store"), results)) for r in (0, 1)]
    for process in ranks:
        process.start()
    outcome = {rank: (kind, detail) for rank, kind, detail in (results.get(timeout=90) for _ in ranks)}
    for process in ranks:
        process.join(30)
    assert outcome[1] == ("ValueError", "item one is broken")
    kind, detail = outcome[0]
    assert kind == "BackendError" and "torchrun rank 1 failed (ValueError: item one is broken)" in detail


def test_each_rank_takes_every_world_th_item():
    assert Spread(1, 0, 3).share(8) == [0, 3, 6]
    assert Spread(1, 2, 3).share(8) == [2, 5]
    assert Spread(1, 1, 3).share(1) == []


@pytest.mark.parametrize("items, cores, local_ranks, per_worker, limit, expected", [
    (1, 8, 1, 0, None, 1),            # one item: this process, with torch's threads
    (0, 8, 1, 0, None, 1),
    (10, 4, 1, 0, None, 4),           # one per core
    (3, 8, 1, 0, None, 3),            # one per item
    (10, 4, 2, 0, None, 2),           # two torchrun ranks on the machine share its cores
    (10, 1, 2, 0, None, 1),
    (10, 8, 1, 1 << 30, 3 << 30, 3),  # within the memory limit
    (10, 8, 1, 4 << 30, 3 << 30, 1),  # not even one fits: one (the verb's own memory check then refuses)
])
def test_the_auto_policy(items, cores, local_ranks, per_worker, limit, expected):
    assert auto_workers(items, cores, local_ranks, per_worker, limit) == expected


def test_resolve_takes_a_count_as_told_and_auto_per_rank():
    assert resolve(5, 2, cores=2) == Spread(5)
    assert resolve("auto", 9, cores=4) == Spread(4)
    assert resolve("auto", 9, Context(1, 3, 1, "gloo"), cores=16) == Spread(3, 1, 3)    # 3 items on rank 1
    assert resolve("auto", 1, cores=16) == Spread(1)


@pytest.mark.parametrize("value", [0, -1, "abc", True, 1.5, None])
def test_bad_worker_settings_are_refused(value):
    with pytest.raises(ConfigError, match="`workers` must be 'auto' or a positive integer"):
        check_workers(value)


def test_descriptions():
    assert Spread(2).describe(6, "images") == "6 images over 2 worker processes"
    assert Spread(1).describe(1, "image") == "1 image over 1 worker process"
    assert Spread(3, 0, 2).describe(6, "images") == "6 images over 2 ranks x 3 worker processes"
    assert Spread(2, 0, 4).to_dict() == {"workers": 2, "world_size": 4}


# ---------------------------------------------------------------- the verbs


@pytest.fixture(scope="module")
def folder(tiny, tmp_path_factory):
    d = tmp_path_factory.mktemp("spread")
    images = d / "images"
    images.mkdir()
    rng = np.random.default_rng(1)
    for k, (h, w) in enumerate([(16, 16), (18, 20), (16, 16), (24, 16), (16, 16)]):
        iio.imwrite(images / f"im{k}.png", rng.integers(0, 256, (h, w), dtype=np.uint8))
    return tiny.net(3, 16), images


@pytest.mark.parametrize("cores, expected", [(2, 2), (3, 3), (16, 5)])
def test_simulate_auto_uses_what_the_policy_says_and_says_so(folder, tmp_path, capsys, monkeypatch, cores, expected):
    net, images = folder
    monkeypatch.setattr(spread_module, "usable_cores", lambda: cores)
    assert cli.main(["simulate", str(net), "--input", str(images), "--out", str(tmp_path / "o"),
                     "--json", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert (report["workers"], report["world_size"]) == (expected, 1)
    assert f"simulate: 5 images over {expected} worker processes" in capsys.readouterr().out.splitlines()


def test_simulate_auto_runs_one_image_in_this_process(folder, tmp_path, capsys, monkeypatch):
    net, images = folder
    monkeypatch.setattr(spread_module, "usable_cores", lambda: 8)
    assert cli.main(["simulate", str(net), "--input", str(images / "im0.png"), "--out", str(tmp_path / "o"),
                     "--json", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["workers"] == 1
    assert "simulate: 1 image over 1 worker process" in capsys.readouterr().out


@pytest.mark.parametrize("verb", ["simulate", "evaluate"])
@pytest.mark.parametrize("value", ["0", "-1", "abc", "2.5"])
def test_bad_workers_flags_give_one_line(folder, tiny, tmp_path, capsys, verb, value):
    net, images = folder
    argv = (["simulate", str(net), "--input", str(images), "--out", str(tmp_path / "o")] if verb == "simulate"
            else ["evaluate", str(tiny.snn)])
    capsys.readouterr()
    try:
        code = cli.main([*argv, "--workers", value])
    except SystemExit as exc:                          # argparse: not a number
        code = exc.code
    assert code == 2
    line = one_error_line(capsys)
    assert "--workers" in line and value in line and "auto" in line
    assert not (tmp_path / "o").exists()


def _evaluate(argv: list[str], json_path: Path, capsys) -> dict:
    assert cli.main([*argv, "--json", str(json_path)]) == 0
    capsys.readouterr()
    return json.loads(json_path.read_text())


def test_evaluate_gives_the_same_floats_over_any_workers(tiny, tmp_path, capsys):
    argv = ["evaluate", str(tiny.snn), "--steps", "2", "--sigma", "15", "50", "--crop", "32"]
    one = _evaluate([*argv, "--workers", "1"], tmp_path / "one.json", capsys)
    for workers in ("2", "3", "auto"):
        many = _evaluate([*argv, "--workers", workers], tmp_path / f"w{workers}.json", capsys)
        assert many["denoise"] == one["denoise"], workers         # JSON floats: bit for bit
    assert (one["workers"], one["world_size"]) == (1, 1)
    assert many["workers"] == min(spread_module.usable_cores(), 12)
    assert [row["sigma"] for row in one["denoise"]] == [15.0, 50.0] and len(one["denoise"][0]["images"]) == 6


@pytest.fixture(scope="module")
def segment_data(tmp_path_factory):
    """A tiny segmentation ANN and a folder of three test images of different sizes with masks."""
    d = tmp_path_factory.mktemp("segment_spread")
    assert cli.main(["train", "--task", "segment", "--width", "4", "--depth", "2", "--epochs", "1",
                     "--batches-per-epoch", "2", "--batch", "2", "--patch", "32", "--out", str(d / "s.pt")]) == 0
    rng = np.random.default_rng(2)
    for sub in ("images", "masks"):
        (d / "data" / "test" / sub).mkdir(parents=True)
    for k, (h, w) in enumerate([(32, 32), (40, 36), (32, 48)]):
        iio.imwrite(d / "data" / "test" / "images" / f"t{k}.png", rng.integers(0, 256, (h, w), dtype=np.uint8))
        iio.imwrite(d / "data" / "test" / "masks" / f"t{k}.png", (rng.random((h, w)) > 0.5).astype(np.uint8) * 255)
    return d / "s.pt", d / "data"


def test_segmentation_pools_the_same_pixels_over_any_workers(segment_data, tmp_path, capsys):
    model, data = segment_data
    argv = ["evaluate", str(model), "--data", str(data), "--layout", "folder"]
    one = _evaluate([*argv, "--workers", "1"], tmp_path / "one.json", capsys)
    many = _evaluate([*argv, "--workers", "3"], tmp_path / "many.json", capsys)
    assert many["segmentation"] == one["segmentation"] and many["workers"] == 3
    assert set(one["segmentation"]) >= {"f1", "miou"}
    auto = _evaluate(argv, tmp_path / "auto.json", capsys)
    assert auto["segmentation"] == one["segmentation"] and auto["workers"] == 1     # auto: an ANN in one process


# ---------------------------------------------------------------- torchrun: 2 ranks (gloo, CPU)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("backend", ["reference", "loihi2"])
def test_torchrun_simulate_writes_the_files_of_one_process(folder, tmp_path, backend):
    net, images = folder
    argv = ["simulate", str(net), "--backend", backend, "--input", str(images), "--add-noise", "20"]
    assert cli.main([*argv, "--workers", "1", "--out", str(tmp_path / "one")]) == 0
    run = torchrun([*argv, "--out", str(tmp_path / "two"), "--json", str(tmp_path / "two.json")], tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("simulate: 5 images over 2 ranks x") == 1             # rank 0 says it, once
    one, two = read_outputs(tmp_path / "one"), read_outputs(tmp_path / "two")
    assert one.keys() == two.keys() and len([n for n in one if n.endswith("output.npy")]) == 5
    for name, content in one.items():
        assert two[name] == content, name
    report = json.loads((tmp_path / "two.json").read_text())
    assert report["world_size"] == 2 and [row["image"] for row in report["images"]] == [f"im{k}" for k in range(5)]


@pytest.mark.timeout(300)
def test_torchrun_evaluate_gives_the_metrics_of_one_process(tiny, segment_data, tmp_path, capsys):
    denoise = ["evaluate", str(tiny.snn), "--steps", "2", "--sigma", "15", "50", "--crop", "32"]
    model, data = segment_data
    segment = ["evaluate", str(model), "--data", str(data), "--layout", "folder"]
    for name, argv, key in (("denoise", denoise, "denoise"), ("segment", segment, "segmentation")):
        one = _evaluate([*argv, "--workers", "1"], tmp_path / f"{name}1.json", capsys)
        run = torchrun([*argv, "--json", str(tmp_path / f"{name}2.json")], tmp_path)
        assert run.returncode == 0, run.stderr[-3000:]
        assert run.stdout.count("evaluate: ") == 1 and "over 2 ranks x" in run.stdout
        two = json.loads((tmp_path / f"{name}2.json").read_text())
        assert two[key] == one[key], name
        assert two["world_size"] == 2

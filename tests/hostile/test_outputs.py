"""Issue 16, outputs (cases 6, 11 and 12 of the issue): image names cannot place outputs outside --out, an output
folder is written as a whole (staged, swapped in, locked against a concurrent run), stale results of a previous
run do not survive, temporary files of a killed run are removed by the next run, and an output never overwrites
one of the verb's inputs."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import imageio.v3 as iio
import pytest
from hostile_helpers import CLI, assert_one_error, env, gray, last_line, leftovers, main_fails, part_files, run_cli

import cli
from toolchain.errors import OutputError
from toolchain.files import MANIFEST, atomic_path, output_folder, safe_name

# ==================================================================== 6. writing outside --out


def test_6_dot_stems_stay_inside_out(capsys, files, tmp_path):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for name in ("a.png", "...png", "..png", ".hidden.png"):
        shutil.copyfile(files["img"], imgs / name)
    runs = tmp_path / "runs"
    out = runs / "out"
    assert cli.main(["simulate", str(files["net"]), "--input", str(imgs), "--out", str(out)]) == 0
    assert [p for p in leftovers(runs) if not p.startswith("out")] == []      # nothing in runs/ beside out/
    assert not (out / "output.npy").exists()
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["_", "_.", "_hidden", "a"]


def test_6_safe_name():
    assert [safe_name(n) for n in ("..", ".", "", "a/b", "a\\b", ".x", "ok", "x.y")] == [
        "_.", "_", "_", "a_b", "a_b", "_x", "ok", "x.y"]


# ======================================================== 11. output sets are not atomic as a whole

def _files(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")}


def test_11_a_second_run_into_a_folder_being_written_is_refused(files, tmp_path):
    """Run A (long: T = 30000) is writing --out when run B starts: B is refused at once with one line (a lock),
    and the folder ends up wholly A's. Before issue 16 B succeeded and the folder mixed both runs' files."""
    imgs = []
    for k in range(2):
        imgs.append(tmp_path / f"in{k}.png")
        iio.imwrite(imgs[-1], gray(16, 16, 10 + k))
    solo = tmp_path / "solo"
    assert cli.main(["report", str(files["net"]), "--input", str(imgs[0]), "--out", str(solo), "--steps",
                     "30000"]) == 0
    shared = tmp_path / "shared"
    a = subprocess.Popen([sys.executable, CLI, "report", str(files["net"]), "--input", str(imgs[0]), "--out",
                          str(shared), "--steps", "30000"], env=env(), stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (tmp_path / ".shared.lock").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert a.poll() is None, "run A ended too early for this test"
    rc, _, err, _ = run_cli(["report", files["net"], "--input", imgs[1], "--out", shared])
    assert a.wait(timeout=300) == 0
    assert_one_error(err, shared.name, "another run", code=2, rc=rc)
    assert _files(shared) == _files(solo)
    assert part_files(tmp_path) == []


def test_11_rerun_leaves_no_stale_per_image_results(files, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    for k, name in enumerate("abc"):
        iio.imwrite(first / f"{name}.png", gray(16, 16, k))
    for k, name in enumerate("ab"):
        iio.imwrite(second / f"{name}.png", gray(16, 16, 20 + k))
    out = tmp_path / "out"
    assert cli.main(["simulate", str(files["net"]), "--input", str(first), "--out", str(out)]) == 0
    assert cli.main(["simulate", str(files["net"]), "--input", str(second), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["a", "b"]       # c (stale) is gone
    assert cli.main(["simulate", str(files["net"]), "--input", str(second / "a.png"), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "output.npy", "output.png", "spikes.json"]


def test_11_interrupted_rerun_keeps_the_previous_complete_set(files, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for k, name in enumerate("abc"):
        iio.imwrite(folder / f"{name}.png", gray(16, 16, k))
    out = tmp_path / "out"
    assert cli.main(["simulate", str(files["net"]), "--input", str(folder), "--out", str(out)]) == 0
    before = {p: (out / p / "output.npy").read_bytes() for p in "abc"}
    for k, name in enumerate("abc"):
        iio.imwrite(folder / f"{name}.png", gray(16, 16, 30 + k))
    p = subprocess.Popen([sys.executable, CLI, "simulate", str(files["net"]), "--input", str(folder), "--out",
                          str(out), "--steps", "30000"], env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = b""
    while b"1/3" not in err and p.poll() is None:   # tqdm: the first image's outputs are done
        err += os.read(p.stderr.fileno(), 4096)
    p.send_signal(signal.SIGTERM)
    err += p.communicate(timeout=120)[1]
    if p.returncode == 0:
        pytest.skip("the run finished before the signal")
    assert p.returncode == 143 and last_line(err.decode()).startswith("terminated:"), err[-500:]
    assert {q: (out / q / "output.npy").read_bytes() for q in "abc"} == before   # all old: none new, no mix
    assert part_files(tmp_path) == []


def test_11_part_files_of_a_killed_run_are_removed_by_the_next(files, tmp_path):
    argv = [sys.executable, CLI, "export", str(files["snn"]), "-o", str(tmp_path / "k.net"), "--input-size", "64"]
    for _ in range(50):
        p = subprocess.Popen(argv, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while p.poll() is None and not part_files(tmp_path):
            time.sleep(0.002)
        p.kill()
        p.wait()
        if part_files(tmp_path):
            break
    else:
        pytest.skip("never caught the export with its .part file")
    assert cli.main(argv[2:]) == 0
    assert part_files(tmp_path) == []


def test_11_killed_staging_and_part_files_are_removed(tmp_path):
    """What a SIGKILLed run leaves (its .part file and staging folder, named after a dead writer) goes with the
    next write of the same target; another target's and a live writer's files stay."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    for name in (f".x.net.{pid}-1.abc.part", f".out.{pid}-1.abc.staging", f".other.{pid}-1.abc.part",
                 f".x.net.{os.getpid()}-{_start(os.getpid())}.abc.part"):
        (tmp_path / name).mkdir() if name.endswith(".staging") else (tmp_path / name).write_text("x")
    with atomic_path(tmp_path / "x.net") as tmp:
        tmp.write_text("new")
    with output_folder(tmp_path / "out") as staged:
        (staged / "f").write_text("y")
    assert sorted(os.listdir(tmp_path)) == sorted([f".other.{pid}-1.abc.part", "out", "x.net",
                                                   f".x.net.{os.getpid()}-{_start(os.getpid())}.abc.part"])


def _start(pid):
    with open(f"/proc/{pid}/stat") as handle:
        stat = handle.read()
    return int(stat[stat.rindex(")") + 2:].split()[19])


def test_11_output_folder_refuses_foreign_contents_and_files(tmp_path):
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("keep me")
    with pytest.raises(OutputError, match="notes.txt"), output_folder(user):
        pass
    assert (user / "notes.txt").read_text() == "keep me"
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputError, match="not a folder"), output_folder(tmp_path / "afile"):
        pass
    with pytest.raises(RuntimeError), output_folder(tmp_path / "failed") as staged:
        (staged / "half").write_text("x")
        raise RuntimeError("boom")
    assert not (tmp_path / "failed").exists() and part_files(tmp_path) == []


# ============================================================ 12. an output that overwrites an input

@pytest.mark.parametrize("verb", ["export", "convert", "simulate-json", "input-inside-out", "out-is-input-folder"])
def test_12_output_equal_to_an_input_refused(capsys, files, tmp_path, verb):
    if verb == "export":
        victim = shutil.copyfile(files["snn"], tmp_path / "x.pt")
        argv, name = ["export", victim, "-o", victim, "--input-size", "16"], "x.pt"
    elif verb == "convert":
        victim = shutil.copyfile(files["ann"], tmp_path / "y.pt")
        argv, name = ["convert", victim, "--calibration", "4", "--patch", "32", "--out", victim], "y.pt"
    elif verb == "simulate-json":
        victim = shutil.copyfile(files["img"], tmp_path / "in.png")
        argv, name = ["simulate", files["net"], "--input", victim, "--out", tmp_path / "o", "--json", victim], "in.png"
    elif verb == "input-inside-out":   # the inputs live inside a folder a previous run wrote: replacing it deletes them
        out = tmp_path / "o"
        assert cli.main(["simulate", str(files["net"]), "--input", str(files["img"]), "--out", str(out)]) == 0
        (out / "imgs").mkdir()
        victim = shutil.copyfile(files["img"], out / "imgs" / "a.png")
        argv, name = ["simulate", files["net"], "--input", out / "imgs", "--out", out], "imgs"
    else:
        imgs = tmp_path / "imgs"
        imgs.mkdir()
        victim = shutil.copyfile(files["img"], imgs / "a.png")
        argv, name = ["simulate", files["net"], "--input", imgs, "--out", imgs], "imgs"
    before = victim.read_bytes()
    main_fails(capsys, argv, name)
    assert victim.read_bytes() == before

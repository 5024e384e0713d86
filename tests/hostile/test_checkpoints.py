"""Issue 16, hostile checkpoints (cases 3, 9, 10 and 12 of the issue): a tensor view that claims gigabytes, a
compressed (zip-bomb) member, damaged bytes, metadata nested 100,000 deep or of the wrong type, and a data
folder recorded inside the file are refused with one line naming the file and the tensor, key or flag, before
any value is touched or any folder the user did not name is read."""
from __future__ import annotations

import io
import random
import re
import shutil
import zipfile
from collections import OrderedDict

import pytest
import torch
from hostile_helpers import GB, assert_one_error, main_fails, run_cli, words

import cli
from toolchain.errors import CheckpointError
from toolchain.frontend.checkpoint import load_checkpoint


class View:
    """Pickles as torch._utils._rebuild_tensor_v2(storage, offset, size, stride): any view metadata."""

    def __init__(self, storage, size, stride, offset=0):
        self.args = (storage, offset, size, stride)

    def __reduce_ex__(self, protocol):
        storage, offset, size, stride = self.args
        return torch._utils._rebuild_tensor_v2, (storage, offset, size, stride, False, OrderedDict())


def checkpoint_with(src, dst, edit):
    payload = torch.load(src, weights_only=True)
    edit(payload)
    with open(dst, "wb") as handle:
        torch.save(payload, handle)
    return dst


def _typed(storage):
    return torch.storage.TypedStorage(wrap_storage=storage, dtype=torch.float32, _internal=True)


# ============================================================ 3. a checkpoint that allocates 17 GB

@pytest.mark.parametrize("where", ["first-key", "unknown-key", "training-state", "meta"])
def test_3_stride0_view_refused_before_any_value_is_touched(files, tmp_path, where):
    bomb = View(_typed(torch.zeros(1).untyped_storage()), (1 << 17, 1 << 17), (0, 0))   # 2^34 elements, 4 bytes

    def edit(p):
        key = next(iter(p["state_dict"]))
        if where == "first-key":
            p["state_dict"][key] = bomb
        elif where == "unknown-key":
            p["state_dict"]["zz.evil"] = bomb
        elif where == "meta":
            p["meta"]["blob"] = bomb
        else:
            p["training_state"] = {"epoch": 1, "settings": {}, "optimizer": {"state": {0: {"exp_avg": bomb}}},
                                   "history": [], "rng": {"numpy": {}, "torch": torch.zeros(8, dtype=torch.uint8),
                                                          "torch_global": torch.zeros(8, dtype=torch.uint8)}}
    ck = checkpoint_with(files["snn"], tmp_path / "bomb.pt", edit)
    assert ck.stat().st_size < 200_000
    rc, _, err, _ = run_cli(["export", ck, "-o", tmp_path / "x.net", "--input-size", "16"], mem=2 * GB)
    line = assert_one_error(err, ck.name, code=2, rc=rc)
    assert re.search(r"stride|overlap|view", words(line, ck)), line
    assert not (tmp_path / "x.net").exists()


def test_3_overlapping_and_out_of_storage_views_refused(files, tmp_path):
    storage = _typed(torch.zeros(16).untyped_storage())

    def overlap(p):
        key = next(iter(p["state_dict"]))
        p["state_dict"][key] = View(storage, tuple(p["state_dict"][key].shape), (1, 1, 1, 1))
    with pytest.raises(CheckpointError, match=r"strides.*overlapping"):
        load_checkpoint(checkpoint_with(files["snn"], tmp_path / "overlap.pt", overlap))


def test_3_compressed_members_refused(files, tmp_path):
    """A deflated record decompresses up to ~1000x its size: torch.save never compresses, so refuse."""
    src = zipfile.ZipFile(files["snn"])
    bomb = tmp_path / "deflated.pt"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    with pytest.raises(CheckpointError, match=r"compress"):
        load_checkpoint(bomb)


def test_3_member_marked_as_a_folder_refused(files, tmp_path):
    """miniz (torch's zip reader) returns uninitialised memory for a member whose directory bit is set."""
    src = zipfile.ZipFile(files["snn"])
    odd = tmp_path / "folder-bit.pt"
    with zipfile.ZipFile(odd, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            if info.filename.endswith("/data/0"):
                info.external_attr = 0x10
            dst.writestr(info, src.read(info.filename))
    with pytest.raises(CheckpointError, match=r"folder"):
        load_checkpoint(odd)


# ==================================================== 9. hostile metadata: one line, not a traceback

def _deep_meta_checkpoint(src, dst, depth: int = 100_000):
    """meta['deep'] = [[[...]]] nested ``depth`` deep: pickle opcodes spliced into data.pkl (torch.save
    itself cannot write it)."""
    checkpoint_with(src, dst, lambda p: p["meta"].__setitem__("deep", "DEEPMARKER_X"))
    needle = b"X" + len(b"DEEPMARKER_X").to_bytes(4, "little") + b"DEEPMARKER_X"     # BINUNICODE (protocol 2)
    z = zipfile.ZipFile(io.BytesIO(dst.read_bytes()))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as out:
        for info in z.infolist():
            data = z.read(info.filename)
            if info.filename.endswith("data.pkl"):
                assert needle in data
                data = data.replace(needle, b"]" * depth + b"a" * (depth - 1))
            out.writestr(info.filename, data)
    dst.write_bytes(buf.getvalue())
    return dst


CONVERT = ["--calibration", "4", "--patch", "32"]


@pytest.mark.parametrize("case", ["data-int", "data-root-int", "data-layout-list", "deeply-nested", "meta-object",
                                  "finetuned-steps-str", "thresholds-str"])
def test_9_hostile_metadata_is_one_line(files, tmp_path, case):
    def meta(name, **values):
        return checkpoint_with(files["ann"], tmp_path / name, lambda p: p["meta"].update(values))
    if case == "data-int":
        argv, names = ["convert", meta("d.pt", data=5), *CONVERT, "--out", tmp_path / "c.pt"], ["d.pt", "data"]
    elif case == "data-root-int":
        argv, names = ["convert", meta("r.pt", data={"root": 5}), *CONVERT, "--out", tmp_path / "c.pt"], ["r.pt"]
    elif case == "data-layout-list":
        argv, names = ["evaluate", meta("l.pt", data={"layout": [1]}), "--crop", "32"], ["l.pt", "layout"]
    elif case == "deeply-nested":
        argv = ["convert", _deep_meta_checkpoint(files["ann"], tmp_path / "deep.pt"), *CONVERT, "--out",
                tmp_path / "c.pt"]
        names = ["deep.pt", "meta", "nested"]
    elif case == "meta-object":
        argv, names = ["convert", meta("o.pt", extra=torch.zeros(3)), *CONVERT, "--out", tmp_path / "c.pt"], ["o.pt"]
    elif case == "finetuned-steps-str":
        ck = checkpoint_with(files["snn"], tmp_path / "ft.pt", lambda p: p["spiking"].update(finetuned_steps="x"))
        argv, names = ["export", ck, "-o", tmp_path / "x.net"], ["ft.pt", "finetuned_steps"]
    else:
        ck = checkpoint_with(files["snn"], tmp_path / "th.pt", lambda p: p["spiking"].update(thresholds="2,1"))
        argv, names = ["export", ck, "-o", tmp_path / "x.net"], ["th.pt", "thresholds"]
    rc, _, err, _ = run_cli(argv)
    assert_one_error(err, *names, code=2, rc=rc)
    assert not (tmp_path / "c.pt").exists() and not (tmp_path / "x.net").exists()


# ======================================================= 10. damaged files never load as other content

def _flip(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    return bytes(b)


def _content(ck) -> bytes:
    buf = io.BytesIO()
    torch.save({"sd": ck.state_dict, "sp": ck.spiking, "meta": ck.meta, "ts": ck.training_state}, buf)
    return buf.getvalue()


def test_10_checkpoint_damage_never_loads_as_other_content(files, tmp_path):
    """Before issue 16: 379 of 500 single-bit flips loaded with other content (the zip CRC was not checked)."""
    ref = _content(load_checkpoint(files["snn"]))
    orig = files["snn"].read_bytes()
    rng = random.Random(16)
    silent = []
    for k in range(300):
        path = tmp_path / "m.pt"
        path.write_bytes(_flip(orig, rng))
        try:
            ck = load_checkpoint(path)
        except CheckpointError:
            continue
        if _content(ck) != ref:
            silent.append(k)
    assert silent == []


# ============================================================= 12. a data folder named inside a file

def test_12_recorded_data_folder_is_not_read_unless_named(capsys, files, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    for split in ("train", "test"):
        (elsewhere / split / "images").mkdir(parents=True)
    (elsewhere / "train" / "images" / "private.png").write_bytes(b"not a png")
    shutil.copyfile(files["img64"], elsewhere / "test" / "images" / "x.png")
    def recording(src, name):
        return checkpoint_with(src, tmp_path / name, lambda p: p["meta"].update(
            data={"task": "denoise", "channels": 1, "root": str(elsewhere), "layout": "folder"}))
    ck, snn = recording(files["ann"], "named.pt"), recording(files["snn"], "named_snn.pt")
    for argv in (["convert", ck, *CONVERT, "--out", tmp_path / "c.pt"],
                 ["evaluate", ck, "--sigma", "25", "--crop", "32"],
                 ["finetune", snn, "--out", tmp_path / "f.pt", "--epochs", "1", "--batches-per-epoch", "1"]):
        capsys.readouterr()
        rc = cli.main([str(a) for a in argv])
        err = capsys.readouterr().err
        assert "private.png" not in err                       # the folder was not read
        assert rc != 0
        assert_one_error(err, "--data", str(elsewhere), code=2, rc=rc)   # names the recorded folder and the flag
    # named explicitly, it is read (and its broken image reported)
    main_fails(capsys, ["convert", ck, *CONVERT, "--out", tmp_path / "c.pt", "--data", elsewhere], "private.png")

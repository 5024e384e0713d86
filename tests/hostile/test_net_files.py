"""Issue 16, hostile .net files (cases 1, 2, 4, 5 and 10 of the issue): a .net file that refers to other files
(HDF5 external links, external storage, virtual datasets), that blocks on a FIFO, whose metadata is out of range,
whose datasets declare gigabytes, or that is damaged, is refused with one line naming the file and the HDF5 path
or field, before anything is read from elsewhere or allocated; the stock netx reader keeps the same rules."""
from __future__ import annotations

import dataclasses
import json
import os
import random
import re
import shutil

import h5py
import numpy as np
import pytest
from hostile_helpers import GB, assert_one_error, copy, main_fails, run_cli, words

from netx_export import read_network, read_netx, write_network
from toolchain.errors import NetFileError


def net_copy(files, tmp_path, name: str = "x.net"):
    return copy(files["net"], tmp_path / name)


def replace_dataset(path, key: str, make) -> None:
    """Delete ``key`` and let ``make(group, name, old_value)`` create its replacement."""
    with h5py.File(path, "r+") as f:
        group_path, _, name = key.rpartition("/")
        g = f[group_path]
        old = g[name][()]
        del g[name]
        make(g, name, old)


def set_meta(path, **changes):
    with h5py.File(path, "r+") as f:
        meta = json.loads(f["meta/json"][0])
        meta.update(changes)
        del f["meta/json"]
        f["meta"].create_dataset("json", data=np.array([json.dumps(meta, sort_keys=True).encode()]))
    return path


def secret_file(folder, size: int = 64):
    s = folder / "secret.txt"
    s.write_bytes((b"TOPSECRET-" * size)[:size])
    return s


def assert_secret_nowhere(folder, marker: bytes = b"TOPSECRET") -> None:
    """No file but the secret itself (and the hostile files, which name it) holds the secret's bytes."""
    for p in folder.rglob("*"):
        if p.is_file() and p.name != "secret.txt" and p.suffix not in (".net", ".h5"):
            assert marker not in p.read_bytes(), p


# ============================================================================ 1. a .net reads other files

def _external_storage_name(path, target, size: int) -> None:
    replace_dataset(path, "layer/1/name", lambda g, n, old: g.create_dataset(
        n, shape=(1,), dtype=f"S{size}", external=[(str(target), 0, size)]))


def _external_storage_weight(path, target: str) -> None:
    replace_dataset(path, "layer/1/weight", lambda g, n, old: g.create_dataset(
        n, shape=old.shape, dtype="<i8", external=[(target, 0, old.size * 8)]))


def _external_link(path, other) -> None:
    shutil.copyfile(path, other)
    with h5py.File(path, "r+") as f:
        del f["layer/3"]
        f["layer/3"] = h5py.ExternalLink(str(other), "/layer/3")


def _virtual(path, other) -> None:
    with h5py.File(other, "w") as o:
        o["w"] = np.zeros((4, 1, 3, 3), np.int64)

    def make(g, n, old):
        layout = h5py.VirtualLayout(shape=old.shape, dtype="<i8")
        layout[...] = h5py.VirtualSource(str(other), "w", shape=old.shape)
        g.create_virtual_dataset(n, layout)
    replace_dataset(path, "layer/1/weight", make)


def _soft(path, _other) -> None:
    with h5py.File(path, "r+") as f:
        del f["layer/2/bias"]
        f["layer/2/bias"] = h5py.SoftLink("/layer/1/bias")


def _named_type(path, _other) -> None:
    with h5py.File(path, "r+") as f:
        f["layer/1/neuron/t"] = np.dtype("<i8")


@pytest.mark.parametrize("build, key, word", [
    (lambda p, o: _external_storage_name(p, secret_file(p.parent), 64), "layer/1/name", "external"),
    (lambda p, o: _external_storage_weight(p, "/dev/zero"), "layer/1/weight", "external"),
    (lambda p, o: _external_storage_weight(p, str(p.parent / "missing.bin")), "layer/1/weight", "external"),
    (_external_link, "layer/3", "external link"),
    (_virtual, "layer/1/weight", "virtual"),
    (_soft, "layer/2/bias", "soft link"),
    (_named_type, "layer/1/neuron/t", "datatype"),
], ids=["storage-secret", "storage-dev-zero", "storage-missing", "external-link", "virtual", "soft-link",
        "named-datatype"])
def test_1_net_refers_to_other_files_refused(capsys, files, tmp_path, build, key, word):
    net = net_copy(files, tmp_path)
    build(net, tmp_path / "other.h5")
    out = tmp_path / "out"
    line = main_fails(capsys, ["simulate", net, "--input", files["img"], "--out", out], net.name, key)
    assert word in words(line, net)
    assert not out.exists()
    assert_secret_nowhere(tmp_path)
    with pytest.raises(NetFileError, match=re.escape(key)):
        read_network(net)


def test_1_report_does_not_leak_an_external_name(capsys, files, tmp_path):
    net = net_copy(files, tmp_path)
    _external_storage_name(net, secret_file(tmp_path, 64), 64)
    out = tmp_path / "rep"
    main_fails(capsys, ["report", net, "--out", out], "layer/1/name")
    assert not out.exists()
    assert_secret_nowhere(tmp_path)


def _stock_file(path):
    """A minimal stock netx file (input CUBA layer -> dense CUBA layer), as read_netx reads it."""
    with h5py.File(path, "w") as f:
        for i, (kind, shape) in enumerate((("input", [4, 1, 1]), ("dense", [2]))):
            g = f.create_group(f"layer/{i}")
            g["type"] = np.array([kind.encode()])
            g["shape"] = np.array(shape, np.int64)
            n = g.create_group("neuron")
            n["type"] = np.array([b"CUBA"])
            for k, v in (("iDecay", 4096), ("vDecay", 0), ("vThMant", 64)):
                n[k] = np.int64(v)
        f["layer/1/weight"] = np.ones((2, 4), np.int64)
    return path


def test_1_stock_reader_refuses_external_storage_and_links(tmp_path):
    path = _stock_file(tmp_path / "stock.net")
    read_netx(path)                                                       # the clean file loads
    _external_storage_weight(path, str(secret_file(tmp_path)))
    with pytest.raises(NetFileError, match=r"layer/1/weight.*external"):
        read_netx(path)
    linked = _stock_file(tmp_path / "linked.net")
    other = _stock_file(tmp_path / "other.h5")
    with h5py.File(linked, "r+") as f:
        del f["layer/1"]
        f["layer/1"] = h5py.ExternalLink(str(other), "/layer/1")
    with pytest.raises(NetFileError, match=r"layer/1.*external link"):
        read_netx(linked)


# ====================================================================== 2. a .net that hangs for ever

@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.parametrize("kind", ["link", "storage"])
def test_2_fifo_target_ends_at_once(files, tmp_path, kind):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    net = net_copy(files, tmp_path)
    if kind == "link":
        with h5py.File(net, "r+") as f:
            del f["layer/3"]
            f["layer/3"] = h5py.ExternalLink(str(fifo), "/x")
    else:
        _external_storage_name(net, fifo, 16)
    rc, _, err, seconds = run_cli(["simulate", net, "--input", files["img"], "--out", tmp_path / "o"], timeout=60)
    assert_one_error(err, net.name, "layer/3" if kind == "link" else "layer/1/name", code=2, rc=rc)
    assert seconds < 30


# ====================================================================== 4. .net metadata is trusted

@pytest.mark.parametrize("change, key", [
    ({"steps": 1e300}, "steps"), ({"steps": 10 ** 9}, "steps"), ({"steps": 2.7}, "steps"), ({"steps": "abc"}, "steps"),
    ({"steps": True}, "steps"), ({"multiple": 0}, "multiple"), ({"multiple": -3}, "multiple"),
    ({"multiple": "x"}, "multiple"), ({"multiple": [4]}, "multiple"), ({"multiple": 2.5}, "multiple"),
    ({"multiple": "4"}, "multiple"), ({"task": 7}, "task"),
    ({"task": "segment"}, "task"), ({"in_channels": 3}, "in_channels"), ({"out_channels": 0}, "out_channels"),
    ({"thresholds": "x"}, "thresholds"), ({"input_levels": 0}, "input_levels"),
    ({"input_level_range": [5, -5]}, "input_level_range"), ({"noise_map": "yes"}, "noise_map"),
    ({"v_limit": -1}, "v_limit"), ({"theta_unit": 0}, "theta_unit"), ({"percentile": 500}, "percentile"),
])
def test_4_meta_fields_are_validated(files, tmp_path, change, key):
    net = set_meta(net_copy(files, tmp_path), **change)
    with pytest.raises(NetFileError, match=rf"meta.*{key}"):
        read_network(net)
    if key in ("steps", "multiple"):        # the two that made a run hang or crash: through the CLI too
        rc, _, err, seconds = run_cli(["simulate", net, "--input", files["img"], "--out", tmp_path / "o"], timeout=60)
        assert_one_error(err, net.name, "meta", key, code=2, rc=rc)
        assert seconds < 30 and not (tmp_path / "o").exists()


def test_4_huge_multiple_does_not_pad_to_gigabytes(files, tmp_path):
    net = set_meta(net_copy(files, tmp_path), multiple=2048)
    rc, _, err, _ = run_cli(["simulate", net, "--input", files["img64"], "--out", tmp_path / "o", "--max-memory",
                             "1G"], mem=3 * GB)
    line = words(assert_one_error(err, net.name, code=2, rc=rc), net)
    assert "multiple" in line or "memory" in line


# ============================================================================= 5. memory bombs

@pytest.mark.parametrize("key", ["layer/1/inputs", "layer/2/neuron/thresholds", "layer/2/bias"])
@pytest.mark.parametrize("storage", ["gzip", "unwritten"])
def test_5_net_dataset_declaring_a_gigabyte_refused_unread(files, tmp_path, key, storage):
    net = net_copy(files, tmp_path)

    def make(g, n, old):
        if storage == "gzip":
            d = g.create_dataset(n, shape=(1 << 27,), dtype="<i8", chunks=(1 << 20,), compression="gzip",
                                 fillvalue=int(np.ravel(old)[0]))
            d[: old.size] = np.ravel(old)
        else:                                  # contiguous, never written: HDF5 reads it as its fill value
            g.create_dataset(n, shape=(1 << 27,), dtype="<i8")
    replace_dataset(net, key, make)
    assert net.stat().st_size < 2_000_000
    rc, _, err, _ = run_cli(["simulate", net, "--input", files["img"], "--out", tmp_path / "o"], mem=2 * GB)
    assert_one_error(err, net.name, key, code=2, rc=rc)


def test_5_valid_net_whose_maps_need_gigabytes(files, tmp_path):
    """Passes every check of the reader (only the first conv's padding differs); the simulation needs GBs."""
    from toolchain.ir import resize
    net0 = read_network(files["net"])
    layers = [dataclasses.replace(la, padding=(2001, 2001)) if la.name == net0.layers[1].name else la
              for la in net0.layers]
    path = tmp_path / "padding.net"
    write_network(resize(net0.with_layers(layers), (16, 16)), path)
    for backend in ("reference", "loihi2"):
        rc, _, err, _ = run_cli(["simulate", path, "--input", files["img"], "--out", tmp_path / "o", "--backend",
                                 backend, "--max-memory", "1G"], mem=3 * GB)
        line = words(assert_one_error(err, path.name, code=2, rc=rc), path)
        assert "memory" in line and "--max-memory" in line
    rc, _, err, _ = run_cli(["report", path, "--input", files["img"], "--out", tmp_path / "r", "--max-memory", "1G"],
                            mem=3 * GB)
    assert "--max-memory" in assert_one_error(err, path.name, code=2, rc=rc)


# ======================================================= 10. damaged files never load as other content

def _flip(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    return bytes(b)


def test_10_net_damage_never_loads_as_other_content(files, tmp_path):
    """Before issue 16: 35 of 1600 single-bit flips loaded as another network (HDF5 raw data has no checksum)."""
    ref_path = tmp_path / "ref.net"
    write_network(read_network(files["net"]), ref_path)
    ref = ref_path.read_bytes()
    assert ref == files["net"].read_bytes()
    rng = random.Random(16)
    silent = []
    for k in range(200):
        path = tmp_path / "m.net"
        path.write_bytes(_flip(ref, rng))
        try:
            net = read_network(path)
        except NetFileError:
            continue
        again = tmp_path / "again.net"
        write_network(net, again)
        if again.read_bytes() != ref:
            silent.append(k)
    assert silent == []


def test_10_a_file_without_its_checksum_is_refused(files, tmp_path):
    net = net_copy(files, tmp_path)
    with h5py.File(net, "r+") as f:
        del f["contentSha256"]
    with pytest.raises(NetFileError, match="contentSha256.*missing"):
        read_network(net)
    with h5py.File(net, "r+") as f:          # format version 1 files (before the checksum) still load
        del f["formatVersion"]
        f["formatVersion"] = np.int64(1)
    read_network(net)


def test_10_a_changed_value_fails_the_checksum(files, tmp_path):
    net = net_copy(files, tmp_path)
    with h5py.File(net, "r+") as f:
        w = f["layer/4/weight"][()]
        w.flat[0] = -w.flat[0] if w.flat[0] else 1
        f["layer/4/weight"][...] = w
    with pytest.raises(NetFileError, match="contentSha256.*damaged"):
        read_network(net)


def test_5_npy_frame_declaring_gigabytes_refused_unread(tmp_path):
    """A stock network's .npy input frame: np.load allocates what the header declares (here 128 GiB)."""
    net = _stock_file(tmp_path / "stock.net")
    bomb = tmp_path / "bomb.npy"
    with open(bomb, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": "<i8", "fortran_order": False, "shape": (1 << 34,)})
        handle.write(b"\0" * 80)
    rc, _, err, _ = run_cli(["simulate", net, "--input", bomb, "--out", tmp_path / "o", "--steps", "4"], mem=2 * GB)
    assert_one_error(err, bomb.name, "header", code=2, rc=rc)
    good = tmp_path / "good.npy"
    np.save(good, np.zeros((4, 1, 1), np.int64))
    rc, _, err, _ = run_cli(["simulate", net, "--input", good, "--out", tmp_path / "o", "--steps", "4"])
    assert rc == 0, err[-2000:]


def test_5_unwritten_chunked_weight_refused_unread(files, tmp_path):
    """A chunked dataset of the right shape whose chunks were never written reads as its fill value: declared
    bytes the file does not hold (a compressed one can hold at most deflate's ~1000:1)."""
    net = net_copy(files, tmp_path)
    replace_dataset(net, "layer/1/weight", lambda g, n, old: g.create_dataset(
        n, shape=old.shape, dtype="<i8", chunks=old.shape, compression="gzip"))
    with pytest.raises(NetFileError, match=r"layer/1/weight.*stores 0"):
        read_network(net)


def test_5_filters_other_than_deflate_and_shuffle_refused(files, tmp_path):
    """Only deflate and shuffle (an HDF5 filter that is not built in would make HDF5 look for a plugin library)."""
    net = net_copy(files, tmp_path)
    replace_dataset(net, "layer/1/weight", lambda g, n, old: g.create_dataset(
        n, data=old, chunks=old.shape, fletcher32=True))                     # a built-in filter our files never use
    with pytest.raises(NetFileError, match=r"layer/1/weight.*filter 3"):
        read_network(net)

"""The hardware profile files: the shipped ones load with a source for every number, and malformed
or out-of-range profiles and overrides are refused with a ProfileError naming the file and key."""
from __future__ import annotations

import json

import pytest

from toolchain.errors import ProfileError
from toolchain.hardware import load_profile
from toolchain.hardware.profile import PROFILE_DIR


def test_shipped_profiles_load_and_are_sourced():
    for name in ("loihi2", "loihi1", "generic45nm"):
        p = load_profile(name)
        for key, q in p.quantities().items():
            assert q["status"] in ("measured", "derived", "vendor", "assumed") and q["source"], key
            if q["status"] in ("measured", "derived"):              # cite a source a reader can open
                assert q["refs"] and all(r in p.sources for r in q["refs"]), key
    l2 = load_profile("loihi2")
    assert l2.resource_model == "compiler" and load_profile("loihi1").resource_model == "bytes"
    assert l2.value("chip.cores_per_chip") == 128 and l2.value("core.synmem_words") == 12000
    assert l2.quantity("core.synmem_words")["status"] == "measured"
    assert l2.quantity("energy.scale")["status"] == "derived" and l2.band("energy.scale") == (0.556, 1.082)
    assert l2.quantity("energy.synop")["status"] == "vendor"               # Loihi 1's figure, scaled by energy.scale
    for sid in l2.quantity("core.synmem_words")["refs"]:
        src = l2.sources[sid]
        assert src["repository"].startswith("https://github.com/") and len(src["commit"]) == 40 and src["path"]
    assert load_profile("loihi1").quantity("energy.synop")["status"] == "vendor"      # migrated from 'published'
    assert load_profile("generic45nm").value("energy.fp32_mac") == 4.6
    assert l2.at("low").value("power.static_per_chip") == 0.178 and l2.at("high").value("time.synop") == 1.043
    assert l2.systems()[:2] == [("oheo_gulch", 1), ("kapoho_point", 8)]
    p = load_profile(PROFILE_DIR / "loihi2.json", ["energy.scale=0.5", "energy.synop.status=measured"])
    assert p.value("energy.scale") == 0.5 and p.quantity("energy.scale")["status"] == "assumed"
    assert p.quantity("energy.synop")["status"] == "measured"
    assert "overridden" in p.quantity("energy.scale")["source"]


def _write(tmp_path, data):
    path = tmp_path / "custom.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def _base():
    return json.loads((PROFILE_DIR / "loihi2.json").read_text())


@pytest.mark.parametrize("mutate, match", [
    (lambda d: d["energy"].pop("synop"), r"energy\.synop is missing"),
    (lambda d: d["energy"]["synop"].update(value=-1.0), r"energy\.synop: value must be positive"),
    (lambda d: d["energy"]["synop"].update(value="abc"), r"energy\.synop: value must be a number"),
    (lambda d: d["chip"]["cores_per_chip"].update(value=0), r"chip\.cores_per_chip: value must be an integer in"),
    (lambda d: d["chip"]["cores_per_chip"].update(value=12.5), r"chip\.cores_per_chip: value must be an integer"),
    (lambda d: d["energy"]["synop"].update(status="guessed"), r"energy\.synop: status must be"),
    (lambda d: d["energy"]["synop"].pop("source"), r"energy\.synop: quantity lacks source"),
    (lambda d: d["energy"]["synop"].update(unit="nJ"), r"energy\.synop: unit must be 'pJ'"),
    (lambda d: d["core"]["synmem_words"].pop("refs"), r"synmem_words: a measured quantity must cite its sources"),
    (lambda d: d["core"]["synmem_words"].update(refs=["nowhere"]), r"refs \['nowhere'\] are not in the file's sources"),
    (lambda d: d["sources"]["pilotnet-lif-A"].update(commit="main"), r"pilotnet-lif-A: commit must be 7 to 40 hex"),
    (lambda d: d["sources"]["pilotnet-lif-A"].pop("path"), r"pilotnet-lif-A: lacks path"),
    (lambda d: d["power"]["static_per_chip"].update(low=0.5), r"static_per_chip: the band needs low <= value <= high"),
    (lambda d: d["time"]["synop"].update(high="x"), r"time\.synop: high must be a number"),
    (lambda d: d["core"].pop("synmem_words"), r"core\.synmem_words is missing"),
    (lambda d: d.update(resource_model="guess"), r"key resource_model"),
    (lambda d: d["systems"]["kapoho_point"].update(value=0), r"systems\.kapoho_point: value must be an integer in"),
    (lambda d: d.update(kind="fpga"), r"key kind"),
])
def test_malformed_profiles_raise_profile_error(tmp_path, mutate, match):
    data = _base()
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(ProfileError, match=match) as info:
        load_profile(path)
    assert str(path) in str(info.value)


def test_bytes_model_keys_are_checked_on_a_bytes_profile(tmp_path):
    data = json.loads((PROFILE_DIR / "loihi1.json").read_text())
    data["memory_model"]["synapse_encoding"]["value"] = "zip"
    with pytest.raises(ProfileError, match="synapse_encoding: must be one of"):
        load_profile(_write(tmp_path, data))
    del data["resource_model"]                       # a file that names no model is a bytes profile
    data["memory_model"]["synapse_encoding"]["value"] = "shared"
    assert load_profile(_write(tmp_path, data)).resource_model == "bytes"


def test_legacy_published_status_reads_as_vendor(tmp_path):
    data = json.loads((PROFILE_DIR / "loihi1.json").read_text())
    data["energy"]["synop"]["status"] = "published"
    assert load_profile(_write(tmp_path, data)).quantity("energy.synop")["status"] == "vendor"


def test_overriding_a_banded_value_drops_its_band_and_refs():
    p = load_profile("loihi2", ["power.static_per_chip=0.3"])
    q = p.quantity("power.static_per_chip")
    assert q["status"] == "assumed" and "low" not in q and "refs" not in q and p.band("power.static_per_chip") == (0.3, 0.3)
    p = load_profile("loihi2", ["power.static_per_chip.low=0.2", "power.static_per_chip.high=0.4"])
    assert p.band("power.static_per_chip") == (0.2, 0.4) and p.value("power.static_per_chip") == 0.275
    with pytest.raises(ProfileError, match="the band needs"):
        load_profile("loihi2", ["power.static_per_chip.low=0.3"])


def test_bad_json_unknown_key_and_bad_values(tmp_path):
    path = _write(tmp_path, '{"name": "x", "kind": ')
    with pytest.raises(ProfileError, match=rf"{path}: not valid JSON"):
        load_profile(path)
    with pytest.raises(ProfileError, match=r"override energy\.synopp: no such key.*energy\.synop"):
        load_profile("loihi2", ["energy.synopp=3"])
    with pytest.raises(ProfileError, match=r"energy\.synop: value must be positive"):
        load_profile("loihi2", ["energy.synop=-2"])
    with pytest.raises(ProfileError, match=r"value must be finite|value must be a number"):
        load_profile("loihi2", ["energy.synop=NaN"])
    with pytest.raises(ProfileError, match="KEY=VALUE"):
        load_profile("loihi2", ["energy.synop"])
    with pytest.raises(ProfileError, match="unknown hardware profile 'loihi9'.*loihi2"):
        load_profile("loihi9")
    with pytest.raises(ProfileError, match="not found"):
        load_profile(tmp_path / "missing.json")


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
            assert q["status"] in ("published", "measured", "assumed") and q["source"], key
    l2 = load_profile("loihi2")
    assert l2.value("chip.cores_per_chip") == 128 and l2.value("core.memory") == 192 * 1024
    assert l2.quantity("energy.synop")["status"] == "assumed"               # Loihi 2 per-op energy is unpublished
    assert l2.quantity("core.fan_in")["status"] == "assumed"
    assert load_profile("loihi1").quantity("energy.synop")["status"] == "published"
    assert load_profile("generic45nm").value("energy.fp32_mac") == 4.6
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
    (lambda d: d["memory_model"]["synapse_encoding"].update(value="zip"), r"synapse_encoding: must be one of"),
    (lambda d: d.update(kind="fpga"), r"key kind"),
])
def test_malformed_profiles_raise_profile_error(tmp_path, mutate, match):
    data = _base()
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(ProfileError, match=match) as info:
        load_profile(path)
    assert str(path) in str(info.value)


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


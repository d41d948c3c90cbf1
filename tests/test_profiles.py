from pathlib import Path

import pytest

from deploy.errors import EdgeloopError
from deploy.profiles import available_profiles, load_profile, load_profile_file


@pytest.mark.parametrize("name", ["pixel", "pixel4", "galaxy-s23", "generic-arm64"])
def test_shipped_profiles_load_and_match_their_own_props(name: str) -> None:
    profile = load_profile(name)
    assert profile.name == name
    assert profile.matches(profile.props)
    assert profile.props["ro.product.cpu.abi"] == profile.abi


def test_runtimes_follow_units() -> None:
    assert load_profile("pixel").runtimes == ("cpu", "gpu", "gpu_fp16")
    assert load_profile("pixel4").hexagon.arch == "v66"
    assert load_profile("galaxy-s23").hexagon.kind == "htp"
    assert load_profile("generic-arm64").runtimes == ("cpu",)


def test_pixel_profile_does_not_match_a_snapdragon_phone() -> None:
    assert not load_profile("pixel").matches(load_profile("pixel4").props)
    assert not load_profile("pixel4").matches(load_profile("galaxy-s23").props)


def test_missing_runtime_is_a_clear_error() -> None:
    with pytest.raises(EdgeloopError, match="profile 'pixel' has no dsp runtime"):
        load_profile("pixel").require_runtime("dsp")


def test_unknown_profile_names_the_known_ones() -> None:
    with pytest.raises(EdgeloopError, match=r"known: .*pixel"):
        load_profile("nokia-3310")
    assert "pixel4" in available_profiles()


def test_bad_profile_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nabi: arm64-v8a\nunits: [cpu, npu]\nmatch: {}\nprops: {}\n")
    with pytest.raises(EdgeloopError,
                       match=r"bad.yaml:3: units\[1\]: unknown value 'npu' \(did you mean 'gpu'\? known: aip, cpu"):
        load_profile_file(bad)


GOOD = "name: x\nabi: arm64-v8a\nunits: [cpu]\nmatch: {ro.product.model: 'X.*'}\nprops: {}\n"


@pytest.mark.parametrize(("text", "message"), [
    (GOOD + "storage_mb: -5\n", r":6: storage_mb: must be at least 1, got -5"),
    (GOOD + "storage_mb: 4 GB\n", r":6: storage_mb: must be an integer, got '4 GB'"),
    (GOOD.replace("arm64-v8a", "arm65"), r":2: abi: unknown value 'arm65' \(known: arm64-v8a"),
    (GOOD + "storag_mb: 10\n", r":6: storag_mb: unknown key \(did you mean 'storage_mb'\?"),
    (GOOD.replace("'X.*'", "'X[('"), r":4: match.ro.product.model: not a regular expression"),
    (GOOD + "run_limit_s: 0\n", r":6: run_limit_s: must be more than 0, got 0"),
    (GOOD.replace("units: [cpu]", "units: [cpu, dsp]"), r":3: units: a profile with a dsp or aip unit needs"),
])
def test_every_profile_problem_is_named_where_it_was_written(tmp_path: Path, text: str, message: str) -> None:
    """Accepted before without a word (storage_mb: -5, an unknown ABI, a misspelt key) or a traceback
    (storage_mb: 4 GB, a bad match regex)."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(EdgeloopError, match=message):
        load_profile_file(bad)
    assert load_profile_file(_written(tmp_path / "good.yaml", GOOD)).storage_mb == 4096


def _written(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_missing_profiles_folder_points_at_edgeloop_profiles(monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    # a damaged install without deploy/device_profiles/
    monkeypatch.setattr("deploy.profiles.PROFILES_DIR", tmp_path / "absent")
    monkeypatch.delenv("EDGELOOP_PROFILES", raising=False)
    with pytest.raises(EdgeloopError) as err:
        load_profile("pixel")
    assert "EDGELOOP_PROFILES" in err.value.hint
    monkeypatch.setenv("EDGELOOP_PROFILES", str(Path(__file__).resolve().parent.parent / "deploy" / "device_profiles"))
    assert load_profile("pixel").name == "pixel"

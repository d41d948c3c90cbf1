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
    with pytest.raises(EdgeloopError, match="unknown compute unit"):
        load_profile_file(bad)


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

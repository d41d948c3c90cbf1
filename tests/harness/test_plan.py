"""Planning: models × the runtimes a profile has; explicit runtimes it lacks are kept as unsupported jobs."""

import io

import pytest

from deploy.config import load_config
from deploy.errors import EdgeloopError
from deploy.profiles import load_profile
from harness.pipeline import configured_device, deploy, left_out, plan, prepare
from tests.harness.conftest import CONFIG, config_with


def test_configured_runtimes_meet_the_profile() -> None:
    config = load_config(CONFIG)
    configured = config.models["digits"].runtimes
    for profile in ("pixel", "generic-arm64", "galaxy-s23"):
        jobs = plan(config, load_profile(profile))
        expected = [r for r in configured if r in load_profile(profile).runtimes]
        assert [j.runtime for j in jobs] == expected and all(j.unsupported is None for j in jobs)
    assert [j.runtime for j in plan(config, load_profile("generic-arm64"))] == ["cpu"]


def test_explicit_runtimes_the_profile_lacks_are_reported_not_dropped() -> None:
    config = load_config(CONFIG)
    jobs = plan(config, load_profile("pixel"), runtimes=["cpu", "aip", "cpu"])
    assert [(j.runtime, j.unsupported is None) for j in jobs] == [("cpu", True), ("aip", False)]
    assert jobs[1].unsupported == "profile 'pixel' has no aip runtime (it has cpu, gpu, gpu_fp16)"
    assert jobs[0].name == "digits/cpu"


def test_runtimes_the_profile_lacks_are_said_when_left_out(tmp_path, monkeypatch) -> None:
    """They were dropped silently: a deploy to pixel of a file asking for dsp now says it leaves dsp out,
    once its input is known good (a usage error is then its one line, with no note before it)."""
    from rich.console import Console

    from harness import pipeline

    config = load_config(CONFIG)
    assert left_out(config, load_profile("pixel")) == ["dsp"]
    assert left_out(config, load_profile("generic-arm64")) == ["gpu", "gpu_fp16", "dsp"]
    assert left_out(config, load_profile("galaxy-s23")) == []
    said = Console(file=io.StringIO(), width=300)
    (tmp_path / "file").touch()  # a report root that is a file: bad input, said alone
    with pytest.raises(EdgeloopError, match="--report-dir"):
        deploy("pixel", config_path=CONFIG, report_root=tmp_path / "file", console=said)
    assert said.file.getvalue() == ""

    def built(_job: object) -> None:  # the deploy's first work after its checks: stop it there
        raise EdgeloopError("stopped before building")

    monkeypatch.setattr(pipeline, "prepare", built)
    with pytest.raises(EdgeloopError, match="stopped before building"):
        deploy("pixel", config_path=CONFIG, report_root=tmp_path / "reports", console=said)
    assert "pixel has no dsp runtime: those jobs of" in said.file.getvalue()
    assert "--runtime" in said.file.getvalue()


def test_unknown_model_or_runtime_is_bad_input() -> None:
    config = load_config(CONFIG)
    with pytest.raises(EdgeloopError, match="no model named 'mnist'") as info:
        plan(config, load_profile("pixel"), models=["mnist"])
    assert "digits" in info.value.hint
    with pytest.raises(EdgeloopError, match="unknown runtime 'tpu'"):
        plan(config, load_profile("pixel"), runtimes=["tpu"])


def test_pack_options_of_the_deployment_file_reach_the_bundle(tmp_path, deploy_env) -> None:
    """`pack_options` override edgeloop's own default (profiling_level basic) and add to it."""
    config_path = config_with(tmp_path, pack_options="{perf_profile: burst, profiling_level: detailed}")
    job = plan(load_config(config_path), load_profile("pixel"), runtimes=["cpu"])[0]
    script = prepare(job).bundle.path.joinpath("run.sh").read_text()
    assert "--perf_profile burst" in script and "--profiling_level detailed" in script
    default = plan(load_config(CONFIG), load_profile("pixel"), runtimes=["cpu"])[0]
    assert "--profiling_level basic" in prepare(default).bundle.path.joinpath("run.sh").read_text()


def test_without_device_the_files_single_device_is_the_profile(tmp_path) -> None:
    assert configured_device(load_config(CONFIG)) == "pixel"  # edgeloop.yaml: devices: [pixel]
    (tmp_path / "two").mkdir()
    (tmp_path / "none").mkdir()
    with pytest.raises(EdgeloopError, match=r"lists several devices \(pixel, pixel4\)") as info:
        configured_device(load_config(config_with(tmp_path / "two", devices="[pixel, pixel4]")))
    assert info.value.hint == "choose one with --device"
    with pytest.raises(EdgeloopError, match="lists no devices"):
        configured_device(load_config(config_with(tmp_path / "none", devices="[]")))

"""Run settings: the command line over $EDGELOOP_HISTORY (the history only) over the deployment file's
`run:` section over the defaults (harness.settings), and matrix.yaml's keys checked by the same rule."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.errors import EdgeloopError
from harness.farm import load_matrix
from harness.measure import RunOptions
from harness.settings import DeploySettings, deploy_settings, history_location
from tests.harness.conftest import config_with

EDGELOOP = str(Path(sys.executable).parent / "edgeloop")
RUN = "{runs: 4, timeout_s: 90, cooldown_temp: 41, cpu_mask: f0, history: h/file.sqlite}"


def _settings(config: Path, **flags: str | None) -> DeploySettings:
    given = {"runs": None, "timeout": None, "cooldown_temp": None, "cpu_mask": None, "history": None} | flags
    return deploy_settings(config, **given)


def test_the_files_values_are_used_when_no_flag_is_given(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("EDGELOOP_HISTORY", raising=False)
    settings = _settings(config_with(tmp_path, run=RUN))
    assert settings == DeploySettings(runs=4, timeout_s=90.0, options=RunOptions(cooldown_c=41.0, cpu_mask="f0"),
                                      history=str(tmp_path / "h" / "file.sqlite"))


def test_flags_override_the_file_and_the_environment_overrides_its_history(tmp_path, monkeypatch) -> None:
    config = config_with(tmp_path, run=RUN)
    monkeypatch.setenv("EDGELOOP_HISTORY", str(tmp_path / "env.sqlite"))
    assert _settings(config).history == str(tmp_path / "env.sqlite")
    settings = _settings(config, runs="2", timeout="30", cooldown_temp="35", cpu_mask="3", history="off")
    assert settings == DeploySettings(runs=2, timeout_s=30.0, options=RunOptions(cooldown_c=35.0, cpu_mask="3"),
                                      history=None)


def test_without_flags_or_file_values_the_defaults_apply(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("EDGELOOP_HISTORY", raising=False)
    monkeypatch.chdir(tmp_path)
    settings = _settings(config_with(tmp_path))
    assert settings == DeploySettings(runs=1, timeout_s=600.0, options=RunOptions(), history=".edgeloop/history.sqlite")


def test_a_bad_flag_is_refused_even_where_the_file_has_a_good_value(tmp_path) -> None:
    with pytest.raises(EdgeloopError) as info:
        _settings(config_with(tmp_path, run=RUN), runs="0")
    assert (info.value.message, info.value.hint) == ("--runs must be an integer of at least 1, got 0", "e.g. --runs 5")
    with pytest.raises(EdgeloopError) as info:
        _settings(config_with(tmp_path, run=RUN), timeout="soon")
    assert info.value.message == "--timeout expects a number, got 'soon'"


def test_the_history_task_reads_the_files_history_key(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("EDGELOOP_HISTORY", raising=False)
    monkeypatch.chdir(tmp_path)
    assert history_location(None) == ".edgeloop/history.sqlite"  # no ./edgeloop.yaml: the default
    config_with(tmp_path, run="{history: off}")
    assert history_location(None) is None  # ./edgeloop.yaml turns it off
    assert history_location("x.sqlite") == "x.sqlite"


def test_deploy_refuses_a_bad_run_section_in_one_line_before_any_work(tmp_path) -> None:
    config = config_with(tmp_path, run="{cpu_mask: 'zz'}")
    done = subprocess.run([EDGELOOP, "deploy", "--config", str(config)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (f"error: {config}:7: run.cpu_mask: must be a hexadecimal mask of CPU cores, got 'zz' "
                           "(e.g. cpu_mask: f0: cores 4-7, as taskset writes it)\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edgeloop.yaml"]  # no report or history folder


@pytest.mark.parametrize("line, said", [
    ("cooldown_temp: 300", "matrix.yaml:2: cooldown_temp: must be a temperature in °C from 1 to 120, got 300"),
    ("cpu_mask: '0'", "matrix.yaml:2: cpu_mask: must be a hexadecimal mask of CPU cores, got '0'"),
    ("runs: 0", "matrix.yaml:2: runs: must be an integer of at least 1, got 0"),
])
def test_matrix_yaml_shares_the_rule_and_names_the_line(tmp_path, line, said) -> None:
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(f"profiles: [pixel]\n{line}\n")
    with pytest.raises(EdgeloopError) as info:
        load_matrix(matrix)
    assert said in info.value.message and "\n" not in info.value.message


@pytest.mark.e2e
def test_a_deploy_runs_by_the_file_with_a_flag_over_it_and_its_import_is_no_second_run(adb_server, deploy_env,
                                                                                       tmp_path: Path) -> None:
    """One emulated deploy: `--runs 3` over the file's runs: 2, the file's cpu_mask and history used;
    importing its report afterwards finds the run its deploy recorded."""
    config = config_with(tmp_path, run="{runs: 2, cpu_mask: '3', history: h/runs.sqlite}")
    env = {**{k: v for k, v in os.environ.items() if k != "EDGELOOP_HISTORY"},
           "EDGELOOP_BUILD": str(deploy_env["build"]), "EDGELOOP_HOME": str(deploy_env["home"])}

    def edgeloop(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([EDGELOOP, *args], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env,
                              stdin=subprocess.DEVNULL)

    done = edgeloop("deploy", "--config", str(config), "--emulate", "--adb", f"127.0.0.1:{adb_server.port}",
                    "--runtime", "cpu", "--runs", "3")
    assert done.returncode == 0, done.stdout + done.stderr
    where = tmp_path / "h" / "runs.sqlite"
    assert f"history: run 1 recorded in {where}" in done.stderr and not (tmp_path / ".edgeloop").exists()
    (report_json,) = (tmp_path / "reports").glob("*/report.json")
    (result,) = json.loads(report_json.read_text())["results"]
    assert result["runs"] == 3 and len(result["latency"]["run_inferences"]) == 3
    assert result["run_options"]["cpu_mask"] == "3" and result["run_options"]["cooldown_c"] is None
    again = edgeloop("history", "import", str(report_json.parent))
    assert again.returncode == 0, again.stderr
    assert f"deploy run already recorded (run 1) in {where}" in again.stdout

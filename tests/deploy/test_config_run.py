"""edgeloop.yaml's `run:` section: its values are read, and a bad one is one line naming file, line and
key, checked by the same function as deploy's flags (deploy.config.run_setting)."""

from __future__ import annotations

import pytest

from deploy.config import RunSettings, load_config, read_run_settings, run_setting
from deploy.errors import EdgeloopError
from tests.deploy.test_config import REPO, _error, _project

RUN = """\
run:
  runs: 4
  timeout_s: 90
  cooldown_temp: 41.5
  cpu_mask: F0
  history: results/history.sqlite
"""


def test_the_run_section_is_read_with_the_history_relative_to_the_file(tmp_path) -> None:
    config = load_config(_project(tmp_path, RUN + "models:" + _project_models()))
    assert config.run == RunSettings(runs=4, timeout_s=90.0, cooldown_temp=41.5, cpu_mask="f0",
                                     history=str(tmp_path / "results" / "history.sqlite"))
    assert read_run_settings(config.path) == config.run  # what deploy reads before the rest of the file


@pytest.mark.parametrize("history, kept", [("'postgresql://ci@db.example/edgeloop'", "postgresql://ci@db.example/edgeloop"),
                                           ("off", "off"), ("'OFF'", "OFF")])
def test_a_url_or_off_is_kept_as_written(tmp_path, history, kept) -> None:
    config = load_config(_project(tmp_path, f"run: {{history: {history}}}\nmodels:" + _project_models()))
    assert config.run == RunSettings(history=kept)


def test_without_a_run_section_nothing_is_set(tmp_path) -> None:
    assert load_config(_project(tmp_path, "models:" + _project_models())).run == RunSettings()


@pytest.mark.parametrize("line, said", [
    ("cooldown_temp: 300", "edgeloop.yaml:2: run.cooldown_temp: must be a temperature in °C from 1 to 120, got 300"),
    ("cpu_mask: '0'", "edgeloop.yaml:2: run.cpu_mask: must be a hexadecimal mask of CPU cores, got '0'"),
    ("cpu_mask: 10", "edgeloop.yaml:2: run.cpu_mask: must be a string, got 10"),
    ("runs: 0", "edgeloop.yaml:2: run.runs: must be an integer of at least 1, got 0"),
    ("runs: 2.0", "edgeloop.yaml:2: run.runs: must be an integer, got 2.0"),
    ("timeout_s: -1", "edgeloop.yaml:2: run.timeout_s: must be a positive number of seconds"),
    ("history: ''", "edgeloop.yaml:2: run.history: must not be empty"),
    ("history: on", "edgeloop.yaml:2: run.history: must be an SQLite file, a postgresql:// URL or off, got true"),
    ("cooldwn_temp: 40", "edgeloop.yaml:2: run.cooldwn_temp: unknown key (did you mean 'cooldown_temp'?"),
])
def test_bad_run_values_are_one_line_naming_file_line_and_key(tmp_path, line, said) -> None:
    message = _error(tmp_path, f"run:\n  {line}\nmodels:" + _project_models())
    assert said in message and "\n" not in message
    assert message.startswith(str(tmp_path / "edgeloop.yaml"))


def test_a_flag_and_the_file_are_checked_by_the_same_rule() -> None:
    with pytest.raises(EdgeloopError) as flag:
        run_setting("cooldown_temp", "300")
    with pytest.raises(EdgeloopError) as file:
        run_setting("cooldown_temp", 300, "edgeloop.yaml:2: run.cooldown_temp")
    assert flag.value.message == "--cooldown-temp must be a temperature in °C from 1 to 120, got '300'"
    assert file.value.message == "edgeloop.yaml:2: run.cooldown_temp: must be a temperature in °C from 1 to 120, " \
                                 "got 300"
    assert (flag.value.hint, file.value.hint) == ("e.g. --cooldown-temp 40", "e.g. cooldown_temp: 40")
    assert run_setting("cpu_mask", "0XF0") == "f0" and run_setting("runs", "3") == 3


def _project_models() -> str:
    """The model section of test_config's GOOD file."""
    return """
  net:
    source: model.onnx
    input_list: data/list.txt
    input_dims: {image: [1, 3, 16, 16]}
"""


@pytest.mark.parametrize(("old", "new"), [("cooldown_temp: 40", "cooldown_temp: 300"),
                                          ("cpu_mask: f0", "cpu_mask: '0'"), ("runs: 5", "runs: 0"),
                                          ("cooldown_temp: 40", "cooldwn_temp: 40")])
def test_documented_run_messages_are_what_the_code_says(tmp_path, old, new) -> None:
    """docs/config.md's run: example with one mistake each gives the message the page shows."""
    doc = (REPO / "docs/config.md").read_text()
    run = doc.split("```yaml\nrun:\n", 1)[1].split("```", 1)[0]
    example = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert old in run
    (tmp_path / "examples").symlink_to(REPO / "examples")
    (tmp_path / "edgeloop.yaml").write_text("run:\n" + run.replace(old, new, 1) + example)
    with pytest.raises(EdgeloopError) as info:
        load_config(tmp_path / "edgeloop.yaml")
    assert f"\n{str(info.value).replace(f'{tmp_path.resolve()}/', '')}\n" in doc

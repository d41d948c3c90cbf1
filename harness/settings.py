"""Run settings from where they can be given: a deploy's flag, over the deployment file's `run:` section,
over the defaults; the history's location also from $EDGELOOP_HISTORY, between the flag and the file
(docs/config.md, "Run settings"). Every value is checked by deploy.config.run_setting, wherever it comes from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.config import DEFAULT_CONFIG, RUN_FLAGS, RunSettings, find_config, read_run_settings, run_setting
from harness.console import number
from harness.history.location import required, resolve
from harness.measure import RunOptions

DEFAULT_RUNS = 1
DEFAULT_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class DeploySettings:
    runs: int
    timeout_s: float
    options: RunOptions
    history: str | None  # a location (harness.history.location), None when turned off


def deploy_settings(config: Path | None, *, runs: str | None, timeout: str | None, cooldown_temp: str | None,
                    cpu_mask: str | None, history: str | None) -> DeploySettings:
    """A deploy's settings: each flag given (its text, None when not given) over the file's value."""
    file = read_run_settings(find_config(config))

    def pick(key: str, flag: str | None, parse: type[int] | type[float] | None = None) -> Any:
        """The flag's value when given (a number it must be first, for --runs and --timeout), else the file's."""
        if flag is None:
            return getattr(file, key)
        return run_setting(key, number(flag, RUN_FLAGS[key], parse) if parse else flag)

    runs_given, timeout_given = pick("runs", runs, int), pick("timeout_s", timeout, float)
    return DeploySettings(
        runs=DEFAULT_RUNS if runs_given is None else runs_given,
        timeout_s=DEFAULT_TIMEOUT_S if timeout_given is None else timeout_given,
        options=RunOptions(cooldown_c=pick("cooldown_temp", cooldown_temp), cpu_mask=pick("cpu_mask", cpu_mask)),
        history=resolve(history, file.history))


def _configured(config: Path | None) -> tuple[RunSettings, Path | None]:
    """The run section of `config`, else of ./edgeloop.yaml when there is one (a command that only reads
    the history needs no deployment file)."""
    if config is None and not Path(DEFAULT_CONFIG).is_file():
        return RunSettings(), None
    path = find_config(config)
    return read_run_settings(path), path


def history_location(option: str | None, config: Path | None = None) -> str | None:
    """Where a run is recorded, or None: `--history`, else $EDGELOOP_HISTORY, else `config`'s (or
    ./edgeloop.yaml's) run.history, else the default."""
    return resolve(option, _configured(config)[0].history)


def required_history(option: str | None) -> str:
    """As history_location, for a command that needs a history (`edgeloop history`, its import): off is an error."""
    settings, path = _configured(None)
    return required(option, settings.history, path)

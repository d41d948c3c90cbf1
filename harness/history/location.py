"""Where the history is: `--history`, else $EDGELOOP_HISTORY, else the deployment file's `run.history`, else
`.edgeloop/history.sqlite` in the current folder (beside `build/` and `reports/`). A value is an SQLite
file's path or a `postgresql://` URL; `off` records nothing."""

from __future__ import annotations

import os
import re
from pathlib import Path

from deploy.errors import EdgeloopError

ENV = "EDGELOOP_HISTORY"
DEFAULT = Path(".edgeloop") / "history.sqlite"
OFF = "off"
_URL = re.compile(r"^postgres(ql)?://", re.IGNORECASE)


def resolve(option: str | None, configured: str | None = None) -> str | None:
    """The history to use (`configured`: the deployment file's), or None when it is turned off."""
    value = option or os.environ.get(ENV) or configured or str(DEFAULT)
    return None if value.strip().lower() == OFF else value


def is_postgres(location: str) -> bool:
    return bool(_URL.match(location))


def describe(location: str) -> str:
    """The location as messages name it: a URL without its password."""
    return re.sub(r"(://[^/:@]*):[^/@]*@", r"\1:***@", location) if is_postgres(location) else location


def required(option: str | None, configured: str | None = None, file: Path | None = None) -> str:
    """The history, for a command that reads or imports into it (`configured`: the deployment file `file`'s):
    turned off, there is none."""
    location = resolve(option, configured)
    if location is None:
        said = "--history" if option else f"${ENV}" if os.environ.get(ENV) else f"{file}: run.history:"
        raise EdgeloopError(f"the history is off ({said} {OFF})", "give --history PATH or URL")
    return location

"""One exception family for problems the user can fix, caught once at the command line."""

from __future__ import annotations

import errno
from pathlib import Path


class EdgeloopError(Exception):
    """Bad input or environment: printed as one line (plus a hint), exit code 2."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class CheckFailed(EdgeloopError):
    """A check ran and failed (accuracy, regression, device run): exit code 1."""

    exit_code = 1


class DeviceError(EdgeloopError):
    """The device or adb server misbehaved (vanished, timed out, refused)."""

    exit_code = 3


class InternalError(EdgeloopError):
    """An exception nobody expected (a bug of edgeloop's), reported in one line with where its
    traceback was saved: exit code 4."""

    exit_code = 4


class Interrupted(KeyboardInterrupt):
    """Ctrl-C after the reports of what did finish were written: `reports` says where they are, so the
    one line printed at the command line can name them."""

    def __init__(self, reports: str) -> None:
        super().__init__(reports)
        self.reports = reports


def disk_full(exc: BaseException, where: Path | str | None = None) -> EdgeloopError | None:
    """A full disk or quota as one line naming the folder (`where`, else that of the file the error
    names): it is the environment, not a bug; None otherwise."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        where = where or (Path(exc.filename).parent if exc.filename else "the output folder")
        return EdgeloopError(f"no space left on the disk of {where}", "free some space there, or write elsewhere")
    return None

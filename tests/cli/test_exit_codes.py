"""Exit codes at the command line (issue 14): 2 bad input (a full disk included), 1 a check failed,
3 device or adb server, 4 an internal error (one line naming its saved traceback; `--debug` prints
it), 130 interrupted."""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.errors import CheckFailed, DeviceError, EdgeloopError
from harness import console
from harness.console import user_errors


def _exit_of(exc: BaseException, capsys, monkeypatch, tmp_path: Path) -> tuple[int, str]:
    monkeypatch.delenv(console.DEBUG_ENV, raising=False)
    monkeypatch.setattr(console, "crash_dir", lambda: tmp_path / "crashes")

    @user_errors
    def task(c) -> None:
        raise exc

    with pytest.raises(SystemExit) as info:
        task(None)
    return int(info.value.code), capsys.readouterr().err


@pytest.mark.parametrize(("exc", "code"), [(EdgeloopError("bad"), 2), (CheckFailed("worse"), 1),
                                           (DeviceError("gone"), 3), (KeyboardInterrupt(), 130)])
def test_each_kind_of_failure_has_its_code(exc, code, capsys, monkeypatch, tmp_path: Path) -> None:
    assert _exit_of(exc, capsys, monkeypatch, tmp_path)[0] == code


def test_an_internal_error_is_one_line_exit_4_and_its_traceback_is_kept(capsys, monkeypatch, tmp_path: Path) -> None:
    code, err = _exit_of(ZeroDivisionError("division by zero"), capsys, monkeypatch, tmp_path)
    assert code == 4 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "internal error: ZeroDivisionError: division by zero" in err and "--debug" in err
    (saved,) = (tmp_path / "crashes").iterdir()
    assert str(saved) in err and "Traceback (most recent call last)" in saved.read_text()
    assert oct((tmp_path / "crashes").stat().st_mode & 0o777) == "0o700"


def test_a_full_disk_is_one_line_naming_the_folder(capsys, monkeypatch, tmp_path: Path) -> None:
    full = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "reports" / "report.json"))
    code, err = _exit_of(full, capsys, monkeypatch, tmp_path)
    assert code == 2 and f"no space left on the disk of {tmp_path / 'reports'}" in err
    assert not (tmp_path / "crashes").exists()  # not a bug: nothing saved


def test_debug_prints_the_traceback(tmp_path: Path) -> None:
    """`edgeloop --debug`: an error keeps its traceback (here a bad input, which is otherwise one line)."""
    edgeloop = Path(sys.executable).with_name("edgeloop")
    plain = subprocess.run([str(edgeloop), "info", "--container", str(tmp_path / "none.onnx")],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path)
    debug = subprocess.run([str(edgeloop), "--debug", "info", "--container", str(tmp_path / "none.onnx")],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert "Traceback (most recent call last)" in debug.stderr and "none.onnx" in debug.stderr


@pytest.mark.parametrize(("argv", "expected"), [
    (["--config", "mine.yaml", "deploy", "--device", "pixel"], "error: mine.yaml: no deployment file"),
    (["-f", "mine.yaml", "clean"], "error: --config names a deployment file, and clean takes none (tasks that take "
                                   "one: deploy)"),
])
def test_config_before_the_task_is_the_deployment_file(tmp_path: Path, argv: list[str], expected: str) -> None:
    """`edgeloop --config X deploy` was taken as invoke's runtime configuration (issue 14): it is the
    deployment file, as after the task name, or an error for a task that takes none."""
    edgeloop = Path(sys.executable).with_name("edgeloop")
    result = subprocess.run([str(edgeloop), *argv], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.strip().startswith(expected), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

"""A report folder that cannot be written: one line names it and says why, and no half set of reports is left.

Every case here fails for root too (a path under a regular file, a folder where a file goes, a full disk
simulated at the write): CI may run the tests as root, for whom a chmod'ed folder is writable.
"""

import errno
import sys
from pathlib import Path

import pytest

from deploy.errors import CheckFailed, EdgeloopError, Interrupted
from harness.pipeline import DeployOutcome, deploy
from harness.report import ReportPaths, ReportsNotWritten, write_reports
from tests.harness.conftest import CONFIG
from tests.harness.test_report import sample_results


def _write(folder: Path) -> ReportPaths:
    return write_reports(sample_results(), folder, devices={}, title="t")


def test_a_folder_under_a_regular_file_is_named_with_the_file_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    folder = tmp_path / "file" / "run"
    with pytest.raises(ReportsNotWritten) as info:
        _write(folder)
    assert info.value.folder == folder and info.value.exit_code == 2
    assert str(info.value).startswith(f"no report was written to {folder}: {tmp_path / 'file'} is a file, not a folder")
    assert "\n" not in str(info.value)


def test_one_report_that_cannot_be_written_leaves_none_of_the_three(tmp_path: Path) -> None:
    folder = tmp_path / "r"
    (folder / "junit.xml").mkdir(parents=True)  # the last of the three cannot be written
    with pytest.raises(ReportsNotWritten, match=r"junit\.xml"):
        _write(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["junit.xml"]  # no report.json, no temporaries


def test_a_full_disk_is_said_as_the_command_line_says_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(self: Path, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(ReportsNotWritten) as info:
        _write(tmp_path / "r")
    assert info.value.why == f"no space left on the disk of {tmp_path / 'r'}"
    assert not list((tmp_path / "r").iterdir())


def _outcome(results: list, tmp_path: Path) -> DeployOutcome:
    folder = tmp_path / "r"
    unwritten = ReportsNotWritten(folder, "Read-only file system")
    return DeployOutcome(results, ReportPaths.of(folder), "emu", unwritten=unwritten)


def test_the_verdict_keeps_its_exit_code_and_the_line_says_no_report_was_written(tmp_path: Path) -> None:
    with pytest.raises(CheckFailed) as failed:
        _outcome(sample_results(), tmp_path).check()
    assert failed.value.exit_code == 1 and "see " not in str(failed.value)
    assert str(failed.value) == ("2 of 4 deploy checks did not pass (digits/gpu, digits/dsp) "
                                 f"(no report was written to {tmp_path / 'r'}: Read-only file system)")
    passed = [r for r in sample_results() if r.passed]
    with pytest.raises(EdgeloopError) as bad:  # all passed, but CI gets no junit.xml: the environment's fault
        _outcome(passed, tmp_path).check()
    assert type(bad.value) is ReportsNotWritten and bad.value.exit_code == 2


@pytest.mark.e2e
def test_a_deploy_whose_report_folder_cannot_be_made_finishes_with_one_line(adb_server, deploy_env, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch,
                                                                           capsys: pytest.CaptureFixture) -> None:
    """The folder goes bad after the start-up check (a file put where it goes): the jobs are errors
    that say their run folder could not be written, and the deploy ends on the verdict's exit code."""
    from tasks import main

    (tmp_path / "file").write_text("in the way")
    folder = tmp_path / "file" / "run"
    monkeypatch.setattr("harness.pipeline.new_report_dir", lambda root, device: folder)
    monkeypatch.setattr(sys, "argv", ["edgeloop", "deploy", "--emulate", "--config", str(CONFIG), "--runtime", "cpu",
                                      "--adb", f"127.0.0.1:{adb_server.port}",
                                      "--report-dir", str(tmp_path / "reports")])
    with pytest.raises(SystemExit) as exited:
        main()
    out, err = capsys.readouterr()
    assert exited.value.code == 1, out + err
    assert "Traceback" not in out + err and "internal error" not in err
    assert f"digits/cpu: error: cannot write its run folder {folder / 'runs' / 'digits-cpu'} " \
           f"({tmp_path / 'file'} is a file, not a folder)" in " ".join(out.split())
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert line == (f"error: 1 of 1 deploy checks did not pass (digits/cpu) (no report was written to {folder}: "
                    f"{tmp_path / 'file'} is a file, not a folder)")
    assert (tmp_path / "file").read_text() == "in the way" and list((tmp_path / "reports").iterdir()) == []


@pytest.mark.e2e
def test_ctrl_c_with_no_report_written_says_so_instead_of_naming_reports(adb_server, deploy_env, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "file").write_text("in the way")
    folder = tmp_path / "file" / "run"
    monkeypatch.setattr("harness.pipeline.new_report_dir", lambda root, device: folder)

    def ctrl_c(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("harness.pipeline.run_job", ctrl_c)
    with pytest.raises(Interrupted) as info:
        deploy(None, config_path=CONFIG, runtimes=["cpu"], adb=f"127.0.0.1:{adb_server.port}", emulate=True,
               report_root=tmp_path / "reports")
    assert info.value.reports == f"none written to {folder}: {tmp_path / 'file'} is a file, not a folder"

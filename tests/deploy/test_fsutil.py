"""Atomic writes: a target that cannot be a file is one clear error, nothing is left beside it, and
artifacts get ordinary permissions."""

import errno
import json
import os
import stat
from pathlib import Path

import pytest

from deploy.cache import staging_dir
from deploy.errors import EdgeloopError
from deploy.fsutil import atomic_path, atomic_write_text, check_writable


def test_a_folder_as_target_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    with pytest.raises(EdgeloopError, match="is a folder, not a file name"):
        atomic_write_text(tmp_path / "out", "x")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_file_standing_for_the_parent_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("")
    with pytest.raises(EdgeloopError, match=f"{tmp_path / 'plain'} is a file, not a folder"):
        atomic_write_text(tmp_path / "plain" / "sub" / "c.onnx", "x")


@pytest.mark.parametrize("target", ["/proc/x.onnx", "/sys/x.onnx", "/proc/new/x.onnx"])
def test_a_folder_that_takes_no_files_is_one_line_naming_it(target: str) -> None:
    """/proc and /sys refuse new files even to root (a chmod 0555 folder would not)."""
    with pytest.raises(EdgeloopError) as info:
        atomic_write_text(target, "x")
    assert info.value.message.startswith(f"cannot write {target}: the folder /") and "\n" not in str(info.value)
    assert ".tmp" not in str(info.value)


@pytest.mark.parametrize(("code", "words"), [(errno.ENOSPC, "no space left on the disk of {folder}"),
                                             (errno.EDQUOT, "no space left on the disk of {folder}"),
                                             (errno.EROFS, "Read-only file system"),
                                             (errno.EACCES, "Permission denied")])
def test_a_failed_write_names_the_target_and_its_folder_not_the_temporary(tmp_path: Path, code: int,
                                                                          words: str) -> None:
    target = tmp_path / "out" / "c.onnx"
    with pytest.raises(EdgeloopError) as info, atomic_path(target) as tmp:
        raise OSError(code, os.strerror(code), str(tmp))
    assert info.value.message.startswith(f"cannot write {target}: " if "space" not in words else "no space")
    assert words.format(folder=target.parent) in info.value.message and ".tmp" not in str(info.value)
    assert list((tmp_path / "out").iterdir()) == []


def test_a_place_is_checked_before_the_work_and_left_as_it_was(tmp_path: Path) -> None:
    check_writable(tmp_path / "new" / "x.json")
    assert [p.name for p in tmp_path.iterdir()] == ["new"] and not list((tmp_path / "new").iterdir())
    with pytest.raises(EdgeloopError, match=r"^cannot write /proc/x\.json: the folder /proc cannot take new files"):
        check_writable("/proc/x.json")


def test_a_source_missing_inside_the_block_stays_its_own_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError), atomic_path(tmp_path / "c.onnx"):
        (tmp_path / "source.onnx").read_bytes()


def test_a_staging_folder_that_fills_the_disk_names_the_cache_folder(tmp_path: Path) -> None:
    entry = tmp_path / "cache" / "convert" / "key"
    with pytest.raises(EdgeloopError) as info, staging_dir(entry) as tmp:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp / "m.onnx"))
    assert f"no space left on the disk of {entry.parent}" in info.value.message
    assert list(entry.parent.iterdir()) == []


def test_a_long_name_is_shortened_in_the_message(tmp_path: Path) -> None:
    target = tmp_path / ("x" * 300)
    with pytest.raises(EdgeloopError) as info:
        atomic_write_text(target, "x")
    assert "the name is too long" in info.value.message and len(info.value.message) < 200


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    atomic_write_text(tmp_path / "a.txt", "old")
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "a.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"] and (tmp_path / "a.txt").read_text() == "old"


def test_artifacts_get_the_umask_permissions_not_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "report.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "report.json").stat().st_mode) == 0o644


def test_a_mode_set_inside_the_block_is_kept(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "run.sh") as tmp:
        tmp.write_text("echo hi\n")
        tmp.chmod(0o755)
    assert stat.S_IMODE((tmp_path / "run.sh").stat().st_mode) == 0o755


def test_a_file_is_hashed_once_while_it_stays_the_same(tmp_path: Path, monkeypatch) -> None:
    """The digest book keys each file by its stat: an unchanged file is not read again, in this process
    or the next (digests.json); a changed one is; one changed just now is not written down."""
    import hashlib

    from deploy import fsutil

    monkeypatch.setenv("EDGELOOP_BUILD", str(tmp_path / "build"))
    data = tmp_path / "model.onnx"
    data.write_bytes(b"weights" * 1000)
    old = 1_500_000_000
    os.utime(data, (old, old))
    reads: list[str] = []
    real = fsutil._hash_file
    monkeypatch.setattr(fsutil, "_hash_file", lambda path: reads.append(str(path)) or real(path))
    book = fsutil._DigestBook()
    expected = hashlib.sha256(data.read_bytes()).hexdigest()
    assert book.sha256(data) == expected and book.sha256(data) == expected and len(reads) == 1
    book.flush()
    assert fsutil._DigestBook().sha256(data) == expected and len(reads) == 1  # the next process trusts it
    data.write_bytes(b"other" * 1000)  # same path, new content (and mtime now: too recent to record)
    assert book.sha256(data) == hashlib.sha256(data.read_bytes()).hexdigest() and len(reads) == 2
    book.sha256(data)
    assert len(reads) == 3  # still racy, so hashed again rather than trusted
    book.flush()
    assert str(data.resolve()) not in json.loads((tmp_path / "build" / "cache" / "digests.json").read_text())

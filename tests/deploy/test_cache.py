"""The build cache: hits build nothing, failures leave nothing, keys follow content."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.cache import cache_key, cached, cached_copy, clean
from deploy.errors import EdgeloopError


def _writer(calls: list[Path], text: str = "artifact"):
    def build(tmp: Path) -> None:
        calls.append(tmp)
        (tmp / "out.bin").write_text(text)
    return build


def test_miss_builds_then_hit_does_not(tmp_path: Path) -> None:
    calls: list[Path] = []
    first = cached("thing", {"sha": "abc", "opt": 1}, _writer(calls), "out.bin", root=tmp_path)
    assert not first.hit and first.path.read_text() == "artifact"
    assert first.path.parent.parent == tmp_path / "cache" / "thing"
    second = cached("thing", {"opt": 1, "sha": "abc"}, _writer(calls, "other"), "out.bin", root=tmp_path)
    assert second.hit and second.path == first.path
    assert len(calls) == 1 and second.path.read_text() == "artifact"


def test_key_depends_on_parts_and_kind() -> None:
    base = cache_key("a", {"x": 1})
    assert base == cache_key("a", {"x": 1})
    assert base != cache_key("a", {"x": 2})
    assert base != cache_key("b", {"x": 1})


def test_failing_build_leaves_nothing(tmp_path: Path) -> None:
    def build(tmp: Path) -> None:
        (tmp / "out.bin").write_text("half")
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        cached("thing", {"k": 1}, build, "out.bin", root=tmp_path)
    assert list((tmp_path / "cache" / "thing").iterdir()) == []
    calls: list[Path] = []
    again = cached("thing", {"k": 1}, _writer(calls), "out.bin", root=tmp_path)
    assert not again.hit and calls and again.path.read_text() == "artifact"


def test_build_that_forgets_the_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"did not write out\.bin"):
        cached("thing", {}, lambda tmp: None, "out.bin", root=tmp_path)
    assert list((tmp_path / "cache" / "thing").iterdir()) == []


def test_root_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGELOOP_BUILD", str(tmp_path / "b"))
    result = cached("thing", {}, _writer([]), "out.bin")
    assert result.path.is_relative_to(tmp_path / "b" / "cache")


def test_clean_removes_folders_but_never_the_working_directory(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    cached("thing", {}, _writer([]), "out.bin", root=tmp_path / "build")
    (tmp_path / "reports").mkdir()
    monkeypatch.chdir(tmp_path)
    assert clean([Path("build"), Path("reports"), Path("absent")]) == [Path("build"), Path("reports")]
    assert not (tmp_path / "build").exists() and not (tmp_path / "reports").exists()
    with pytest.raises(EdgeloopError, match="refusing to delete"):
        clean([Path(".")])
    assert tmp_path.is_dir()


def test_clean_removes_a_link_in_a_folders_place_not_what_it_leads_to(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "victim").mkdir()
    (tmp_path / "victim" / "keep.txt").write_text("precious")
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "cache").symlink_to(tmp_path / "victim")
    (tmp_path / "reports").symlink_to(tmp_path / "victim")
    monkeypatch.chdir(tmp_path)
    assert clean([Path("build/cache"), Path("reports")]) == [Path("build/cache"), Path("reports")]
    assert not (tmp_path / "build" / "cache").is_symlink() and not (tmp_path / "reports").is_symlink()
    assert (tmp_path / "victim" / "keep.txt").read_text() == "precious"


def test_cached_copy_writes_the_output_and_keeps_the_cache_entry(tmp_path: Path) -> None:
    calls: list[Path] = []
    first = cached_copy("thing", {"sha": "c"}, _writer(calls), "out.bin", tmp_path / "o" / "a.bin", root=tmp_path)
    assert first == type(first)(tmp_path / "o" / "a.bin", False) and first.path.read_text() == "artifact"
    second = cached_copy("thing", {"sha": "c"}, _writer(calls, "other"), "out.bin", tmp_path / "b.bin",
                         root=tmp_path)
    assert second.hit and second.path.read_text() == "artifact" and len(calls) == 1
    assert cached_copy("thing", {"sha": "c"}, _writer(calls), "out.bin", None, root=tmp_path).path.parent.parent \
        == tmp_path / "cache" / "thing"

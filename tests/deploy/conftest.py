"""Fixtures shared by the deploy tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def build_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A build root of the test's own, so caches never leak between tests."""
    root = tmp_path / "build"
    monkeypatch.setenv("EDGELOOP_BUILD", str(root))
    return root

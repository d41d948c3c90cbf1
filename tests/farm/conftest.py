"""Farm fixtures: a second private adb server (the first is tests/conftest.py's `adb_server`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import AdbServer, private_adb_server


@pytest.fixture
def second_adb_server() -> Iterator[AdbServer]:
    """Another adb server on its own free port, for this test alone: a second farm host, or a server
    that lists no device of other tests."""
    with private_adb_server() as server:
        yield server

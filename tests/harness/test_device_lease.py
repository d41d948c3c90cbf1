"""The lease on the device is never left behind: taken atomically (its owner record is in place before
the lease is visible), an unreadable record is stale after a short grace, and a session frees its lease
however it ends (an error, Ctrl-C, a connection cut) as long as the device answers."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from deploy.errors import DeviceError
from harness import session as session_module
from harness.lease import UNREADABLE_GRACE_S
from harness.transfer import DEVICE_ROOT
from tests.harness.conftest import open_session


def _lease(running) -> Path:
    return Path(running.sandbox_root) / str(DEVICE_ROOT).lstrip("/") / "lease"


def test_a_full_device_refuses_the_lease_and_leaves_none(adb_server, start_emulated) -> None:
    running = start_emulated("pixel")
    running.set_faults(storage_full=True)
    with pytest.raises(DeviceError, match="No space left on device"), open_session(adb_server, running):
        pass
    assert not _lease(running).exists()
    running.set_faults(storage_full=False)
    with open_session(adb_server, running, lease_timeout=1) as session:  # not "in use by pid 0 on ?"
        assert json.loads((_lease(running) / "owner").read_text())["token"] == session.lease.token
    assert not _lease(running).exists()


def test_a_lease_without_a_readable_owner_is_stale_after_a_short_grace(adb_server, start_emulated) -> None:
    """As a lease of an older edgeloop that was cut off between making the folder and writing its owner."""
    running = start_emulated("pixel")
    lease = _lease(running)
    lease.mkdir(parents=True)
    (lease / "owner").write_text("")
    past = time.time() - UNREADABLE_GRACE_S - 5
    os.utime(lease, (past, past))
    started = time.monotonic()
    with open_session(adb_server, running, lease_timeout=UNREADABLE_GRACE_S) as session:
        assert json.loads((lease / "owner").read_text())["token"] == session.lease.token
    assert time.monotonic() - started < UNREADABLE_GRACE_S


def test_ctrl_c_right_after_the_lease_was_taken_frees_it(adb_server, start_emulated, monkeypatch) -> None:
    running = start_emulated("pixel")

    def interrupted(*_args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(session_module.Store, "parse", interrupted)
    with pytest.raises(KeyboardInterrupt), open_session(adb_server, running):
        pass
    assert not _lease(running).exists()


def test_a_session_cut_off_mid_push_still_frees_its_lease(adb_server, start_emulated, deploy_env) -> None:
    from harness.pipeline import prepare
    from tests.harness.test_device_store import _cpu_job

    bundle = prepare(_cpu_job()).bundle
    running = start_emulated("pixel")
    with pytest.raises(DeviceError), open_session(adb_server, running) as session:
        running.set_faults(drop_after_bytes=3000)  # every connection: the index and the batched close too
        session.install(bundle)
    assert not _lease(running).exists()

"""Leases: exclusive across processes, holder records, stale and overdue holders are visible."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path

import pytest

from harness.lease import LeaseBook, lease_key


def _hold(lock_dir: str, key: str, ready: multiprocessing.synchronize.Event, release: multiprocessing.synchronize.Event,
          lease_s: float) -> None:
    lease = LeaseBook(Path(lock_dir)).try_acquire(key, "other-process", lease_s=lease_s)
    assert lease is not None
    ready.set()
    release.wait(30)
    lease.release()


def _crash_holding(lock_dir: str, key: str) -> None:
    LeaseBook(Path(lock_dir)).try_acquire(key, "crashing", lease_s=60)
    os._exit(1)  # no release: the kernel frees the lock, the holder record stays behind


@pytest.fixture
def ctx() -> multiprocessing.context.BaseContext:
    return multiprocessing.get_context("spawn")


def test_lease_excludes_another_process_until_released(tmp_path: Path, ctx) -> None:
    key = lease_key("127.0.0.1:5037", "emulator-5554")
    ready, release = ctx.Event(), ctx.Event()
    other = ctx.Process(target=_hold, args=(str(tmp_path), key, ready, release, 60.0))
    other.start()
    try:
        assert ready.wait(30)
        book = LeaseBook(tmp_path)
        assert book.try_acquire(key, "me", lease_s=10, wait_s=0.1) is None
        holder = book.holder(key)
        assert holder is not None and holder.pid == other.pid and holder.job == "other-process"
        assert holder.alive() and not holder.expired()
        seen = []  # a waiter is told who holds the device, at each poll
        assert book.acquire(key, "me", lease_s=10, wait_s=0.3, on_wait=seen.append) is None
        assert seen and all(h.job == "other-process" for h in seen)
        release.set()
        lease = book.acquire(key, "me", lease_s=10, wait_s=30)
        assert lease is not None and book.holder(key).pid == os.getpid()
        lease.release()
        assert book.holder(key) is None
    finally:
        release.set()
        other.join(30)


def test_holder_past_its_lease_is_reported_while_waiting(tmp_path: Path, ctx) -> None:
    key = "dev"
    ready, release = ctx.Event(), ctx.Event()
    other = ctx.Process(target=_hold, args=(str(tmp_path), key, ready, release, 0.05))
    other.start()
    try:
        assert ready.wait(30)
        seen = []
        deadline = time.monotonic() + 10
        while not (seen and seen[-1].expired()) and time.monotonic() < deadline:
            LeaseBook(tmp_path).acquire(key, "me", lease_s=10, wait_s=0.1, on_wait=seen.append)
        assert seen[-1].expired() and seen[-1].pid == other.pid
        assert f"pid {other.pid}" in seen[-1].describe() and "job 'other-process'" in seen[-1].describe()
    finally:
        release.set()
        other.join(30)


def test_crashed_holder_leaves_a_stale_record_that_is_recovered(tmp_path: Path, ctx) -> None:
    crashed = ctx.Process(target=_crash_holding, args=(str(tmp_path), "dev"))
    crashed.start()
    crashed.join(30)
    record = json.loads((tmp_path / "dev.holder.json").read_text())
    assert record["pid"] == crashed.pid
    lease = LeaseBook(tmp_path).try_acquire("dev", "me", lease_s=10)
    assert lease is not None and lease.stale is not None
    assert lease.stale.pid == crashed.pid and not lease.stale.alive()
    lease.release()

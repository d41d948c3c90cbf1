"""The emulated device's adb transport against hosts that misbehave or are merely old (issue 12):
floods cost bounded memory, running out of descriptors or holding many connections never stops it
accepting, a host's CLSE is answered, a host of protocol version 0x01000000 gets checksums. A raw
client speaks the protocol here, byte by byte, as an attacker would."""

from __future__ import annotations

import resource
import socket
import time
from pathlib import Path

from emulator.proto import A_CLSE, A_OKAY, A_OPEN, A_WRTE, HEADER
from tests.conftest import wait_until
from tests.emulator.rawadb import Key, RawHost, checksum

SKIP_CHECKSUM, CHECKSUMMED = 0x01000001, 0x01000000


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _flood(host: RawHost, remote: int, payload: bytes, seconds: float) -> int:
    """WRTE after WRTE without waiting for OKAY, for `seconds`; returns the bytes the socket took."""
    sent = 0
    host.sock.settimeout(0.5)
    deadline = time.monotonic() + seconds
    head = HEADER.pack(A_WRTE, 1, remote, len(payload), 0, A_WRTE ^ 0xFFFFFFFF)
    while time.monotonic() < deadline:
        try:
            host.sock.sendall(head + payload)
        except TimeoutError:
            continue  # the device stopped reading: TCP pushes back
        sent += len(payload)
    return sent


def test_a_wrte_flood_and_unread_stdin_cost_bounded_memory(start_emulated, adb_test_key: Key) -> None:
    """Without waiting for OKAY, a host grew the device to 1.3 GB in 4.6 s; stdin to a sleeping command
    grew it to 1.1 GB."""
    running = start_emulated("pixel", connect=False, adb_keys=(adb_test_key.public,))
    before = _rss_kb(running.pid)
    payload = b"x" * 4096
    # a command that never reads its stdin: the device stops reading the host (TCP pushes back); a
    # sync session fed garbage: it ends the stream and drops what follows
    for service, held in (("shell:sleep 30", True), ("sync:", False)):
        host = RawHost(running.port, adb_test_key)
        try:
            remote = host.open(service)
            sent = _flood(host, remote, payload, 3.0)
        finally:
            host.close()
        grown_mb = (_rss_kb(running.pid) - before) / 1024
        assert grown_mb < 64, f"{service}: the device grew by {grown_mb:.0f} MB"
        if held:
            assert sent < 16 << 20, f"{service}: the device took {sent >> 20} MB that nothing reads"
    assert RawHost(running.port, adb_test_key).open("shell:echo ok")  # and it still serves


def test_running_out_of_descriptors_never_stops_the_device_accepting(start_emulated, adb_test_key: Key) -> None:
    """Any OSError in the accept loop (EMFILE with 1100 held connections) stopped accepting for good."""
    running = start_emulated("pixel", connect=False, adb_keys=(adb_test_key.public,))
    open_now = len(list(Path(f"/proc/{running.pid}/fd").iterdir()))
    soft, hard = resource.prlimit(running.pid, resource.RLIMIT_NOFILE)
    resource.prlimit(running.pid, resource.RLIMIT_NOFILE, (open_now + 8, hard))
    held = []
    try:
        for _ in range(40):  # past the free descriptors, then past the listen backlog (connect times out)
            try:
                held.append(socket.create_connection(("127.0.0.1", running.port), timeout=1))
            except TimeoutError:
                break
        wait_until(lambda: any(e["event"] == "accept-error" for e in running.events()), "accept to fail")
    finally:
        for sock in held:
            sock.close()
    resource.prlimit(running.pid, resource.RLIMIT_NOFILE, (soft, hard))
    host = wait_until(lambda: _try_host(running.port, adb_test_key), "the device to accept again")
    remote = host.open("shell:echo back")
    assert host.expect(A_WRTE)[4] == b"back\n" and remote


def _try_host(port: int, key: Key) -> RawHost | None:
    try:
        return RawHost(port, key)
    except (OSError, EOFError):
        return None


MAX_CONNECTIONS = 64  # emulator.adbd.MAX_CONNECTIONS, as docs/emulator.md gives it


def test_connections_past_the_cap_are_refused_cleanly_and_the_device_goes_on(start_emulated, adb_test_key: Key) -> None:
    running = start_emulated("pixel", connect=False, adb_keys=(adb_test_key.public,))
    held = [socket.create_connection(("127.0.0.1", running.port), timeout=5) for _ in range(MAX_CONNECTIONS)]
    try:
        wait_until(lambda: sum(e["event"] == "connect" for e in running.events()) >= MAX_CONNECTIONS,
                   "the connections to be served")
        extra = socket.create_connection(("127.0.0.1", running.port), timeout=5)
        assert extra.recv(1) == b""  # closed at once, not left hanging
        assert any(e["event"] == "connection-refused" for e in running.events())
    finally:
        for sock in held:
            sock.close()
    host = wait_until(lambda: _try_host(running.port, adb_test_key), "a free slot")
    assert host.open("shell:true")


def test_a_hosts_clse_is_answered(start_emulated, adb_test_key: Key) -> None:
    """adb-shell waits for the device's CLSE after its own: unanswered, each of its sync calls hung 10 s."""
    running = start_emulated("pixel", connect=False, adb_keys=(adb_test_key.public,))
    host = RawHost(running.port, adb_test_key)
    remote = host.open("sync:")
    start = time.monotonic()
    host.send(A_CLSE, 1, remote)
    _, arg0, arg1, _, _ = host.expect(A_CLSE)
    assert (arg0, arg1) == (remote, 1) and time.monotonic() - start < 2


def test_a_host_of_version_0x01000000_gets_checksums(start_emulated, adb_test_key: Key) -> None:
    """The pure-Python adb-shell asks for version 0x01000000 and checks every payload's checksum."""
    running = start_emulated("pixel", connect=False, adb_keys=(adb_test_key.public,))
    host = RawHost(running.port, adb_test_key, version=CHECKSUMMED)
    host.send(A_OPEN, 1, 0, b"shell:echo checksummed\0")
    _, remote, _, _, _ = host.expect(A_OKAY)
    _, _, _, sum_, data = host.expect(A_WRTE)
    assert data == b"checksummed\n" and sum_ == checksum(data) != 0
    # the banner too; a current host still gets none (0x01000001: "skip checksum")
    fresh = RawHost(running.port, adb_test_key)
    assert fresh.banner[3] == 0 and remote


def test_the_device_answers_its_own_version_to_an_old_host(start_emulated, adb_test_key: Key) -> None:
    running = start_emulated("pixel", connect=False, adb_keys=(adb_test_key.public,))
    old = RawHost(running.port, adb_test_key, version=CHECKSUMMED)
    assert old.banner[1] == CHECKSUMMED and old.banner[3] == checksum(old.banner[4])
    assert RawHost(running.port, adb_test_key).banner[1] == SKIP_CHECKSUM

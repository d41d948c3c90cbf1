"""Shell services (shell,v2 / shell: / exec:) through real clients, and the transport's robustness
against malformed packets on raw sockets."""

from __future__ import annotations

import errno
import json
import socket
import stat
import struct
import subprocess
from collections.abc import Iterator

import adbutils
import pytest

from deploy.profiles import load_profile
from emulator.adbd import AdbDevice, listen
from emulator.device import EmulatedDevice
from emulator.lifecycle import RunningDevice
from emulator.proto import A_CLSE, A_CNXN, A_OKAY, A_OPEN, A_WRTE, HEADER, MAX_PAYLOAD, VERSION, header
from tests.conftest import wait_until
from tests.emulator.rawadb import Key, RawHost
from tests.emulator.test_shell_support import OWNERS


@pytest.fixture
def device(adb_server, emulated_pixel: RunningDevice) -> adbutils.AdbDevice:
    return adb_server.client.device(emulated_pixel.serial)


def test_shell_v2_exit_code_stdout_stderr(device: adbutils.AdbDevice) -> None:
    result = device.shell2("echo out; echo err >&2; exit 3", v2=True)
    assert (result.returncode, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert device.shell2("false", v2=True).returncode == 1
    assert device.shell2("no-such-program", v2=True).returncode == 127


def test_shell_v1_merges_stdout_and_stderr(device: adbutils.AdbDevice) -> None:
    assert device.shell("echo a; echo b >&2; echo c") == "a\nb\nc"


def test_cli_exit_codes_stderr_and_stdin(server, emulated_pixel: RunningDevice) -> None:
    serial = emulated_pixel.serial
    failed = server.run("-s", serial, "shell", "echo to-stderr >&2; exit 7")
    assert (failed.returncode, failed.stdout, failed.stderr) == (7, b"", b"to-stderr\n")
    piped = server.run("-s", serial, "shell", "cat; echo done", input=b"line one\nline two\n")
    assert piped.returncode == 0
    assert piped.stdout == b"line one\nline two\ndone\n"


def test_interactive_shell_reads_commands_from_stdin(adb_server, emulated_pixel: RunningDevice) -> None:
    result = adb_server.run("-s", emulated_pixel.serial, "shell", input=b"echo $((6 * 7))\nexit 4\n")
    assert result.returncode == 4
    assert b"42" in result.stdout


def test_exec_out_is_binary_clean(adb_server, emulated_pixel: RunningDevice, tmp_path) -> None:
    data = bytes(range(256)) * 4096 + b"\r\n\n\r"
    (tmp_path / "blob").write_bytes(data)
    assert adb_server.run("-s", emulated_pixel.serial, "push", str(tmp_path / "blob"), "/sdcard/blob").returncode == 0
    result = adb_server.run("-s", emulated_pixel.serial, "exec-out", "cat /sdcard/blob")
    assert result.stdout == data


def test_getprop_answers_from_the_profile(device: adbutils.AdbDevice) -> None:
    props = load_profile("pixel").props
    for key in ("ro.product.model", "ro.product.manufacturer", "ro.product.cpu.abi", "ro.board.platform",
                "ro.soc.model", "ro.build.version.sdk"):  # fmt: skip
        assert device.getprop(key) == props[key], key
    assert device.getprop("ro.kernel.qemu") == ""
    serialno = device.getprop("ro.serialno")
    assert serialno and serialno != props["ro.serialno"]  # unique per emulated device


def test_serialno_differs_between_devices(adb_server, start_emulated) -> None:
    first, second = start_emulated("pixel"), start_emulated("pixel")
    numbers = {adb_server.client.device(d.serial).getprop("ro.serialno") for d in (first, second)}
    assert len(numbers) == 2


def test_client_hanging_up_cancels_a_long_command(device: adbutils.AdbDevice, emulated_pixel: RunningDevice) -> None:
    with pytest.raises(adbutils.AdbTimeout):
        device.shell("sleep 30", timeout=1)
    ends = wait_until(lambda: [e for e in emulated_pixel.events()
                               if e["event"] == "shell-end" and e["command"] == "sleep 30"], "the command to end")
    assert ends[0]["cancelled"], "the device did not stop the command when the client hung up"
    assert device.shell2("echo alive", v2=True).stdout == "alive\n"


# ---- raw transport ---------------------------------------------------------------------------


def handshake(port: int, key: Key, max_payload: int = MAX_PAYLOAD) -> tuple[socket.socket, bytes]:
    host = RawHost(port, key, max_payload=max_payload)
    command, arg0, arg1, _, banner = host.banner
    assert (command, arg0, arg1) == (A_CNXN, VERSION, MAX_PAYLOAD)
    return host.sock, banner


def _handshake_or_none(port: int, key: Key) -> tuple[socket.socket, bytes] | None:
    try:
        return handshake(port, key)
    except (OSError, EOFError):
        return None


def recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def closed_by_device(sock: socket.socket) -> bool:
    """True when the device closes the connection (recv sees EOF or a reset) within the timeout."""
    try:
        return sock.recv(1 << 16) == b""
    except ConnectionResetError:
        return True


GARBAGE = {
    "http": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # not adb at all
    "magic": struct.pack("<6I", A_CNXN, VERSION, MAX_PAYLOAD, 0, 0, 0x12345678),
    "oversized": header(A_CNXN, VERSION, MAX_PAYLOAD, MAX_PAYLOAD + 1),
    "truncated": header(A_OPEN, 1, 0, 5)[:10],  # header cut short, then hang up
}


def test_malformed_packets_close_only_that_connection(start_emulated, adb_test_key: Key) -> None:
    device = start_emulated("pixel", connect=False, adb_keys=(adb_test_key.public,))
    bystander, _ = handshake(device.port, adb_test_key)  # another connection, open all along
    for name, garbage in GARBAGE.items():
        sock = socket.create_connection(("127.0.0.1", device.port), timeout=10)
        sock.sendall(garbage)
        if len(garbage) < HEADER.size:
            sock.shutdown(socket.SHUT_WR)
        assert closed_by_device(sock), name
        sock.close()
        fresh, banner = handshake(device.port, adb_test_key)
        assert banner.startswith(b"device::") and b"model=Pixel 7" in banner, name
        fresh.close()
    bystander.sendall(header(A_OPEN, 7, 0, 6) + b"sync:\0")
    assert HEADER.unpack(recv_exact(bystander, HEADER.size))[:3] == (A_OKAY, 1, 7)
    bystander.close()
    reasons = [e.get("reason", "") for e in device.events() if e["event"] == "disconnect"]
    assert sum(r.startswith("protocol error") for r in reasons) == len(GARBAGE)


@pytest.fixture
def in_process(tmp_path, adb_test_key: Key) -> Iterator[AdbDevice]:
    """A device served by a thread of the test process: for raw protocol tests, no process start."""
    sock = listen(0)
    state = EmulatedDevice(load_profile("pixel"), name="inproc", port=sock.getsockname()[1],
                           sandbox_root=tmp_path / "sandbox", log_path=tmp_path / "device.log",
                           adb_keys=(adb_test_key.public,))  # fmt: skip
    server = AdbDevice(state, sock)
    thread = server.start()
    yield server
    server.shutdown()
    thread.join(timeout=10)
    assert not thread.is_alive()
    state.close()


def test_unknown_service_is_refused(in_process: AdbDevice, adb_test_key: Key) -> None:
    sock, banner = handshake(in_process.port, adb_test_key)
    assert b"features=" in banner and b"shell_v2" in banner
    assert b"model=Pixel 7" in banner
    sock.sendall(header(A_OPEN, 3, 0, 17) + b"jdwp:1234\0\0\0\0\0\0\0\0")
    command, arg0, arg1, *_ = HEADER.unpack(recv_exact(sock, HEADER.size))
    assert (command, arg0, arg1) == (A_CLSE, 0, 3)
    sock.close()


def test_adb_cli_still_works_after_garbage(adb_server, start_emulated) -> None:
    device = start_emulated("pixel")
    with socket.create_connection(("127.0.0.1", device.port), timeout=10) as sock:
        sock.sendall(b"\xff" * 100)
        assert closed_by_device(sock)
    result = subprocess.run(
        [adb_server.adb, "-P", str(adb_server.port), "-s", device.serial, "shell", "echo ok"],
        capture_output=True,
        timeout=30,
    )
    assert result.stdout == b"ok\n"


def test_system_image_has_net_run(device: adbutils.AdbDevice) -> None:
    assert device.shell2("ls /system/bin/edgeloop-net-run", v2=True).returncode == 0
    usage = device.shell2("edgeloop-net-run", v2=True)
    assert usage.returncode != 0 and "--container" in usage.output
    helped = device.shell2("edgeloop-net-run --help", v2=True)
    assert (helped.returncode, helped.stderr) == (0, "") and helped.stdout.startswith("usage: edgeloop-net-run")
    assert "--use_dsp" in helped.stdout


def test_sync_and_shell_see_the_same_system_image(device: adbutils.AdbDevice) -> None:
    """The image's executables have no sandbox file, yet sync's STAT/LIST show them as the shell does."""
    st = device.sync.stat("/system/bin/edgeloop-net-run")
    assert stat.S_ISREG(st.mode) and stat.S_IMODE(st.mode) == 0o755
    listed = {entry.path for entry in device.sync.list("/system/bin")}
    shown = set(device.shell2("ls /system/bin", v2=True).stdout.split())
    assert {"edgeloop-net-run", "sh", "ls", "["} <= listed and listed == shown
    assert not {":", "cd", "export"} & listed  # the shell's own commands are no files
    assert device.shell2("test -x /system/bin/sh && stat -c %a /system/bin/sh", v2=True).stdout == "755\n"
    assert device.sync.read_bytes("/system/bin/edgeloop-net-run") == b""  # empty, as its stat says
    assert stat.S_IMODE(device.sync.stat("/system/bin/no-such-tool").mode) == 0


def read_packet(sock: socket.socket) -> tuple[int, int, int, bytes]:
    command, arg0, arg1, length, _, _ = HEADER.unpack(recv_exact(sock, HEADER.size))
    return command, arg0, arg1, recv_exact(sock, length)


def test_flow_control_and_the_hosts_max_payload(in_process: AdbDevice, adb_test_key: Key) -> None:
    """With a host that accepts 4 KiB payloads, the device sends at most 4 KiB per WRTE and never
    a second WRTE before the host's OKAY."""
    blob = bytes(range(256)) * 64  # 16 KiB
    (in_process.device.fs.root / "sdcard/blob").write_bytes(blob)
    sock, _ = handshake(in_process.port, adb_test_key, max_payload=4096)
    sock.sendall(header(A_OPEN, 5, 0, 6) + b"sync:\0")
    command, local_id, remote_id, _ = read_packet(sock)
    assert (command, remote_id) == (A_OKAY, 5)
    path = b"/sdcard/blob"
    request = b"RECV" + struct.pack("<I", len(path)) + path
    sock.sendall(header(A_WRTE, 5, local_id, len(request)) + request)
    assert read_packet(sock)[:3] == (A_OKAY, local_id, 5)  # our WRTE acknowledged
    received = b""
    while not received.endswith(b"DONE\0\0\0\0"):
        command, _, _, data = read_packet(sock)
        assert command == A_WRTE and len(data) <= 4096
        received += data
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):  # nothing more until we acknowledge
            sock.recv(1)
        sock.settimeout(10)
        sock.sendall(header(A_OKAY, 5, local_id, 0))
    assert received[:4] == b"DATA"
    assert received[8 : 8 + len(blob)] == blob  # one DATA message (16 KiB < 64 KiB) split over WRTEs
    sock.close()


def test_sync_sta2_reports_the_devices_owners(in_process: AdbDevice, adb_test_key: Key) -> None:
    (in_process.device.fs.root / "sdcard/x").write_bytes(b"x")
    sock, _ = handshake(in_process.port, adb_test_key)
    sock.sendall(header(A_OPEN, 5, 0, 6) + b"sync:\0")
    _, local_id, _, _ = read_packet(sock)
    for path, ids in OWNERS.items():
        request = b"STA2" + struct.pack("<I", len(path)) + path.encode()
        sock.sendall(header(A_WRTE, 5, local_id, len(request)) + request)
        replies = [read_packet(sock) for _ in range(2)]  # our WRTE's OKAY and the answer, in either order
        [answer] = [data for command, _, _, data in replies if command == A_WRTE]
        sock.sendall(header(A_OKAY, 5, local_id, 0))
        error, _, _, _, _, uid, gid = struct.unpack_from("<4xIQQIIII", answer)
        assert (error, uid, gid) == (0, *ids), path
    sock.close()


def test_random_sync_requests_do_not_hurt_the_device(in_process: AdbDevice, tmp_path, adb_test_key: Key) -> None:
    """Seeded garbage inside sync streams: each bad stream is closed, nothing lands outside the
    writable areas, and the device still answers."""
    import random

    rng = random.Random(1234)
    before = sorted(p for p in tmp_path.rglob("*") if "data/local/tmp" not in str(p) and "sdcard" not in str(p))
    sock, _ = handshake(in_process.port, adb_test_key)
    ids = {b"STAT", b"LIST", b"SEND", b"RECV", b"STA2", b"DATA", b"DONE", b"QUIT", b"XXXX"}
    for k in range(1, 120):
        sock.sendall(header(A_OPEN, k, 0, 6) + b"sync:\0")
        while True:  # skip what earlier streams still send, until the device accepts stream k
            command, local_id, remote_id, _ = read_packet(sock)
            if command == A_WRTE:
                sock.sendall(header(A_OKAY, remote_id, local_id, 0))
            if (command, remote_id) == (A_OKAY, k):
                break
        ident = rng.choice(sorted(ids))
        body = rng.choice(
            [b"../../../../etc/x,33188", b"/system/bin/sh", b"/sdcard/f,420", rng.randbytes(rng.randint(0, 40))]
        )
        payload = ident + struct.pack("<I", rng.choice([len(body), 0, 2**31, 70000])) + body + rng.randbytes(8)
        sock.sendall(header(A_WRTE, k, local_id, len(payload)) + payload)
        sock.sendall(header(A_CLSE, k, local_id, 0))
    fresh, banner = handshake(in_process.port, adb_test_key)
    assert banner.startswith(b"device::")
    fresh.close()
    sock.close()
    after = sorted(p for p in tmp_path.rglob("*") if "data/local/tmp" not in str(p) and "sdcard" not in str(p))
    assert after == before
    events = [json.loads(line)["event"] for line in (tmp_path / "device.log").read_text().splitlines()]
    assert "service-error" not in events  # bad input handled, not a crash of the service
    assert "sync-error" in events


def test_random_transport_messages_do_not_hurt_the_device(in_process: AdbDevice, tmp_path, adb_test_key: Key) -> None:
    """Well-framed but meaningless messages (unknown ids, odd services, stray OKAY/CLSE/WRTE)."""
    import random

    rng = random.Random(99)
    sock, _ = handshake(in_process.port, adb_test_key)
    messages = []
    for _ in range(400):
        command = rng.choice([A_OKAY, A_WRTE, A_CLSE, A_OPEN, A_CNXN])
        data = rng.choice([b"", rng.randbytes(rng.randint(1, 300)), b"sync:\0", b"reboot:\0", b"tcpip:5555\0"])
        messages.append(header(command, rng.randint(0, 5), rng.randint(0, 5), len(data)) + data)
    # `reboot:` drops the connection; where that happens before the device has read everything we
    # sent (a loaded host), the kernel resets it rather than closing: the end of the stream either way
    try:
        sock.sendall(b"".join(messages))
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(1 << 16):  # everything the device answers, until it closes after our EOF
            pass
    except OSError as exc:
        if exc.errno not in (errno.ECONNRESET, errno.ENOTCONN, errno.EPIPE):
            raise
    sock.close()
    # `reboot:` among them takes the device away for a moment, as a phone: it comes back
    fresh, banner = wait_until(lambda: _handshake_or_none(in_process.port, adb_test_key), "the device to be back")
    assert banner.startswith(b"device::")
    fresh.close()
    events = [json.loads(line)["event"] for line in (tmp_path / "device.log").read_text().splitlines()]
    assert "service-error" not in events
    assert "service-refused" in events

"""Executing a pushed bundle on a device: the run contract, exit codes, timeouts, and the run's logs.

Run contract (shared with the bundle packs): `cd <bundle dir> && sh run.sh <output_dir> [args]`,
`<output_dir>` relative to the bundle folder. Everything needed to reproduce the run by hand is
kept in the local run folder.
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import adbutils

from deploy.errors import DeviceError
from deploy.fsutil import atomic_write_text
from harness.measure import probed_command
from harness.transfer import DEVICE_FAILURES, SHELL_TIMEOUT, shell_quote

NETRUN = "/system/bin/edgeloop-net-run"


@dataclass(frozen=True)
class RunOutcome:
    command: str
    exit_code: int | None  # None when it timed out
    stdout: str
    stderr: str
    seconds: float

    @property
    def timed_out(self) -> bool:
        return self.exit_code is None

    def describe(self) -> str:
        """One line for the report when the run did not succeed."""
        if self.timed_out:
            return f"net-run did not finish within {self.seconds:.0f} s (stopped on the device)"
        what = f"net-run failed with exit code {self.exit_code}"
        if self.exit_code and self.exit_code > 128:
            with contextlib.suppress(ValueError):
                what += f" ({signal.Signals(self.exit_code - 128).name})"
        last = next((line for line in reversed(self.stderr.splitlines()) if line.strip()), "")
        return f"{what}: {last.strip()}" if last else what


@dataclass(frozen=True)
class Probe:
    """Measure the run on the device (harness.measure): `program` is net-run's file name, as pidof finds
    it; `cpu_mask` pins the run to those cores (taskset)."""

    program: str
    cpu_mask: str | None = None


def run_command(remote_dir: PurePosixPath, output_dir: str, args: tuple[str, ...] = (),
                probe: Probe | None = None) -> str:
    run = " ".join([f"sh run.sh {shell_quote(output_dir)}", *map(shell_quote, args)])
    if probe is not None:
        run = probed_command(run, output_dir, probe.program, probe.cpu_mask)
    return f"cd {shell_quote(str(remote_dir))} && {run}"


def run_bundle(device: adbutils.AdbDevice, remote_dir: PurePosixPath, output_dir: str, log_dir: Path, *,
               args: tuple[str, ...] = (), timeout: float | None = None, probe: Probe | None = None) -> RunOutcome:
    """Run the bundle once through shell v2 (measured with `probe`). `timeout` is a deadline for the whole
    run: past it the stream is closed (which stops the run on the device) and the device is asked to kill
    what is left. Logs, with the output received so far, go to `log_dir` whatever happens."""
    command = run_command(remote_dir, output_dir, args, probe)
    start = time.monotonic()
    received: tuple[bytearray, bytearray] = (bytearray(), bytearray())
    try:
        code = shell_v2(device, command, timeout, received)
    except DEVICE_FAILURES as exc:
        _write_logs(log_dir, _outcome(command, None, received, start))
        raise DeviceError(f"device {device.serial} stopped answering during the run ({exc or type(exc).__name__})",
                          "reconnect it (`adb devices -l`) and run again") from None
    outcome = _outcome(command, code, received, start)
    if outcome.timed_out:
        _kill_leftovers(device, output_dir)
    _write_logs(log_dir, outcome)
    return outcome


def _outcome(command: str, code: int | None, received: tuple[bytearray, bytearray], start: float) -> RunOutcome:
    return RunOutcome(command, code, received[0].decode(errors="replace"), received[1].decode(errors="replace"),
                      time.monotonic() - start)


def shell_v2(device: adbutils.AdbDevice, command: str, timeout: float | None,
             received: tuple[bytearray, bytearray]) -> int | None:
    """Shell protocol v2 (docs/spec.md §9: 1-byte id, 4-byte length; 1 stdout, 2 stderr, 3 exit) with a deadline
    for the whole command, not for each read as adbutils' shell2 has. stdout and stderr are appended
    to `received` as they arrive; returns the exit code, or None when the deadline passed."""
    deadline = None if timeout is None else time.monotonic() + timeout
    conn = device.open_transport(timeout=None)
    try:
        conn.send_command(f"shell,v2:{command}")
        conn.check_okay()
        while True:
            header = _read(conn.conn, 5, deadline)
            if header is None:
                return None
            length = int.from_bytes(header[1:], "little")
            data = _read(conn.conn, length, deadline) if length else b""
            if data is None:
                return None
            if header[0] == 3:
                return data[0] if data else 255
            if header[0] in (1, 2):
                received[header[0] - 1].extend(data)
    finally:
        conn.close()  # on the device, a closed stream hangs up the command


def _read(sock: socket.socket, n: int, deadline: float | None) -> bytes | None:
    data = bytearray()
    while len(data) < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            sock.settimeout(left)
        try:
            chunk = sock.recv(n - len(data))
        except TimeoutError:
            return None
        if not chunk:
            raise EOFError("the device closed the shell stream before the command's exit status")
        data.extend(chunk)
    return bytes(data)


def _kill_leftovers(device: adbutils.AdbDevice, output_dir: str) -> None:
    """Closing the shell stream hangs up the run; on a real device also kill what is left of it: the
    processes whose command line names this run's own output folder (unique to the run), never
    another run of the same bundle."""
    with contextlib.suppress(*DEVICE_FAILURES):
        device.shell2(f"pkill -f {shell_quote(output_dir)} 2>/dev/null; true", timeout=SHELL_TIMEOUT)


def _write_logs(log_dir: Path, outcome: RunOutcome) -> None:
    atomic_write_text(log_dir / "command.txt", outcome.command + "\n")
    atomic_write_text(log_dir / "stdout.txt", outcome.stdout)
    atomic_write_text(log_dir / "stderr.txt", outcome.stderr)
    atomic_write_text(log_dir / "exit.json", json.dumps(
        {"exit_code": outcome.exit_code, "timed_out": outcome.timed_out, "seconds": round(outcome.seconds, 3)}) + "\n")

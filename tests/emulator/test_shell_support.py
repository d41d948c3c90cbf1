"""Helpers for the shell tests: a real device (profile, sandbox, log) and its shell, no adb involved.

Named test_shell_* so it sits with the shell tests; it holds no tests itself.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from pathlib import Path

from deploy.profiles import load_profile
from emulator.device import EmulatedDevice
from emulator.shell import COMMANDS, Shell

TMP = "/data/local/tmp"

# Owners a phone reports to the shell user: its own files, shared storage's group, the image's.
OWNERS = {"/data/local/tmp": (2000, 2000), "/sdcard/x": (2000, 1015), "/system/bin/sh": (0, 2000),
          "/system/etc": (0, 0)}


@dataclass
class Result:
    status: int
    out: str
    err: str


class ShellRunner:
    """Runs command lines on one emulated device's shell and captures what they print."""

    def __init__(self, tmp_path: Path, profile: str = "pixel") -> None:
        self.device = EmulatedDevice(
            load_profile(profile),
            name=f"shell-test-{profile}",
            port=0,
            sandbox_root=tmp_path / "sandbox",
            log_path=tmp_path / "device.log",
        )
        self.fs = self.device.fs
        self.shell = Shell(self.fs, self.device, COMMANDS)

    def __call__(
        self,
        command: str,
        stdin: bytes = b"",
        *,
        env: dict[str, str] | None = None,
        cwd: str = "/",
        cancel: threading.Event | None = None,
    ) -> Result:
        out, err = io.BytesIO(), io.BytesIO()
        status = self.shell.run(command, stdin=io.BytesIO(stdin), stdout=out, stderr=err, env=env, cwd=cwd,
                                cancel=cancel)
        return Result(status, out.getvalue().decode(), err.getvalue().decode())

    def write(self, path: str, data: bytes, mode: int = 0o644) -> None:
        with self.fs.open_write(path, mode=mode) as f:
            f.write(data)

    def read(self, path: str) -> bytes:
        with self.fs.open_read(path) as f:
            return f.read()

    def image_file(self, path: str, data: bytes, mode: int = 0o755) -> None:
        """Put a file into the read-only system image, as the device's builder would."""
        host = self.fs.root / path.lstrip("/")
        host.parent.mkdir(parents=True, exist_ok=True)
        host.write_bytes(data)
        host.chmod(mode)

    def close(self) -> None:
        self.device.close()

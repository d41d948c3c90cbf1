"""Push and pull a file through a real adb server to the emulated device, beside `cp` as the ceiling.

    .venv/bin/python bench/bench_transfer.py [--mb 100] [--repeat 3]

Everything runs on loopback with a private adb server on a free port (never 5037). Each figure is
the median of --repeat runs; MB is 10^6 bytes, as adb prints it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import adbutils
from rich.console import Console
from rich.table import Table

from deploy.fsutil import sha256_file
from emulator.lifecycle import emulated_device

ADB36 = str(Path(adbutils.__file__).parent / "binaries" / "adb")
ADB29 = "/usr/bin/adb"
REMOTE = "/data/local/tmp/bench/transfer.bin"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def timed(action: Callable[[], None], repeat: int) -> float:
    """Median seconds of `repeat` runs of action."""
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=300)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=100, help="file size in MiB (default 100)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="edgeloop-bench-"))
    source = work / "source.bin"
    source.write_bytes(os.urandom(args.mb * 1024 * 1024))
    size_mb = source.stat().st_size / 1e6
    digest = sha256_file(source)
    rows: list[tuple[str, float, float]] = []
    try:
        cp = timed(lambda: run("cp", str(source), str(work / "copy.bin")), args.repeat)
        rows.append(("cp (ceiling)", cp, cp))
        with emulated_device("pixel", home=work / "home") as device:
            on_device = device.sandbox_root / REMOTE.lstrip("/")
            for label, adb in (("adb 36 CLI", ADB36), ("adb 29 CLI (Debian)", ADB29)):
                if not Path(adb).exists():
                    continue
                port = str(free_port())
                env = {**os.environ, "ANDROID_ADB_SERVER_PORT": port}
                subprocess.run([adb, "-P", port, "start-server"], env=env, check=True, capture_output=True)
                try:
                    device.connect(int(port))
                    cli = [adb, "-P", port, "-s", device.serial]
                    push = timed(lambda cli=cli: run(*cli, "push", str(source), REMOTE), args.repeat)
                    assert sha256_file(on_device) == digest, f"{label}: pushed file differs"
                    pull = timed(lambda cli=cli: run(*cli, "pull", REMOTE, str(work / "pulled.bin")), args.repeat)
                    assert sha256_file(work / "pulled.bin") == digest, f"{label}: pulled file differs"
                    rows.append((label, push, pull))
                    if adb == ADB36:
                        client = adbutils.AdbClient(host="127.0.0.1", port=int(port)).device(device.serial)
                        push = timed(lambda c=client: c.sync.push(source, REMOTE), args.repeat)
                        assert sha256_file(on_device) == digest, "adbutils: pushed file differs"
                        pull = timed(lambda c=client: c.sync.pull(REMOTE, work / "pulled.bin"), args.repeat)
                        assert sha256_file(work / "pulled.bin") == digest, "adbutils: pulled file differs"
                        rows.append(("adbutils 2.12 (sync)", push, pull))
                finally:
                    subprocess.run([adb, "-P", port, "kill-server"], env=env, capture_output=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table = Table(title=f"{args.mb} MiB file, median of {args.repeat}")
    for column in ("method", "push MB/s", "pull MB/s", "push / cp", "pull / cp"):
        table.add_column(column, justify="right" if column != "method" else "left")
    for label, push, pull in rows:
        table.add_row(label, f"{size_mb / push:.0f}", f"{size_mb / pull:.0f}", f"{cp / push:.2f}", f"{cp / pull:.2f}")
    Console().print(table)


if __name__ == "__main__":
    main()

"""`python -m emulator`: serve one emulated device until SIGTERM/SIGINT (started by emulator.lifecycle).

Once it listens, the device writes its record (device.json) into its state folder and prints one
JSON line on stdout: that line is the readiness signal the parent waits for.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import sys
import threading
from pathlib import Path

import emulator.netrun  # noqa: F401 - its @register puts /system/bin/edgeloop-net-run into the system image
from deploy.errors import EdgeloopError
from deploy.profiles import load_profile
from emulator.adbd import AdbDevice, listen
from emulator.device import EmulatedDevice
from emulator.lifecycle import DeviceRecord, device_paths


def _exit_with_parent(parent_pid: int, server: AdbDevice) -> None:
    """Stop serving when the process that started us ends (test fixtures): no stray devices."""
    fd = os.pidfd_open(parent_pid)
    select.select([fd], [], [])
    server.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__)
    parser.add_argument("--profile", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--state", required=True, type=Path, help="the device's state folder")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--parent-pid", type=int, default=None)
    args = parser.parse_args(argv)
    paths = device_paths(args.state)
    try:
        profile = load_profile(args.profile)
        sock = listen(args.port)
    except EdgeloopError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot listen on 127.0.0.1:{args.port}: {exc.strerror}", file=sys.stderr)
        return 2
    port = sock.getsockname()[1]
    device = EmulatedDevice(
        profile,
        name=args.name,
        port=port,
        sandbox_root=paths.sandbox,
        log_path=paths.log,
        faults_path=paths.faults,
    )
    server = AdbDevice(device, sock)
    record = DeviceRecord(name=args.name, profile=profile.name, port=port, pid=os.getpid(), state=args.state)
    record.write()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: server.shutdown())
    if args.parent_pid:
        threading.Thread(target=_exit_with_parent, args=(args.parent_pid, server), daemon=True).start()
    print(json.dumps({"ready": True, "port": port, "serial": device.serial}), flush=True)
    try:
        server.serve_forever()
    finally:
        paths.record.unlink(missing_ok=True)
        device.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

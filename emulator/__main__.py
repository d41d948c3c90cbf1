"""`python -m emulator`: serve one emulated device until SIGTERM/SIGINT (started by emulator.lifecycle).

Once it listens, the device writes its record (device.json) into its state folder and prints one
JSON line on stdout: that line is the readiness signal the parent waits for.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import signal
import sys
import threading
from pathlib import Path

from deploy.errors import EdgeloopError
from deploy.profiles import load_profile
from emulator import engine
from emulator.adbd import AdbDevice, listen
from emulator.device import EmulatedDevice
from emulator.lifecycle import DeviceRecord, device_paths

STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def _exit_with_parent(parent_pid: int) -> None:
    """Stop when the process that started us ends (test fixtures): no stray devices."""
    with contextlib.suppress(ProcessLookupError):  # gone already: stop at once
        select.select([os.pidfd_open(parent_pid)], [], [])
    os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    # Blocked before any thread starts, so every thread inherits the mask and a stop signal always
    # waits for the sigwait below: delivered to some other thread, it would leave the main thread
    # blocked (and the device running) until the lifecycle's SIGKILL.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    # Imported only now: numpy starts its BLAS threads on import, and they must inherit the mask too.
    # Its @register puts /system/bin/edgeloop-net-run into the system image.
    import emulator.netrun  # noqa: F401
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__)
    parser.add_argument("--profile", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--state", required=True, type=Path, help="the device's state folder")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--parent-pid", type=int, default=None)
    parser.add_argument("--insecure", action="store_true", help="no adb authentication (ro.adb.secure=0)")
    parser.add_argument("--adb-key", action="append", type=Path, default=[], help="another accepted public key")
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
        secure=not args.insecure,
        adb_keys=tuple(args.adb_key),
    )
    engine.start(profile.ram_mb)  # net-run's engine boots beside the device (emulator.engine)
    server = AdbDevice(device, sock)
    record = DeviceRecord(name=args.name, profile=profile.name, port=port, pid=os.getpid(), state=args.state)
    record.write()
    serving = server.start()
    if args.parent_pid:
        threading.Thread(target=_exit_with_parent, args=(args.parent_pid,), daemon=True).start()
    print(json.dumps({"ready": True, "port": port, "serial": device.serial}), flush=True)
    try:
        signal.sigwait(STOP_SIGNALS)
        server.shutdown()
        serving.join()
    finally:
        paths.record.unlink(missing_ok=True)
        device.close()
    return 0


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything is closed and logged: the interpreter's own teardown (onnxruntime's, numpy's) would
    # only make whoever stops the device wait longer.
    os._exit(status)

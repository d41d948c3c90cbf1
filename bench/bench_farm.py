"""Farm scheduling: the scheduler's own cost per job, and what spreading jobs over devices buys.

    .venv/bin/python -m bench.bench_farm [--trivial-jobs 400] [--rounds 4]      (from the repository root)

1. Overhead: `--trivial-jobs` jobs that do nothing, through the scheduler (lease file lock and
   holder record, watchdog thread, bookkeeping) on 1 and on 4 devices: wall time per job.
2. Parallel vs serial: 16 real deploy jobs (the example model, cpu and gpu, on the pixel and
   galaxy-s23 profiles, `--rounds` times) on 4 emulated devices behind a private adb server: once
   through the farm scheduler, once one after another (a plain loop over the same devices), in
   the same run. Both run warm (the build cache and the device-side bundles are filled first).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

from emulator.lifecycle import RunningDevice, start_device
from harness.devices import AdbServer
from harness.farm import deploy_executor, load_matrix, plan_tasks
from harness.inventory import FarmDevice, discover, load_inventory
from harness.lease import LeaseBook
from harness.scheduler import Outcome, Policy, Scheduler
from tests.conftest import ADB36, free_port
from tests.farm.farm_helpers import tasks as trivial_tasks
from tests.farm.farm_helpers import write_inventory, write_matrix

ROOT = Path(__file__).resolve().parent.parent


def overhead_per_job(n_jobs: int, n_devices: int, lock_dir: Path) -> float:
    """Seconds of scheduling per job when the job itself costs nothing."""
    server = AdbServer("127.0.0.1", 1)  # never contacted: trivial jobs pass, so no device is probed
    devices = [FarmDevice(server, f"bench-{i}", ("pixel",)) for i in range(n_devices)]
    scheduler = Scheduler(devices, lambda task, device, attempt: True, passed=bool, leases=LeaseBook(lock_dir))
    start = time.perf_counter()
    outcomes = scheduler.run(trivial_tasks(n_jobs, labels=()))
    elapsed = time.perf_counter() - start
    assert all(o.status == "passed" for o in outcomes)
    return elapsed / n_jobs


def _check(outcomes: list[Outcome]) -> None:
    bad = [(o.task.id, o.status, o.detail) for o in outcomes if o.status != "passed"]
    assert not bad, bad


def parallel_vs_serial(rounds: int, work: Path) -> tuple[int, float, float]:
    port = free_port()
    env = {**os.environ, "ANDROID_ADB_SERVER_PORT": str(port)}
    subprocess.run([ADB36, "-P", str(port), "start-server"], env=env, check=True, capture_output=True, timeout=30)
    started: list[RunningDevice] = []
    try:
        for profile in ("pixel", "pixel", "galaxy-s23", "galaxy-s23"):
            started.append(start_device(profile, home=work / "emulators", exit_with_parent=True))
        inventory = write_inventory(work / "farm.yaml", {port: [d.serial for d in started]})
        matrix = load_matrix(write_matrix(work / "matrix.yaml", config=str(ROOT / "edgeloop.yaml"),
                                          profiles=["pixel", "galaxy-s23"], runtimes=["cpu", "gpu"], runs=1))
        base = plan_tasks(matrix)
        jobs = [replace(t, id=f"{t.id}#{k}") for k in range(rounds) for t in base]
        devices = discover(load_inventory(inventory), list(matrix.profiles)).devices
        assert len(devices) == 4, devices
        execute = deploy_executor(matrix, work / "jobs")
        for task, device in zip(base, devices[::2] + devices[1::2], strict=False):  # warm caches and bundles
            execute(task, device, 0)

        def farm() -> list[Outcome]:
            scheduler = Scheduler(devices, execute, passed=lambda r: r.passed, leases=LeaseBook(work / "locks"),
                                  policy=Policy(timeout_s=300))
            return scheduler.run(jobs)

        start = time.perf_counter()
        _check(farm())
        parallel = time.perf_counter() - start

        start = time.perf_counter()
        for i, task in enumerate(jobs):
            matching = [d for d in devices if task.profile in d.profiles]
            result = execute(task, matching[i % len(matching)], 1)
            assert result.passed, result.failure
        serial = time.perf_counter() - start
        return len(jobs), parallel, serial
    finally:
        for device in started:
            device.stop()
        subprocess.run([ADB36, "-P", str(port), "kill-server"], env=env, capture_output=True, timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trivial-jobs", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=4, help="16 jobs = 4 per round (2 profiles × cpu, gpu)")
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory(prefix="bench-farm-") as tmp:
        work = Path(tmp)
        one = overhead_per_job(args.trivial_jobs, 1, work / "locks1")
        four = overhead_per_job(args.trivial_jobs, 4, work / "locks4")
        n, parallel, serial = parallel_vs_serial(args.rounds, work)
    table = Table(title="Farm scheduling")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row(f"overhead per trivial job, 1 device ({args.trivial_jobs} jobs)", f"{one * 1000:.2f} ms")
    table.add_row(f"overhead per trivial job, 4 devices ({args.trivial_jobs} jobs)", f"{four * 1000:.2f} ms")
    table.add_row(f"{n} deploy jobs on 4 emulated devices (farm)", f"{parallel:.2f} s")
    table.add_row(f"{n} deploy jobs one after another", f"{serial:.2f} s")
    table.add_row("speed-up (serial / farm)", f"{serial / parallel:.2f}x")
    console.print(table)
    console.print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

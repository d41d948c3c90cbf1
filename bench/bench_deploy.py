"""Deploy loop benchmark (issues 4 and 11).

(a) `invoke deploy --device pixel --emulate` of the example project, cold (empty build cache, new
    device storage) and warm (everything cached, the device store filled), as the user runs it (a
    fresh process each time), with the per-phase breakdown from report.json and the device requests
    per job (shell commands and sync transfers in the emulated device's own log), side by side with
    its peers in the same run: a bare `adb shell true` round trip (the adb CLI) and a bare
    `python -c 'import deploy, harness'` start.
(b) Per-inference latency reported by the emulated net-run (cpu runtime) against
    `onnxruntime.InferenceSession.run` alone on the same float container and inputs, in one run.

Usage: .venv/bin/python -m bench.bench_deploy [--runs 5] [--warm 3]      (from the repository root)
A private adb server on a free port is started and killed; nothing touches port 5037.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from deploy.config import load_config
from deploy.container import load_container
from deploy.convert import convert
from deploy.inputlist import iter_feeds, read_input_list
from emulator import runtimes
from harness.devices import adb_binary

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def deploy_once(env: dict[str, str], port: int, reports: Path, runs: int, *extra: str) -> tuple[float, dict]:
    invoke = Path(sys.executable).with_name("invoke")
    start = time.perf_counter()
    done = subprocess.run([str(invoke), "-r", str(ROOT), "deploy", "--device", "pixel", "--emulate",
                           "--adb", f"127.0.0.1:{port}", "--runs", str(runs), "--report-dir", str(reports), *extra],
                          env=env, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"deploy failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    latest = max(reports.iterdir(), key=lambda p: p.name)
    return wall, json.loads((latest / "report.json").read_text())


REQUESTS = ("shell", "push", "pull")  # the device log's events, one per request the host made


def requests_per_session(log: Path) -> list[int]:
    """Device requests of each boot of the emulated device (one deploy each), from its own log."""
    counts: list[int] = []
    for line in log.read_text().splitlines():
        event = json.loads(line)["event"]
        if event == "listening":
            counts.append(0)
        elif event in REQUESTS and counts:
            counts[-1] += 1
    return counts


def median_seconds(command: list[str], env: dict[str, str], times: int) -> float:
    walls = []
    for _ in range(times):
        start = time.perf_counter()
        subprocess.run(command, env=env, cwd=ROOT, check=True, capture_output=True)
        walls.append(time.perf_counter() - start)
    return statistics.median(walls)


def peers(env: dict[str, str], port: int, home: Path, times: int = 11) -> tuple[float, float]:
    """(a bare `adb shell true` to a running emulated device, a bare `import deploy, harness`), medians."""
    from emulator.lifecycle import start_device

    device = start_device("pixel", home=home, exit_with_parent=True)
    try:
        device.connect(port)
        adb = [adb_binary(), "-P", str(port), "-s", device.serial, "shell", "true"]
        return median_seconds(adb, env, times), median_seconds([sys.executable, "-c", "import deploy, harness"],
                                                                env, times)
    finally:
        device.stop()


def phases(doc: dict) -> dict[str, float]:
    total: dict[str, float] = {}
    for result in doc["results"]:
        for name, seconds in result["phases_s"].items():
            total[name] = total.get(name, 0.0) + seconds
    return total


def ort_alone(build: Path, runs: int) -> list[float]:
    """onnxruntime alone on what net-run's cpu runtime executes: the same float container (the cached
    conversion), turned into the same graph and session (emulator.runtimes, as net-run does: same
    session options, threads and optimisation level), the same inputs, the same outputs asked for,
    and the same number of timed inferences, each timed around `session.run` alone as net-run does."""
    os.environ["EDGELOOP_BUILD"] = str(build)
    model_config = load_config(ROOT / "edgeloop.yaml").models["digits"]
    converted = convert(model_config.source, input_dims=model_config.input_dims, out_nodes=model_config.out_nodes)
    assert converted.cached, "the deploy converted this model already"
    model, meta = load_container(converted.path)
    outputs = tuple(t.name for t in meta.outputs)
    session = runtimes.new_session(runtimes.prepare(model, False, runtimes.Mode("cpu", outputs)).SerializeToString())
    feeds = list(iter_feeds(read_input_list(model_config.input_list), meta.inputs))
    names = [o.name for o in session.get_outputs()]
    for feed in feeds:  # warm-up, as net-run's warm-up run
        session.run(names, feed)
    runtimes.raise_clocks(session, names, feeds[0])  # as net-run does at --perf_profile high_performance
    times = []
    for _ in range(runs):
        for feed in feeds:
            t0 = time.perf_counter()
            session.run(names, feed)
            times.append((time.perf_counter() - t0) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="(b): measured net-run runs per round (plus a warm-up)")
    parser.add_argument("--rounds", type=int, default=5, help="(b): rounds of net-run then onnxruntime alone")
    parser.add_argument("--warm", type=int, default=3, help="(a): warm deploys to time")
    args = parser.parse_args()
    port = free_port()
    adb = adb_binary()
    with tempfile.TemporaryDirectory(prefix="bench-deploy-") as tmp:
        work = Path(tmp)
        env = {**os.environ, "EDGELOOP_BUILD": str(work / "build"), "EDGELOOP_HOME": str(work / "home"),
               "ANDROID_ADB_SERVER_PORT": str(port)}
        subprocess.run([adb, "-P", str(port), "start-server"], env=env, check=True, capture_output=True)
        try:
            cold_wall, cold = deploy_once(env, port, work / "reports", 1)
            warm = [deploy_once(env, port, work / "reports", 1) for _ in range(args.warm)]
            requests = requests_per_session(work / "home" / "emulators" / "pixel" / "device.log")
            adb_round_trip, python_start = peers(env, port, work / "peers")
            ours: list[float] = []
            alone: list[float] = []
            again: list[float] = []  # the same "alone" measurement repeated: the noise floor of the ratio
            for _ in range(args.rounds):  # interleaved, so both see the same machine load
                _, timed = deploy_once(env, port, work / "reports", args.runs, "--runtime", "cpu")
                ours += [t for r in timed["results"] for t in r["latency"]["inference_ms"]]
                alone += ort_alone(work / "build", args.runs)
                again += ort_alone(work / "build", args.runs)
        finally:
            subprocess.run([adb, "-P", str(port), "kill-server"], env=env, capture_output=True)
    warm_walls = [w for w, _ in warm]
    print("## (a) deploy --device pixel --emulate (example: digits on cpu, gpu, gpu_fp16)\n")
    print("| | wall s | bytes pushed | device requests per job | " + " | ".join(phases(cold)) + " |")
    print("|---|---|---|---|" + "---|" * len(phases(cold)))
    rows = [("cold", cold_wall, cold), *[(f"warm {i + 1}", w, d) for i, (w, d) in enumerate(warm)]]
    for (label, wall, doc), count in zip(rows, requests, strict=True):
        pushed = sum(r["bytes_pushed"] for r in doc["results"])
        row = phases(doc)
        cells = " | ".join(f"{row.get(k, 0.0):.3f}" for k in phases(cold))
        print(f"| {label} | {wall:.2f} | {pushed} | {count / len(doc['results']):.2f} | {cells} |")
    median = statistics.median(warm_walls)
    floor = python_start + adb_round_trip
    print(f"\npeers: `adb shell true` {adb_round_trip:.3f} s, `python -c 'import deploy, harness'` "
          f"{python_start:.3f} s (medians of 11)")
    print(f"warm median {median:.2f} s (target <= 1.5 s) = {median / floor:.2f}x python start + one adb round trip "
          f"(target <= 3x)\n")
    ratio = statistics.median(ours) / statistics.median(alone)
    print(f"## (b) per-inference latency, cpu runtime, same container and inputs ({args.rounds} rounds)\n")
    print("| | inferences | median ms | p90 ms |\n|---|---|---|---|")
    for label, times in (("emulated net-run (diag)", ours), ("onnxruntime session.run alone", alone),
                         ("onnxruntime session.run alone, again", again)):
        print(f"| {label} | {len(times)} | {statistics.median(times):.4f} | {np.percentile(times, 90):.4f} |")
    print(f"\noverhead ratio at the median: {ratio:.3f} (target <= 1.10); the same measurement of onnxruntime "
          f"alone twice differs by a ratio of {statistics.median(again) / statistics.median(alone):.3f}")


if __name__ == "__main__":
    main()

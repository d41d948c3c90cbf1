"""Files a farm test needs: inventory, matrix and a deployment file with several models."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "digits"


# Every device a test starts carries this label and every job asks for it: a server shared with other
# tests (the session's adb server) may list devices of theirs, which must never take our jobs.
OWN = "this-test"


def write_inventory(path: Path, servers: dict[int, list[str]], labels: dict[str, list[str]] | None = None) -> Path:
    """farm.yaml: each adb server port with the emulated devices it should `adb connect`, all labelled OWN."""
    data: dict = {"servers": [{"address": f"127.0.0.1:{port}", "connect": serials}
                              for port, serials in servers.items()]}
    ours = [serial for serials in servers.values() for serial in serials]
    data["devices"] = {serial: {"labels": [*(labels or {}).get(serial, []), OWN]} for serial in ours}
    path.write_text(yaml.safe_dump(data))
    return path


def write_config(path: Path, models: tuple[str, ...] = ("digits", "digits_b")) -> Path:
    """The example model deployed under several names: more jobs from one cached build."""
    model = {"source": str(EXAMPLE / "digits_cnn.onnx"), "input_dims": {"digits": [1, 1, 8, 8]},
             "out_nodes": ["logits"], "input_list": str(EXAMPLE / "validation" / "input_list.txt"),
             "labels": str(EXAMPLE / "validation" / "labels.txt")}
    path.write_text(yaml.safe_dump({"version": 1, "runtimes": ["cpu", "gpu", "gpu_fp16"], "pack": "builtin",
                                    "models": {name: dict(model) for name in models}}))
    return path


def write_matrix(path: Path, **keys: object) -> Path:
    """matrix.yaml whose jobs go only to this test's devices (label OWN)."""
    path.write_text(yaml.safe_dump({"labels": [OWN], **keys}))
    return path


def busy_intervals(events: list[dict], start: str = "netrun.start",
                   end: str = "netrun.end") -> list[tuple[float, float]]:
    """(start, end) wall times of each net-run in a device's own log; one cut short by the device's
    death ends at the last event logged."""
    intervals, opened = [], None
    last = max((e["wall"] for e in events), default=0.0)
    for event in events:
        if event["event"] == start:
            assert opened is None, f"net-run started at {event['wall']} while another ran since {opened}"
            opened = event["wall"]
        elif event["event"] == end and opened is not None:
            intervals.append((opened, event["wall"]))
            opened = None
    if opened is not None:
        intervals.append((opened, last))
    return intervals


def assert_no_overlap(intervals: list[tuple[float, float]], what: str) -> None:
    ordered = sorted(intervals)
    for (s1, e1), (s2, _) in itertools.pairwise(ordered):
        assert s2 >= e1, f"{what}: two jobs at once ({s1:.3f}-{e1:.3f} and from {s2:.3f})"


def echo_job(task: Any, device: Any, attempt: int) -> Any:
    """A trivial farm job: one real shell round trip to the device, judged like a deploy result
    (the number the device echoes is its 'output', compared with the expected one)."""
    import numpy as np

    from harness.compare import default_limits, judge, measure
    from harness.report.results import ERROR, PASSED, JobResult, OutputResult

    answer = device.adb().shell2("echo 1 2 3", timeout=10).output.split()
    got = [np.array([[float(x) for x in answer]], dtype=np.float32)] if len(answer) == 3 else None
    if got is None:
        return JobResult(model=task.model, runtime=task.runtime, profile=task.profile, device=device.serial,
                         status=ERROR, failure=f"device answered {answer!r}")
    metrics, limits = measure([np.array([[1.0, 2.0, 3.0]], dtype=np.float32)], got), default_limits("cpu")
    output = OutputResult("echo", (1, 3), metrics, limits, judge(metrics, limits))
    return JobResult(model=task.model, runtime=task.runtime, profile=task.profile, device=device.serial,
                     status=PASSED if output.verdict.passed else ERROR, outputs=[output],
                     failure=None if output.verdict.passed else "; ".join(output.verdict.reasons))


def tasks(n: int, profile: str = "pixel", model: str = "m", labels: tuple[str, ...] = (OWN,)) -> list[Any]:
    """n trivial farm jobs for `profile`, for this test's devices only (label OWN) unless told otherwise."""
    from harness.scheduler import Task

    return [Task(id=f"{model}{i}/{profile}/cpu", profile=profile, model=f"{model}{i}", runtime="cpu", labels=labels)
            for i in range(n)]

"""Files a farm test needs: inventory, matrix and a deployment file with several models."""

from __future__ import annotations

import itertools
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "digits"


def write_inventory(path: Path, servers: dict[int, list[str]], labels: dict[str, list[str]] | None = None) -> Path:
    """farm.yaml: each adb server port with the emulated devices it should `adb connect`."""
    data: dict = {"servers": [{"address": f"127.0.0.1:{port}", "connect": serials}
                              for port, serials in servers.items()]}
    if labels:
        data["devices"] = {serial: {"labels": tags} for serial, tags in labels.items()}
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
    path.write_text(yaml.safe_dump(keys))
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

"""Per-inference cost of each emulated runtime (cpu, gpu, gpu_fp16, dsp) relative to float cpu, in one run.

Each model runs through the real `edgeloop-net-run` program (over a real Sandbox, as the device
runs it); a round takes the median of the per-inference times each runtime writes to its diag file
(after a warm-up run so every session is cached), and the figure is the median over interleaved
rounds. Plain `onnxruntime.InferenceSession.run` on the
float model with the same inputs and net-run's thread setting (one intra-op thread) is measured in the
same run as the peer for the cpu overhead, and with onnxruntime's default threads for reference.
The dsp container is made as the product makes it: `deploy.quantize.quantize` (tf, 8-bit defaults)
of the float container, calibrated on the first 16 inputs.

    .venv/bin/python -m bench.bench_runtimes [--inferences 200] [--rounds 5]      (from the repository root)
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from rich.console import Console
from rich.table import Table

from deploy.container import ContainerMeta, TensorInfo, write_meta
from deploy.inputlist import format_input_list
from deploy.profiles import load_profile
from deploy.quantize import quantize
from emulator import netrun
from emulator.programs import ProgramContext
from emulator.sandbox import Sandbox
from tests.deploy.models import conv_net

ROOT = Path(__file__).resolve().parent.parent

RUNTIMES = {"cpu": (), "gpu": ("--use_gpu",), "gpu_fp16": ("--use_gpu", "--gpu_mode", "float16"), "dsp": ("--use_dsp",)}
BUNDLE = "/data/local/tmp/edgeloop/bench"
CALIBRATION = 16  # inputs the dsp container is calibrated on


@dataclasses.dataclass
class _Device:
    profile: object
    faults: object = None

    def log(self, event: str, **fields: object) -> None:
        pass


def _models() -> dict[str, onnx.ModelProto]:
    return {"digits (examples/digits)": onnx.load(str(ROOT / "examples/digits/digits_cnn.onnx")),
            "conv_net 3x112x112, 32 ch": conv_net(size=112, channels=32)}


def _inputs(model: onnx.ModelProto, n: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in model.graph.input}
    return [{k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()} for _ in range(n)]


def _meta(model: onnx.ModelProto, kind: str) -> ContainerMeta:
    def info(v: onnx.ValueInfoProto) -> TensorInfo:
        return TensorInfo(v.name, tuple(d.dim_value for d in v.type.tensor_type.shape.dim))

    return ContainerMeta(kind, [info(v) for v in model.graph.input], [info(v) for v in model.graph.output])


def _put(fs: Sandbox, path: str, data: bytes) -> None:
    fs.mkdir(path.rpartition("/")[0], parents=True)
    with fs.open_write(path) as f:
        f.write(data)


def _put_bundle(fs: Sandbox, model: onnx.ModelProto, feeds: list[dict[str, np.ndarray]]) -> None:
    """Inputs, input list, the float container and edgeloop's own quantization of it (what a dsp job of
    the product runs), calibrated on the first CALIBRATION inputs of the same bundle."""
    entries = []
    for i, feed in enumerate(feeds):
        for name, array in feed.items():
            _put(fs, f"{BUNDLE}/inputs/{i}/{name}.raw", array.astype("<f4").tobytes())
        entries.append({name: f"inputs/{i}/{name}.raw" for name in feed})
    _put(fs, f"{BUNDLE}/input_list.txt", format_input_list(entries).encode())
    _put(fs, f"{BUNDLE}/calibration.txt", format_input_list(entries[:CALIBRATION]).encode())
    float_model = onnx.ModelProto.FromString(model.SerializeToString())
    write_meta(float_model, _meta(model, "float"))
    _put(fs, f"{BUNDLE}/float.onnx", float_model.SerializeToString())
    quantize(fs.host(f"{BUNDLE}/float.onnx"), fs.host(f"{BUNDLE}/calibration.txt"),
             fs.host(f"{BUNDLE}/quantized.onnx", write=True), cache=False)


def _netrun_median(fs: Sandbox, container: str, flags: tuple[str, ...]) -> float:
    argv = ["edgeloop-net-run", "--container", container, "--input_list", "input_list.txt", "--output_dir", "out",
            *flags]
    device = _Device(load_profile("galaxy-s23"))
    for _ in range(2):  # the first run creates and caches the session
        err = io.BytesIO()
        ctx = ProgramContext(argv, {}, BUNDLE, fs, io.BytesIO(), io.BytesIO(), err, device, threading.Event())
        if netrun.main(ctx) != 0:
            raise SystemExit(f"net-run failed: {err.getvalue().decode()}")
    diag = json.loads(fs.host(f"{BUNDLE}/out/{netrun.DIAG_NAME}").read_text())
    return statistics.median(diag["inference_ms"])


def _plain_median(model: onnx.ModelProto, feeds: list[dict[str, np.ndarray]], threads: int) -> float:
    """onnxruntime alone: with net-run's session options (threads=1), or onnxruntime's defaults (threads=0)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    session.run(None, feeds[0])
    times = []
    for feed in feeds:
        t0 = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inferences", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    table = Table("model", "runtime", "median ms / inference", "vs float cpu")
    overhead = Table("model", "plain InferenceSession.run ms (1 thread, as net-run)", "net-run cpu ms", "ratio",
                     "onnxruntime default threads ms")
    with tempfile.TemporaryDirectory() as tmp:
        for label, model in _models().items():
            feeds = _inputs(model, args.inferences)
            fs = Sandbox(Path(tmp) / label.split()[0], 1 << 34)
            _put_bundle(fs, model, feeds)
            rounds: dict[str, list[float]] = {rt: [] for rt in [*RUNTIMES, "plain", "default"]}
            for _ in range(args.rounds):  # interleaved, so a busy moment of the machine hits every runtime alike
                for rt, flags in RUNTIMES.items():
                    container = f"{'quantized' if rt == 'dsp' else 'float'}.onnx"
                    rounds[rt].append(_netrun_median(fs, container, flags))
                rounds["plain"].append(_plain_median(model, feeds, 1))
                rounds["default"].append(_plain_median(model, feeds, 0))
            medians = {rt: statistics.median(values) for rt, values in rounds.items()}
            for rt in RUNTIMES:
                table.add_row(label, rt, f"{medians[rt]:.3f}", f"{medians[rt] / medians['cpu']:.2f}x")
            plain = medians["plain"]
            overhead.add_row(label, f"{plain:.3f}", f"{medians['cpu']:.3f}", f"{medians['cpu'] / plain:.2f}",
                             f"{medians['default']:.3f}")
    console = Console()
    console.print(table)
    console.print(overhead)


if __name__ == "__main__":
    main()

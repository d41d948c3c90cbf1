"""Conversion time of a 5.4 M-parameter ResNet-ish ONNX model, beside offline graph optimisers.

    .venv/bin/python -m bench.bench_convert [--repeat 5]      (from the repository root)

Peers, measured in the same run on the same model file: onnxruntime's offline optimisation
(`SessionOptions.optimized_model_filepath`, levels BASIC and EXTENDED: session creation, which
optimises and writes the file) and onnxsim (`onnxsim.simplify` + save) when it is installed
(`pip install onnxsim`; it is not an edgeloop dependency). edgeloop's figure is a full
`convert(..., cache=False)`: load, shape inference, folding, op check, metadata, atomic save.
Each tool's output is run under onnxruntime and compared with the source model, so a fast
but wrong tool would show. Times are medians of `--repeat` rounds, each round running every tool once.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from rich.console import Console
from rich.table import Table

from deploy.convert import convert
from tests.deploy.models import random_feeds, resnet_like, save


def median_seconds(tools: dict[str, Callable[[], None]], repeat: int) -> dict[str, float]:
    """Each tool's median over `repeat` interleaved rounds, so load on a shared machine hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in tools}
    for _ in range(repeat):
        for name, fn in tools.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def ort_offline(level: ort.GraphOptimizationLevel, source: Path, dest: Path) -> Callable[[], None]:
    def run() -> None:
        options = ort.SessionOptions()
        options.graph_optimization_level = level
        options.optimized_model_filepath = str(dest)
        ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
    return run


def onnxsim_peer(source: Path, dest: Path) -> Callable[[], None] | None:
    try:
        import onnxsim
    except ImportError:
        return None

    def run() -> None:
        simplified, ok = onnxsim.simplify(onnx.load(str(source)))
        assert ok, "onnxsim could not validate its result"
        onnx.save(simplified, str(dest))
    return run


def max_abs_error(path: Path, source: Path, feeds: dict[str, np.ndarray]) -> float:
    plain = ort.SessionOptions()
    plain.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    want = ort.InferenceSession(str(source), plain, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    got = ort.InferenceSession(str(path), plain, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    return float(np.abs(got - want).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = resnet_like()
        source = save(model, work / "resnet_like.onnx")
        params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
        feeds = random_feeds(model, seed=0)
        tools: dict[str, tuple[Callable[[], None], Path]] = {
            "edgeloop convert": (lambda: convert(source, work / "edgeloop.onnx", cache=False), work / "edgeloop.onnx"),
            "onnxruntime offline BASIC": (ort_offline(ort.GraphOptimizationLevel.ORT_ENABLE_BASIC, source,
                                                      work / "ort_basic.onnx"), work / "ort_basic.onnx"),
            "onnxruntime offline EXTENDED": (ort_offline(ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, source,
                                                         work / "ort_ext.onnx"), work / "ort_ext.onnx"),
        }
        sim = onnxsim_peer(source, work / "onnxsim.onnx")
        if sim is not None:
            tools["onnxsim"] = (sim, work / "onnxsim.onnx")
        results = median_seconds({name: fn for name, (fn, _) in tools.items()}, args.repeat)
        ours = results["edgeloop convert"]
        table = Table(title=f"conversion of a {params / 1e6:.1f} M-param ResNet-ish model "
                            f"({len(model.graph.node)} nodes), median of {args.repeat}")
        for col in ("tool", "seconds", "edgeloop / tool", "nodes out", "max |error| vs source"):
            table.add_column(col)
        for name, seconds in results.items():
            out = tools[name][1]
            table.add_row(name, f"{seconds:.3f}", f"{ours / seconds:.2f}", str(len(onnx.load(str(out)).graph.node)),
                          f"{max_abs_error(out, source, feeds):.2e}")
        Console().print(table)


if __name__ == "__main__":
    main()

"""onnxruntime plumbing shared by calibration, bias correction, metrics and the debugger."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from typing import TypeVar

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto

from deploy.quantize.bodies import body_activations, expose_bodies

MAX_BATCH = 64  # feeds per onnxruntime call: past a few dozen the per-call overhead is gone
WORKERS = 2  # onnxruntime calls at once (run_batched)
AHEAD_BYTES = 1 << 30  # values computed ahead of the consumer at most (a call's at least)
T = TypeVar("T")
R = TypeVar("R")


def session(model: onnx.ModelProto, log_level: int = 3) -> ort.InferenceSession:
    """A CPU session without graph fusions: a QDQ graph then computes exactly the float
    quantize-dequantize simulation (fusing into QLinear kernels would requantize in integers).

    Idle worker threads sleep instead of spinning: between inferences the quantizer's own numpy
    work (histograms, metrics) runs on the main thread, and spinning workers took the cores it
    needs (on 2 busy cores the digits quantization took 1.3x as long, the OCR models 1.5x)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.log_severity_level = log_level
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def float_activations(model: onnx.ModelProto) -> list[str]:
    """Names of the float tensors that flow between nodes (graph inputs, then node outputs in order,
    then those of If/Loop/Scan bodies)."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type
             for v in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]}
    initializers = {i.name for i in model.graph.initializer}
    names = [v.name for v in model.graph.input if v.name not in initializers]
    names += [o for node in model.graph.node for o in node.output if o]
    return [n for n in names if types.get(n) == TensorProto.FLOAT] + body_activations(inferred)


def expose(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """A copy of `model` that also returns the given intermediate tensors as graph outputs (a body
    tensor as one [1, N] row of all its values in the inference: bodies.expose_bodies)."""
    exposed = expose_bodies(model, names)
    present = {o.name for o in exposed.graph.output}
    for name in names:
        if name not in present:
            exposed.graph.output.append(onnx.ValueInfoProto(name=name))  # type left to inference
    return exposed


def run_batched(model: onnx.ModelProto, names: list[str], feeds: Iterable[dict[str, np.ndarray]],
                batch_bytes: int) -> Iterator[tuple[int, list[np.ndarray]]]:
    """The values of `names` for every feed, in order, as (n, values of n feeds stacked on axis 0).

    A model of batch 1 is run on several feeds per call (about `batch_bytes` of values, at most
    MAX_BATCH feeds), concatenated along the batch axis, where that gives exactly the values of
    one feed at a time: per-call overhead dominates small models. Reshapes to a constant shape or
    ops across the batch break that; so the first batch is also run feed by feed and compared bit
    for bit, and any difference, error or unexpected shape means one feed per call.

    WORKERS calls run at once, ahead of the consumer (within AHEAD_BYTES of values): a model of
    many small ops keeps one call from using more than about one core (PP-OCRv4 det: 73 ms on one
    thread, 68 ms on two), and the caller's numpy work runs meanwhile.
    """
    single = session(model)
    feeds = iter(feeds)
    first = next(feeds, None)
    if first is None:
        return
    values = single.run(names, first)
    yield 1, values
    feed_bytes = max(1, sum(v.nbytes for v in values))
    size = max(1, min(MAX_BATCH, batch_bytes // feed_bytes))

    batched = None  # the session taking `size` feeds per call, once checked
    if size > 1:
        group = list(islice(feeds, size))
        wide = _wide_session(model) if len(group) > 1 else None
        stacked = _run_wide(wide, names, group) if wide is not None else None
        if stacked is not None and _same(stacked, [single.run(names, feed) for feed in (group[0], group[-1])]):
            batched = wide
            yield len(group), stacked
        else:
            size = 1
            yield from ((1, single.run(names, feed)) for feed in group)

    def run(group: list[dict[str, np.ndarray]]) -> tuple[int, list[np.ndarray]]:
        if batched is None:
            return 1, single.run(names, group[0])
        return len(group), batched.run(names, _stack(group))

    groups = iter(lambda: list(islice(feeds, size)), [])
    yield from _in_order(run, groups, max(1, min(WORKERS + 1, AHEAD_BYTES // (feed_bytes * size))))


def _in_order(run: Callable[[T], R], items: Iterable[T], depth: int) -> Iterator[R]:
    """`run` of every item, in order, up to `depth` started ahead of the one handed out."""
    if depth == 1:
        yield from map(run, items)
        return
    with ThreadPoolExecutor(WORKERS) as pool:
        pending: deque[Future[R]] = deque()
        for item in items:
            pending.append(pool.submit(run, item))
            if len(pending) == depth:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _stack(group: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {name: np.concatenate([feed[name] for feed in group]) for name in group[0]}


def _wide_session(model: onnx.ModelProto) -> ort.InferenceSession | None:
    """A session of `model` whose inputs take any batch (outputs' shapes left to inference), or None
    when an input has no leading dimension of 1, or the graph has an If/Loop/Scan: a condition or
    trip count computed over the whole batch would run one branch for every feed, which comparing
    the first and last rows need not catch."""
    if any(node.op_type in ("If", "Loop", "Scan") for node in model.graph.node):
        return None
    wide = onnx.ModelProto()
    wide.CopyFrom(model)
    initializers = {i.name for i in wide.graph.initializer}
    for value in wide.graph.input:
        dims = value.type.tensor_type.shape.dim
        if value.name in initializers:
            continue
        if not dims or dims[0].dim_value != 1:
            return None
        dims[0].dim_param = "batch"
    for value in wide.graph.output:
        value.type.tensor_type.ClearField("shape")
    wide.graph.ClearField("value_info")
    try:
        return session(wide, log_level=4)  # a graph that cannot take a batch is expected, not an error
    except Exception:  # onnxruntime's own exception types (Fail, InvalidGraph, ...) share no base class
        return None


def _run_wide(wide: ort.InferenceSession, names: list[str],
              group: list[dict[str, np.ndarray]]) -> list[np.ndarray] | None:
    try:
        values = wide.run(names, _stack(group))
    except Exception:  # as in _wide_session: e.g. a Reshape to a constant shape holding the batch of 1
        return None
    return values if all(v.ndim and v.shape[0] == len(group) for v in values) else None


def _same(stacked: list[np.ndarray], singles: list[list[np.ndarray]]) -> bool:
    """Bit for bit: the first and last feed of the batch alone give its first and last rows."""
    return all(s.shape[:1] == (1,) and np.array_equal(v[i], s[0], equal_nan=v.dtype.kind in "fc")
               for i, values in zip((0, -1), singles, strict=True) for v, s in zip(stacked, values, strict=True))


def per_feed(batches: Iterable[tuple[int, list[np.ndarray]]]) -> Iterator[list[np.ndarray]]:
    """`run_batched`'s values one feed at a time (views: each keeps its leading axis of 1)."""
    for count, values in batches:
        if count == 1:
            yield values
        else:
            yield from ([v[j:j + 1] for v in values] for j in range(count))

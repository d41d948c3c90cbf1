"""How each emulated runtime executes a container (docs/spec.md §3), as graph rewrites run by onnxruntime.

- cpu: float math. A quantized container is dequantized at init: weights become float
  initializers and activation Quantize/Dequantize pairs are dropped.
- gpu (`GPU_FLOAT32_16_HYBRID`): float math, but every intermediate tensor is stored in fp16,
  emulated by a Cast to fp16 and back after each node output.
- gpu_fp16 (`GPU_FLOAT16`): as gpu, and the weights and inputs are fp16 as well.
- dsp / aip: the quantized QDQ graph runs as is (aip refuses float containers; the caller
  quantizes a float container for dsp before asking for a session).

All of this runs in net-run's engine process (emulator.engine, serve() below), under the device's
RAM. Sessions are cached there by (container hash, mode) so warm runs skip session creation;
per-layer times come from a profiled twin session run on the same inputs after the timed runs.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import re
import resource
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from deploy.sdk import dequantized_graph

INSERTED = "edgeloop/"  # prefix of the nodes the emulation adds; they are not layers of the model
_FLOAT = TensorProto.FLOAT
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})


@dataclass(frozen=True)
class Mode:
    """What a session computes: the runtime, plus the extra tensors asked for (debug, set_output_tensors)."""

    runtime: str  # cpu | cpu_fxp (CPU fixed-point: QDQ graph as is) | gpu | gpu_fp16 | dsp | aip
    extra_outputs: tuple[str, ...] = ()
    every_layer: bool = False  # --debug: every float intermediate becomes an output


def round_through_fp16(model: onnx.ModelProto, *, weights: bool) -> onnx.ModelProto:
    """Store every float intermediate (and with `weights`, the weights and inputs) in fp16."""
    graph = model.graph
    if weights:
        for i, init in enumerate(graph.initializer):
            if init.data_type == _FLOAT:
                rounded = numpy_helper.to_array(init).astype(np.float16).astype(np.float32)
                graph.initializer[i].CopyFrom(numpy_helper.from_array(rounded, init.name))
    float_tensors = _float_tensors(model)
    rename: dict[str, str] = {}
    nodes: list[onnx.NodeProto] = []
    if weights:
        for inp in graph.input:
            if inp.name in float_tensors:
                rename[inp.name] = f"{INSERTED}{inp.name}"
                nodes.extend(_fp16_round(inp.name, rename[inp.name]))
    for node in graph.node:
        for k, name in enumerate(node.input):
            node.input[k] = rename.get(name, name)
        nodes.append(node)
        if node.name.startswith(INSERTED):
            continue
        for k, name in enumerate(node.output):
            if name in float_tensors:
                node.output[k] = f"{INSERTED}raw/{name}"
                nodes.extend(_fp16_round(node.output[k], name))
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def _fp16_round(source: str, target: str) -> list[onnx.NodeProto]:
    half = f"{INSERTED}fp16/{target}"
    return [helper.make_node("Cast", [source], [half], to=TensorProto.FLOAT16, name=f"{INSERTED}cast16/{target}"),
            helper.make_node("Cast", [half], [target], to=_FLOAT, name=f"{INSERTED}cast32/{target}")]


def _float_tensors(model: onnx.ModelProto) -> set[str]:
    """Names of the float32 tensors of the graph (inputs and node outputs), from ONNX type inference."""
    inferred = onnx.shape_inference.infer_shapes(model)
    infos = [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]
    return {v.name for v in infos if v.type.tensor_type.elem_type == _FLOAT}


def add_outputs(model: onnx.ModelProto, names: Iterable[str]) -> onnx.ModelProto:
    """Expose intermediate tensors as graph outputs (SNPE's --debug and --set_output_tensors)."""
    present = {o.name for o in model.graph.output}
    for name in names:
        if name not in present:
            model.graph.output.append(helper.make_tensor_value_info(name, _FLOAT, None))
            present.add(name)
    return model


def layer_outputs(model: onnx.ModelProto) -> list[str]:
    """Every float tensor a layer of the model produces, in graph order. In a QDQ graph a layer's
    output is the value as stored, i.e. after its Quantize/Dequantize pair (edgeloop's quantizer
    gives that tensor the float model's name)."""
    floats = _float_tensors(model)
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)

    def stored(name: str) -> str:
        for q in (r for r in readers.get(name, []) if r.op_type == "QuantizeLinear"):
            for dq in (r for r in readers.get(q.output[0], []) if r.op_type == "DequantizeLinear"):
                return dq.output[0]
        return name

    return [stored(o) for n in model.graph.node if n.op_type not in QDQ_OPS and not n.name.startswith(INSERTED)
            for o in n.output if o in floats]


def name_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """Give every node a unique name: per-layer times and --debug outputs are keyed by it."""
    seen: set[str] = set()
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{i}"
        seen.add(node.name)
    return model


def prepare(model: onnx.ModelProto, quantized: bool, mode: Mode) -> onnx.ModelProto:
    """The graph a runtime actually executes, from the container's graph."""
    model = name_nodes(onnx.ModelProto.FromString(model.SerializeToString()))
    wanted = list(mode.extra_outputs)
    if mode.every_layer:
        wanted = [*layer_outputs(model), *wanted]
    add_outputs(model, wanted)
    if quantized and mode.runtime in ("cpu", "gpu", "gpu_fp16"):
        dequantized_graph(model, node_prefix=INSERTED)
    if mode.runtime in ("gpu", "gpu_fp16"):
        round_through_fp16(model, weights=mode.runtime == "gpu_fp16")
    return model


@dataclass(frozen=True)
class Prepared:
    """A ready session and the exact graph it runs (a profiled twin is built from the same bytes)."""

    session: ort.InferenceSession
    graph: bytes
    resident_kb: int = 0  # what creating it added to the engine's resident size (RunMemory)


class SessionCache:
    """Onnxruntime sessions by (container hash, mode): a warm run pays no session creation.

    The least recently used session goes once `capacity` are held, so a long-lived device that
    has run many containers keeps its memory bounded."""

    def __init__(self, capacity: int = 16) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._prepared: OrderedDict[tuple[str, Mode], Prepared] = OrderedDict()

    def get(self, model: onnx.ModelProto, model_bytes: bytes, quantized: bool, mode: Mode) -> tuple[Prepared, bool]:
        """Return (prepared session, hit)."""
        key = (hashlib.sha256(model_bytes).hexdigest(), mode)
        with self._lock:
            if key in self._prepared:
                self._prepared.move_to_end(key)
                return self._prepared[key], True
        before = memory_kb(False)["VmRSS"]
        graph = prepare(model, quantized, mode).SerializeToString()
        session = new_session(graph)
        prepared = Prepared(session, graph, max(0, memory_kb(False)["VmRSS"] - before))
        with self._lock:
            self._prepared[key] = prepared
            while len(self._prepared) > self.capacity:
                self._prepared.popitem(last=False)
        return prepared, False

    def __len__(self) -> int:
        return len(self._prepared)


def new_session(graph: bytes, *, profile_dir: Path | None = None) -> ort.InferenceSession:
    """A CPU session; with `profile_dir`, onnxruntime's profiler writes per-node times there."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    # One thread: the device shares the host's cores with the adb server and the harness, and a second
    # onnxruntime thread spinning for work competes with them (small models ran 30 % slower and noisier).
    options.intra_op_num_threads = 1
    if profile_dir is not None:
        # Basic optimisation keeps the container's node names, so per-layer times name real layers.
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.enable_profiling = True
        options.profile_file_prefix = str(profile_dir / "ort")
    return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


def raise_clocks(session: ort.InferenceSession, names: list[str], feeds: dict[str, np.ndarray],
                 seconds: float = 0.02) -> float:
    """The emulated clock vote of a high-performance --perf_profile. A phone raises its clocks before
    executing; here the host core is kept busy with untimed inferences for `seconds` (at least one), so
    timed ones do not run on a core still waking from idle, which costs small models up to 40 %.
    Returns the seconds spent."""
    started = time.perf_counter()
    session.run(names, feeds)
    while time.perf_counter() - started < seconds:
        session.run(names, feeds)
    return time.perf_counter() - started


def profile_layers(graph: bytes, feeds: Iterable[dict[str, np.ndarray]]) -> dict[str, list[float]]:
    """Per-layer ms for each feed, from a profiled twin of the session (so timed runs carry no profiler cost)."""
    with tempfile.TemporaryDirectory(prefix="edgeloop-netrun-prof-") as tmp:
        session = new_session(graph, profile_dir=Path(tmp))
        outputs = [session.get_outputs()[0].name]
        for feed in feeds:
            session.run(outputs, feed)
        return layer_times(json.loads(Path(session.end_profiling()).read_text()))


def layer_times(profile_json: list[dict]) -> dict[str, list[float]]:
    """Per-layer kernel times in ms from onnxruntime's profile, one entry per inference. Emulation nodes
    and QDQ bookkeeping are left out: a device's layer list has neither."""
    layers: dict[str, list[float]] = {}
    for event in profile_json:
        name = event.get("name", "")
        if event.get("cat") != "Node" or not name.endswith("_kernel_time"):
            continue
        layer = name[: -len("_kernel_time")]
        if not layer.startswith(INSERTED) and event.get("args", {}).get("op_name") not in QDQ_OPS:
            layers.setdefault(layer, []).append(event.get("dur", 0) / 1000.0)
    return layers


SESSIONS = SessionCache()


@functools.cache
def _reference() -> tuple[ort.InferenceSession, dict[str, np.ndarray]]:
    """A fixed small computation (four 64x64 MatMuls, as net-run's own sessions run them: one thread)."""
    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32) / 8, "w")
    nodes = [helper.make_node("MatMul", [f"x{i}", "w"], [f"x{i + 1}"]) for i in range(4)]
    graph = helper.make_graph(nodes, "host-reference", [helper.make_tensor_value_info("x0", _FLOAT, [16, 64])],
                              [helper.make_tensor_value_info("x4", _FLOAT, [16, 64])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return new_session(model.SerializeToString()), {"x0": np.ones((16, 64), np.float32)}


def reference_ms() -> float:
    """How long the host takes for the fixed reference computation now. Timed right after each inference,
    it tells how fast the host's core was at that moment: a busy or shared host (a virtual machine's
    neighbours) slows both alike, so latency relative to it stays comparable across runs (docs/farm.md)."""
    session, feeds = _reference()
    t0 = time.perf_counter()
    session.run(None, feeds)
    return (time.perf_counter() - t0) * 1000.0


def _spin_until(deadline: float) -> None:
    while time.perf_counter() < deadline:
        pass


# -- the engine process (emulator.engine): what runs there -------------------------------------------

_OOM_WORDS = ("bad allocation", "bad_alloc", "Failed to allocate", "out of memory")


def serve_fd(fd: int, ram_bytes: int) -> None:
    """The engine's program: requests on the socket `fd` (emulator.engine) until the device hangs up."""
    serve(Connection(fd), ram_bytes)


def serve(conn: Any, ram_bytes: int) -> None:
    """Answer the device's requests until it hangs up, within `ram_bytes` of address space. Every
    answer is (kind, value): "ok", "error" with one line, or "oom" when memory ran out."""
    resource.setrlimit(resource.RLIMIT_AS, (ram_bytes, ram_bytes))
    conn.send(("ok", "ready"))
    held: OrderedDict[str, Prepared] = OrderedDict()  # the sessions runs name by key, as many as SESSIONS keeps
    memory = RunMemory()
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        try:
            answer: tuple[str, Any] = ("ok", _answer(request, held, memory))
        except MemoryError:
            answer = ("oom", "")
        except Exception as exc:  # onnxruntime's refusals and failures: one line for the device to report
            line = (str(exc).splitlines() or [type(exc).__name__])[0]
            answer = ("oom" if any(w in line for w in _OOM_WORDS) else "error", line)
        try:
            conn.send(answer)
        except MemoryError:  # outputs too large to send within the limit
            conn.send(("oom", ""))


def memory_kb(reset: bool) -> dict[str, int]:
    """This process's VmPeak, VmSize, VmHWM and VmRSS (kB, from /proc/self/status). `reset` first makes
    its peak resident size the current one (clear_refs 5), so that a run's VmHWM is its own; a
    kernel that refuses that leaves the peak since the engine started."""
    if reset:
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")
    status = Path("/proc/self/status").read_text()
    return {key: int(value) for key, value in re.findall(r"^(VmPeak|VmSize|VmHWM|VmRSS):\s+(\d+) kB", status, re.M)}


class RunMemory:
    """A net-run's memory as its own process would show it. On a phone every net-run is a new process;
    here one engine serves them all and keeps their sessions, so its raw figures grow with whatever
    ran before (a gpu_fp16 job's peak stayed in every later cpu job's). A run's figures are the
    engine's size when it started serving (the program and onnxruntime loaded and set up by one
    session, which every process pays), plus the sessions
    the run reuses from earlier runs (what creating them added), plus what the engine grew by since
    the run began (a session it creates, its tensors)."""

    def __init__(self) -> None:
        session, feeds = _reference()  # onnxruntime's one-time set-up (arenas, threads), every process's cost
        session.run(None, feeds)
        self.base = memory_kb(False)
        self.start = self.base
        self.reused_kb = 0

    def reset(self) -> None:
        """A new run: its peak starts now."""
        self.start = memory_kb(True)
        self.reused_kb = 0

    def reuse(self, prepared: Prepared) -> None:
        self.reused_kb += prepared.resident_kb

    def figures(self) -> dict[str, int]:
        now = memory_kb(False)
        rss = self.base["VmRSS"] + self.reused_kb
        size = self.base["VmSize"] + self.reused_kb
        peak_growth = max(0, now["VmHWM"] - self.start["VmRSS"])
        return {"VmRSS": rss + max(0, now["VmRSS"] - self.start["VmRSS"]), "VmHWM": rss + peak_growth,
                "VmSize": size + max(0, now["VmSize"] - self.start["VmSize"]), "VmPeak": size + peak_growth}


def _answer(request: tuple[Any, ...], held: OrderedDict[str, Prepared], memory: RunMemory) -> Any:
    """("session", container bytes, quantized, mode) -> (key, output names, warm);
    ("run", key, feeds, ramp, slowdown) -> (outputs per feed, ms per feed, ramp ms, host reference ms per feed);
    ("layers", key, feeds) -> per-layer ms; ("memory", reset) -> the run's memory (RunMemory)."""
    kind = request[0]
    if kind == "memory":
        if request[1]:
            memory.reset()
        return memory.figures()
    if kind == "session":
        _, model_bytes, quantized, mode = request
        prepared, warm = SESSIONS.get(onnx.load_from_string(model_bytes), model_bytes, quantized, mode)
        if warm:
            memory.reuse(prepared)
        key = f"{hashlib.sha256(model_bytes).hexdigest()}/{mode}"
        held[key] = prepared
        held.move_to_end(key)
        while len(held) > SESSIONS.capacity:  # a session SESSIONS let go is not kept alive here
            held.popitem(last=False)
        return key, [o.name for o in prepared.session.get_outputs()], warm
    if kind == "run":
        _, key, feeds, ramp, slowdown = request
        session = held[key].session
        names = [o.name for o in session.get_outputs()]
        ramp_s = raise_clocks(session, names, feeds[0]) if ramp and feeds else 0.0
        outputs, times, references = [], [], []
        for i, feed in enumerate(feeds):  # nothing but the host's reference between timed inferences
            t0 = time.perf_counter()
            try:
                outputs.append(session.run(names, feed))
            except Exception as exc:
                raise RuntimeError(f"inference {i}: {(str(exc).splitlines() or [''])[0]}") from None
            if slowdown > 1:  # the slowdown fault: computing for that much longer, as a slower chip would
                _spin_until(t0 + (time.perf_counter() - t0) * slowdown)
            times.append((time.perf_counter() - t0) * 1000.0)
            references.append(reference_ms())
        return outputs, times, ramp_s * 1000.0, references
    _, key, feeds = request
    return profile_layers(held[key].graph, feeds)

"""`/system/bin/edgeloop-net-run`: the emulated device's snpe-net-run, executing containers with onnxruntime.

It takes snpe-net-run's flags, reads the container, the input list and the raw inputs through the
device's sandbox only, and writes `<output_dir>/Result_<i>/<tensor>.raw` (docs/spec.md §2) plus
`<output_dir>/edgeloop_diag.json` (init time, per-inference times, per-layer times when profiling),
which `harness.timings.parse_timings("edgeloop-diag", ...)` reads. How each runtime computes is in
`emulator.runtimes`; this module is the program around it: flags, files, errors, faults, timing.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

import numpy as np
import onnx

from deploy.container import ContainerMeta, TensorInfo, read_meta
from deploy.errors import EdgeloopError
from deploy.inputlist import InputList, bind_entry, parse_input_list_text, result_path, write_input_list
from deploy.profiles import RUNTIME_UNITS
from deploy.sdk import activation_bitwidth
from emulator import runtimes
from emulator.engine import Cancelled, EngineError, TimedOut, engine
from emulator.programs import ProgramContext, register
from emulator.sandbox import DeviceOSError

PATH = "/system/bin/edgeloop-net-run"
TAG = "edgeloop-net-run"  # its logcat tag
DIAG_NAME = "edgeloop_diag.json"
OOM_KILLED = 137  # 128 + SIGKILL: what the shell sees of a process the lowmemorykiller (or a watchdog) ends
DIAG_FORMAT = "edgeloop-diag"
CHUNK_BYTES = 64 << 20
T = TypeVar("T")
PERF_PROFILES = ("balanced", "default", "sustained_high_performance", "burst", "low_power_saver", "power_saver",
                 "high_power_saver", "low_balanced", "extreme_power_saver", "high_performance", "system_settings")
HIGH_CLOCKS = frozenset({"burst", "high_performance", "sustained_high_performance"})  # profiles that vote clocks up
RUNTIME_NAMES = {"cpu": "CPU", "gpu": "GPU", "gpu_fp16": "GPU_FLOAT16", "dsp": "DSP", "aip": "AIP"}
_RUNTIME_ORDER = {"cpu": "cpu", "cpu_float32": "cpu", "gpu": "gpu", "gpu_float32_16_hybrid": "gpu",
                  "gpu_float16": "gpu_fp16", "dsp": "dsp", "dsp_fixed8_tf": "dsp", "aip": "aip",
                  "aip_fixed8_tf": "aip"}


class NetRunError(Exception):
    """A failure reported the way snpe-net-run does (error_code / error_message) with an exit status."""

    def __init__(self, code: int, message: str, rc: int = 1) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.rc = rc


class _Stopped(Exception):
    """The run was cancelled (its stream closed) while the engine worked."""


class _HelpRequested(Exception):
    """-h/--help: usage on stdout and exit 0, as snpe-net-run does (argparse's own would exit the emulator)."""


class _Help(argparse.Action):
    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        raise _HelpRequested(parser.format_help())


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would exit the whole emulator process
        raise NetRunError(100, f"Invalid command line: {message}. See --help")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="edgeloop-net-run", add_help=False,
                description="Runs a container on an emulated runtime (snpe-net-run's flags).")
    p.add_argument("-h", "--help", action=_Help, nargs=0, help="show this help and exit")
    p.add_argument("--container", required=True)
    p.add_argument("--input_list", required=True)
    p.add_argument("--output_dir", default="output")
    p.add_argument("--use_gpu", action="store_true")
    p.add_argument("--gpu_mode", choices=("default", "float16"), default="default")
    p.add_argument("--use_dsp", action="store_true")
    p.add_argument("--use_aip", action="store_true")
    p.add_argument("--runtime_order", default="")
    p.add_argument("--perf_profile", choices=PERF_PROFILES, default="balanced")
    p.add_argument("--profiling_level", choices=("off", "basic", "moderate", "detailed"), default="off")
    p.add_argument("--debug", action="store_true")
    p.add_argument("--userbuffer_float", action="store_true")
    p.add_argument("--userbuffer_tf8", action="store_true")
    p.add_argument("--userbuffer_tfN", type=int, choices=(8, 16), default=None)
    p.add_argument("--use_native_input_files", action="store_true")
    p.add_argument("--use_native_output_files", action="store_true")
    p.add_argument("--set_output_tensors", default="")
    p.add_argument("--enable_cpu_fxp", action="store_true")
    return p


@dataclass(frozen=True)
class Encoding:
    """An asymmetric integer encoding (docs/spec.md §5): x = (q + offset) * scale, q in [0, 2^bw - 1]."""

    scale: float
    offset: int
    bitwidth: int

    def requantize(self, bitwidth: int) -> Encoding:
        """The same [min, max] range over `bitwidth` bits (userbuffer tfN of another width)."""
        if bitwidth == self.bitwidth:
            return self
        lo = self.offset * self.scale
        hi = lo + (2**self.bitwidth - 1) * self.scale
        scale = (hi - lo) / (2**bitwidth - 1)
        return Encoding(scale, round(lo / scale), bitwidth)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint8 if self.bitwidth <= 8 else np.uint16)

    def quantize(self, x: np.ndarray) -> np.ndarray:
        q = np.clip(np.round(x / self.scale) - self.offset, 0, 2**self.bitwidth - 1)
        return q.astype(self.dtype)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        return ((q.astype(np.float32) + self.offset) * self.scale).astype(np.float32)


def activation_encoding(meta: ContainerMeta, name: str) -> Encoding | None:
    """The encoding the container records for an activation tensor (AIMET 1.0.0 list or 0.6.1 mapping)."""
    acts = (meta.encodings or {}).get("activation_encodings")
    if isinstance(acts, list):
        for enc in acts:
            if enc.get("name") == name and str(enc.get("dtype", "INT")).upper() == "INT":
                return Encoding(float(enc["scale"][0]), int(enc["offset"][0]), int(enc.get("bw", 8)))
    elif isinstance(acts, dict) and acts.get(name):
        enc = acts[name][0]
        if enc.get("dtype", "int") == "int":
            return Encoding(float(enc["scale"]), int(enc["offset"]), int(enc.get("bitwidth", 8)))
    return None


@dataclass
class Job:
    """One invocation's resolved plan."""

    ctx: ProgramContext
    args: argparse.Namespace
    runtime: str
    model: onnx.ModelProto
    model_bytes: bytes
    meta: ContainerMeta
    input_list: InputList
    outputs: list[str]
    warnings: list[str] = field(default_factory=list)
    quantize_ms: float | None = None  # a float container on the DSP: the part of init spent quantizing it

    @property
    def userbuffer_bits(self) -> int | None:
        return _bits(self.args)

    def path(self, device_path: str) -> str:
        return self.ctx.fs.norm(device_path, self.ctx.cwd)


class _Shown:
    """This run as the device's image shows it: its lines in logcat, its busy cores in /proc/stat and
    /sys, its memory (as the engine measures it) in /proc/<pid>/status. A stand-in device without an
    image (net-run's own tests) shows nothing."""

    def __init__(self, ctx: ProgramContext) -> None:
        self.image = getattr(ctx.device, "image", None)
        self.token = ctx.cancel
        self.pid = self.image.pid_of(ctx.cancel) if self.image is not None else None
        self.memory: dict[str, int] = {}  # kB: VmPeak, VmSize, VmHWM, VmRSS

    def line(self, message: str) -> None:
        if self.image is not None:
            self.image.log.write("I", TAG, message, pid=self.pid or 0)

    def working(self, runtime: str) -> AbstractContextManager[None]:
        if self.image is None:
            return contextlib.nullcontext()
        return self.image.running(self.token, RUNTIME_UNITS[runtime], self.memory)

    def measure(self, ctx: ProgramContext, started: float, *, reset: bool = False) -> None:
        """Ask the engine for its memory; `reset` starts a new peak (the run's own VmHWM)."""
        self.memory.update(_engine_call(ctx, ("memory", reset), started))


@register(PATH)
def main(ctx: ProgramContext) -> int:
    """Entry point on the device: returns the exit status; every failure is one SNPE-like line on stderr."""
    log = getattr(ctx.device, "log", None) or (lambda event, **fields: None)
    log("netrun.start", argv=ctx.argv[1:], cwd=ctx.cwd)
    shown = _Shown(ctx)
    shown.line(f"start: {' '.join(ctx.argv[1:])}")
    began = time.monotonic()
    try:
        rc = _run(ctx, shown)
    except _HelpRequested as usage:
        ctx.stdout.write(str(usage).encode())
        rc = 0
    except NetRunError as exc:
        _err(ctx, f"error_code={exc.code}; error_message={exc.message}")
        rc = exc.rc
    except _Stopped:
        rc = 130
    except EngineError as exc:  # out of the device's RAM: this run ends, as the lowmemorykiller ends an app
        ram = ctx.device.profile.ram_mb
        _err(ctx, f"error_code=402; error_message=Out of memory: the network needs more than the {ram} MB of "
                  f"RAM of this device ({exc.message or 'allocation failed'}); net-run was killed")
        rc = OOM_KILLED
    except DeviceOSError as exc:
        _err(ctx, f"error_code=300; error_message=Failed to access {exc.path}: {exc.message}")
        rc = 1
    except EdgeloopError as exc:  # a shared helper's check (e.g. an output name that cannot be a file name)
        _err(ctx, f"error_code=301; error_message={exc.message}")
        rc = 1
    peak = f", VmHWM {shown.memory['VmHWM']} kB" if "VmHWM" in shown.memory else ""
    shown.line(f"finished: exit {rc} after {time.monotonic() - began:.3f} s{peak}")
    log("netrun.end", rc=rc)
    return rc


def _err(ctx: ProgramContext, line: str) -> None:
    ctx.stderr.write((line + "\n").encode())


def _run(ctx: ProgramContext, shown: _Shown) -> int:
    args = _parser().parse_args(ctx.argv[1:])
    if args.use_native_input_files and _bits(args) is None:
        raise NetRunError(100, "--use_native_input_files needs --userbuffer_tf8 or --userbuffer_tfN")
    if args.use_native_output_files and _bits(args) is None:
        raise NetRunError(100, "--use_native_output_files needs --userbuffer_tf8 or --userbuffer_tfN")
    runtime = _select_runtime(ctx, args)
    ctx.stdout.write(f"edgeloop-net-run: runtime {RUNTIME_NAMES[runtime]}, container {args.container}\n".encode())
    job = _load(ctx, args, runtime)
    with shown.working(runtime):
        return _execute(job, shown)


def _execute(job: Job, shown: _Shown) -> int:
    """Build the network, run every input and write the outputs and the diag file: the run's work."""
    ctx, args, runtime = job.ctx, job.args, job.runtime
    faults = getattr(ctx.device, "faults", None)
    shown.measure(ctx, time.monotonic(), reset=True)
    started, clock = time.perf_counter(), time.monotonic()
    model_bytes, quantized = job.model_bytes, job.meta.quantized
    if runtime == "dsp" and not quantized:
        model_bytes = _quantize_at_init(job)
        quantized = True
    # CPU fixed-point mode runs a quantized container's integer graph instead of dequantizing it.
    executed = "cpu_fxp" if runtime == "cpu" and quantized and args.enable_cpu_fxp else runtime
    mode = runtimes.Mode(executed, extra_outputs=tuple(job.outputs), every_layer=args.debug)
    try:
        key, names, warm = _engine_call(ctx, ("session", model_bytes, quantized, mode), clock)
    except EngineError as exc:  # onnxruntime refuses the graph: the device would fail to build the network
        if exc.out_of_memory:
            raise
        raise NetRunError(400, f"Unable to create network for runtime {RUNTIME_NAMES[runtime]}: "
                               f"{exc.message}") from None
    init_ms = (time.perf_counter() - started) * 1000.0
    shown.measure(ctx, clock)

    if faults is not None and getattr(faults, "netrun_hang", False):
        ctx.cancel.wait()
        return 130
    if faults is not None and getattr(faults, "netrun_crash", False):
        _crash(job)
        return 139

    written = names if args.debug else job.outputs
    inference_ms: list[float] = []
    reference_ms: list[float] = []
    slowdown = getattr(faults, "slowdown", None) or 1.0
    ramp_ms = 0.0
    for chunk in _chunks(enumerate(_feeds(job)), _chunk_size(job)):
        if ctx.cancel.is_set():
            return 130
        first = chunk[0][0]
        try:  # inferences back to back in the engine: file I/O between them would skew their times
            results, times, ramp, references = _engine_call(
                ctx, ("run", key, [feeds for _, feeds in chunk], first == 0 and args.perf_profile in HIGH_CLOCKS,
                      slowdown), clock)
        except EngineError as exc:  # onnxruntime's own failure while executing: reported, never a traceback
            if exc.out_of_memory:
                raise
            where, _, why = exc.message.partition(": ")
            index = first + int(where.split()[-1]) if where.startswith("inference ") else first
            raise NetRunError(500, f"Execution of inference {index} failed: {why or exc.message}") from None
        shown.measure(ctx, clock)
        ramp_ms = ramp_ms or ramp
        inference_ms += times
        reference_ms += references
        for (i, _), values in zip(chunk, results, strict=True):
            ctx.stdout.write(f"Processing DNN input(s):\n{_line(job, i)}\n".encode())
            by_name = dict(zip(names, values, strict=True))
            for name in written:
                _write_output(job, i, name, by_name[name])
    layers = _engine_call(ctx, ("layers", key, list(_feeds(job))), clock) if args.profiling_level != "off" else {}
    _write_diag(job, init_ms=init_ms, ramp_ms=ramp_ms, inference_ms=inference_ms, layers=layers, warm=warm,
                host_reference_ms=reference_ms)
    return 0


def _engine_call(ctx: ProgramContext, request: tuple, started: float) -> Any:
    """A request to the device's engine (emulator.engine), within the profile's RAM and, counted from
    `started` (the run's start, time.monotonic()), its run_limit_s."""
    limit = ctx.device.profile.run_limit_s
    try:
        return engine(ctx.device.profile.ram_mb).call(request, ctx.cancel, started + limit)
    except Cancelled:
        raise _Stopped from None
    except TimedOut:
        raise NetRunError(403, f"net-run ran past this device's limit of {limit:g} s and was killed",
                          rc=OOM_KILLED) from None


def _chunk_size(job: Job) -> int:
    """Inferences per batch of back-to-back runs, so their inputs and outputs stay within ~64 MiB."""
    per_inference = sum(t.nbytes for t in job.meta.inputs) + sum(t.nbytes for t in job.meta.outputs)
    return max(1, min(256, CHUNK_BYTES // max(1, per_inference)))


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _line(job: Job, index: int) -> str:
    return "\n".join(job.input_list.entries[index].values())


def _bits(args: argparse.Namespace) -> int | None:
    return 8 if args.userbuffer_tf8 else args.userbuffer_tfN


def _select_runtime(ctx: ProgramContext, args: argparse.Namespace) -> str:
    """Pick the runtime as snpe-net-run does: --runtime_order's first available one, else the --use_* flag."""
    profile = ctx.device.profile
    if args.runtime_order:
        order = [r.strip().lower() for r in args.runtime_order.split(",") if r.strip()]
        unknown = [r for r in order if r not in _RUNTIME_ORDER]
        if unknown:
            raise NetRunError(100, f"Invalid runtime in --runtime_order: {unknown[0]}")
        for name in order:
            if profile.supports(_RUNTIME_ORDER[name]):
                return _RUNTIME_ORDER[name]
        raise NetRunError(203, f"Selected runtime not present. None of {args.runtime_order} is available "
                               f"on this device")
    runtime = "cpu"
    if args.use_aip:
        runtime = "aip"
    elif args.use_dsp:
        runtime = "dsp"
    elif args.use_gpu:
        runtime = "gpu_fp16" if args.gpu_mode == "float16" else "gpu"
    if not profile.supports(runtime):
        raise NetRunError(203, f"Selected runtime not present: {RUNTIME_NAMES[runtime]} is not available "
                               f"on this device ({profile.name} has {', '.join(profile.runtimes)})")
    return runtime


def _load(ctx: ProgramContext, args: argparse.Namespace, runtime: str) -> Job:
    container = ctx.fs.norm(args.container, ctx.cwd)
    data = _read(ctx, container, "container")
    try:
        model = onnx.load_from_string(data)
        meta = read_meta(model, container)
    except EdgeloopError as exc:
        raise NetRunError(301, f"Failed to load container {container}: {exc.message}") from None
    except Exception:  # protobuf DecodeError and friends
        raise NetRunError(301, f"Failed to load container {container}: not a valid container") from None
    if _load_external_data(ctx, model, container):
        data = model.SerializeToString()
    hexagon = ctx.device.profile.hexagon
    if runtime == "dsp" and meta.quantized and hexagon and hexagon.kind == "dsp" and activation_bitwidth(meta) > 8:
        raise NetRunError(205, f"Runtime DSP on Hexagon {hexagon.arch} (HVX) supports 8-bit activations only; "
                               f"container {container} has 16-bit activations (they need an HTP, v68 or newer)")
    if runtime == "aip" and not meta.quantized:
        raise NetRunError(204, f"Runtime AIP does not support non-quantized container {container}; "
                               f"quantize it first")
    list_path = ctx.fs.norm(args.input_list, ctx.cwd)
    try:
        input_list = parse_input_list_text(_read(ctx, list_path, "input list").decode(errors="replace"), list_path)
    except EdgeloopError as exc:
        raise NetRunError(302, exc.message) from None
    requested = [t for t in args.set_output_tensors.split(",") if t] or input_list.output_tensors
    known = {o for node in model.graph.node for o in node.output} | {i.name for i in model.graph.input}
    unknown = [t for t in requested if t not in known]
    if unknown:
        raise NetRunError(306, f"Requested output tensor '{unknown[0]}' is not in container {container}")
    outputs = requested or [t.name for t in meta.outputs]
    return Job(ctx, args, runtime, model, data, meta, input_list, outputs)


def _load_external_data(ctx: ProgramContext, model: onnx.ModelProto, container: str) -> bool:
    """Read tensors stored outside the container (ONNX external data) through the sandbox, from paths
    relative to the container's folder on the device, into the model itself. onnxruntime would resolve
    them against the device process's own working directory, on the host. Returns whether any were."""
    folder = container.rpartition("/")[0] or "/"
    found = False
    for tensor in _tensors(model.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        found = True
        info = {entry.key: entry.value for entry in tensor.external_data}
        where = ctx.fs.norm(info.get("location", ""), folder)
        try:
            offset, length = int(info.get("offset", 0)), int(info["length"]) if "length" in info else None
        except ValueError:
            raise NetRunError(301, f"Failed to load container {container}: tensor '{tensor.name}' has a bad "
                                   "external data offset or length") from None
        try:
            with ctx.fs.open_read(where) as f:
                f.seek(offset)
                raw = f.read(-1 if length is None else length)
        except (DeviceOSError, OSError) as exc:
            raise NetRunError(301, f"Failed to load container {container}: external data of tensor "
                                   f"'{tensor.name}' at {where}: {exc}") from None
        if length is not None and len(raw) != length:
            raise NetRunError(301, f"Failed to load container {container}: external data of tensor "
                                   f"'{tensor.name}' at {where} is {len(raw)} bytes, expected {length}")
        tensor.raw_data = raw
        del tensor.external_data[:]
        tensor.data_location = onnx.TensorProto.DEFAULT
    return found


def _tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Every tensor a graph holds: initializers and node attributes, subgraphs (If, Loop, Scan) included."""
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            for sub in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                yield from _tensors(sub)


def _read(ctx: ProgramContext, device_path: str, what: str) -> bytes:
    try:
        with ctx.fs.open_read(device_path) as f:
            return f.read()
    except DeviceOSError as exc:
        raise NetRunError(302, f"Could not open {what} {device_path}: {exc.message}") from None


def _feeds(job: Job) -> Iterator[dict[str, np.ndarray]]:
    """One feed per input line, raw files read lazily through the sandbox with SNPE-like size checks."""
    for i, entry in enumerate(job.input_list.entries):
        try:
            bound = bind_entry(entry, job.meta.inputs, f"input list line {i + 1}")
        except EdgeloopError as exc:
            raise NetRunError(302, exc.message) from None
        yield {name: _input(job, job.meta.input(name), job.path(path)) for name, path in bound.items()}


def _input(job: Job, tensor: TensorInfo, device_path: str) -> np.ndarray:
    bits = job.userbuffer_bits
    encoding = _encoding(job, tensor.name, bits) if bits else None
    dtype = encoding.dtype if encoding and job.args.use_native_input_files else np.dtype("<f4")
    data = _read(job.ctx, device_path, "input file")
    expected = tensor.size * dtype.itemsize
    if len(data) != expected:
        raise NetRunError(303, f"Input file {device_path} for tensor '{tensor.name}' has {len(data)} bytes, "
                               f"expected {expected} ({dtype.name} {list(tensor.shape)})")
    values = np.frombuffer(data, dtype=dtype.newbyteorder("<")).reshape(tensor.shape)
    if encoding is None:
        return values.astype(np.float32)
    # A tf8/tfN user buffer holds integers: float files are quantized on the way in, as the runtime would.
    q = values if job.args.use_native_input_files else encoding.quantize(values.astype(np.float32))
    return encoding.dequantize(q)


def _encoding(job: Job, name: str, bits: int) -> Encoding:
    encoding = activation_encoding(job.meta, name)
    if encoding is None:
        raise NetRunError(305, f"No quantization encoding for tensor '{name}' in the container: "
                               f"--userbuffer_tf8/--userbuffer_tfN need a quantized container")
    return encoding.requantize(bits)


def _write_output(job: Job, index: int, name: str, value: np.ndarray) -> None:
    values = np.asarray(value, dtype=np.float32)
    bits = job.userbuffer_bits
    if bits and name in {t.name for t in job.meta.outputs}:
        encoding = _encoding(job, name, bits)
        values = encoding.quantize(values)
        if not job.args.use_native_output_files:
            values = encoding.dequantize(values)
    target = result_path(PurePosixPath(job.path(job.args.output_dir)), index, name)
    fs = job.ctx.fs
    fs.mkdir(str(target.parent), parents=True)
    with fs.open_write(str(target), atomic=True) as f:
        f.write(np.ascontiguousarray(values).astype(values.dtype.newbyteorder("<"), copy=False).tobytes())


def _crash(job: Job) -> None:
    """The netrun_crash fault: a truncated first output, no diag, 'Segmentation fault' (exit 139)."""
    first = job.meta.outputs[0]
    target = result_path(PurePosixPath(job.path(job.args.output_dir)), 0, first.name)
    job.ctx.fs.mkdir(str(target.parent), parents=True)
    with job.ctx.fs.open_write(str(target)) as f:
        f.write(bytes(first.nbytes // 2))
    _err(job.ctx, "Segmentation fault")


def _quantize_at_init(job: Job) -> bytes:
    """A float container on the DSP: the runtime quantizes it at init with the run's inputs as calibration.

    The work happens in a scratch folder of the emulator itself; nothing outside the sandbox is read."""
    from deploy.quantize import quantize  # the quantizer is heavy; only this path needs it

    warning = (f"WARNING: container {job.args.container} is not quantized; the DSP runtime quantizes it at "
               f"init using the input list as calibration data (slow init, run snpe-dlc-quantize offline)")
    job.warnings.append(warning)
    _err(job.ctx, warning)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgeloop-netrun-") as tmp:
        scratch = Path(tmp)
        (scratch / "model.onnx").write_bytes(job.model_bytes)
        entries = []
        for i, feeds in enumerate(_feeds(job)):
            entry = {}
            for name, array in feeds.items():
                raw = scratch / f"{i}_{len(entry)}.raw"
                array.astype("<f4").tofile(raw)
                entry[name] = raw.name
            entries.append(entry)
        write_input_list(scratch / "calib.txt", entries)
        try:
            result = quantize(scratch / "model.onnx", scratch / "calib.txt", scratch / "quantized.onnx", cache=False)
        except EdgeloopError as exc:
            raise NetRunError(401, f"Quantization at init failed: {exc.message}") from None
        data = result.path.read_bytes()
    job.quantize_ms = (time.perf_counter() - started) * 1000.0
    return data


def _write_diag(job: Job, *, init_ms: float, ramp_ms: float, inference_ms: list[float],
                layers: dict[str, list[float]], warm: bool, host_reference_ms: list[float]) -> None:
    diag = {
        "format": DIAG_FORMAT,
        "version": 1,
        "runtime": job.runtime,
        "container_quantized": job.meta.quantized,
        "perf_profile": job.args.perf_profile,
        "profiling_level": job.args.profiling_level,
        "init_ms": init_ms,
        "quantize_at_init_ms": job.quantize_ms,
        "clock_ramp_ms": ramp_ms,
        "warm_session": warm,
        "inference_ms": inference_ms,
        "host_reference_ms": host_reference_ms,  # the host's speed after each inference (runtimes.reference_ms)
        "layers": layers,
        "warnings": job.warnings,
    }
    out_dir = job.path(job.args.output_dir)
    job.ctx.fs.mkdir(out_dir, parents=True)
    with job.ctx.fs.open_write(f"{out_dir}/{DIAG_NAME}", atomic=True) as f:
        f.write(json.dumps(diag, indent=1).encode())

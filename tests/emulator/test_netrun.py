"""The built-in net-run, called as the device's shell would: real Sandbox, real onnxruntime, a stand-in device."""

from __future__ import annotations

import dataclasses
import io
import json
import threading
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from deploy.container import ContainerMeta, TensorInfo, load_container, save_container, write_meta
from deploy.errors import EdgeloopError
from deploy.inputlist import result_path
from deploy.profiles import Profile, load_profile
from emulator import netrun
from emulator.programs import SYSTEM_PROGRAMS, ProgramContext
from emulator.sandbox import Sandbox
from harness.timings import parse_timings
from tests.deploy.models import branchy_net, conv_net

BUNDLE = "/data/local/tmp/edgeloop/b1"


@dataclasses.dataclass
class Faults:
    netrun_crash: bool = False
    netrun_hang: bool = False


@dataclasses.dataclass
class Device:
    """What net-run needs of the emulated device: its profile, properties, fault switches and log."""

    profile: Profile
    faults: Faults = dataclasses.field(default_factory=Faults)
    events: list[tuple[str, dict[str, Any]]] = dataclasses.field(default_factory=list)

    @property
    def props(self) -> dict[str, str]:
        return self.profile.props

    def log(self, event: str, **fields: Any) -> None:
        self.events.append((event, fields))


@dataclasses.dataclass
class Run:
    rc: int
    stdout: str
    stderr: str


@pytest.fixture
def fs(tmp_path: Path) -> Sandbox:
    return Sandbox(tmp_path / "device", 1 << 30, hexagon=True)


def meta_for(model: onnx.ModelProto, kind: str = "float", encodings: dict | None = None) -> ContainerMeta:
    def info(v: onnx.ValueInfoProto) -> TensorInfo:
        return TensorInfo(v.name, tuple(d.dim_value for d in v.type.tensor_type.shape.dim))

    return ContainerMeta(kind=kind, inputs=[info(v) for v in model.graph.input],
                         outputs=[info(v) for v in model.graph.output], encodings=encodings)


def put(fs: Sandbox, path: str, data: bytes) -> None:
    fs.mkdir(str(PurePosixPath(path).parent), parents=True)
    with fs.open_write(path) as f:
        f.write(data)


def install(fs: Sandbox, model: onnx.ModelProto, meta: ContainerMeta,
            feeds: list[dict[str, np.ndarray]], name: str = "model.onnx") -> None:
    """Lay out a bundle as the harness pushes it: container, raw inputs, input_list.txt (bundle-relative)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    write_meta(model, meta)
    put(fs, f"{BUNDLE}/model/{name}", model.SerializeToString())
    lines = []
    for i, feed in enumerate(feeds):
        items = []
        for tensor, array in feed.items():
            rel = f"inputs/{i}/{tensor}.raw"
            put(fs, f"{BUNDLE}/{rel}", array.astype("<f4").tobytes())
            items.append(f"{tensor}:={rel}")
        lines.append(" ".join(items))
    put(fs, f"{BUNDLE}/input_list.txt", ("\n".join(lines) + "\n").encode())


def run(fs: Sandbox, device: Device, *flags: str, cancel: threading.Event | None = None,
        container: str = "model/model.onnx") -> Run:
    argv = ["edgeloop-net-run", "--container", container, "--input_list", "input_list.txt",
            "--output_dir", "out", *flags]
    out, err = io.BytesIO(), io.BytesIO()
    ctx = ProgramContext(argv=argv, env={}, cwd=BUNDLE, fs=fs, stdin=io.BytesIO(), stdout=out, stderr=err,
                         device=device, cancel=cancel or threading.Event())
    rc = SYSTEM_PROGRAMS[netrun.PATH](ctx)
    return Run(rc, out.getvalue().decode(), err.getvalue().decode())


def output(fs: Sandbox, index: int, tensor: TensorInfo, dtype: str = "<f4") -> np.ndarray:
    path = result_path(PurePosixPath(f"{BUNDLE}/out"), index, tensor.name)
    with fs.open_read(str(path)) as f:
        return np.frombuffer(f.read(), dtype=dtype).reshape(tensor.shape)


def host_run(model: onnx.ModelProto, feed: dict[str, np.ndarray], names: list[str] | None = None) -> list:
    """Plain onnxruntime on the host; intermediate tensors in `names` become extra graph outputs."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    present = {o.name for o in model.graph.output}
    model.graph.output.extend(helper.make_empty_tensor_value_info(n) for n in names or () if n not in present)
    for value in model.graph.output:
        value.type.tensor_type.elem_type = TensorProto.FLOAT
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(names, feed)


def feeds_for(model: onnx.ModelProto, n: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in model.graph.input}
    return [{k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()} for _ in range(n)]


class _Reader(CalibrationDataReader):
    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self._it = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


def qdq_container(model: onnx.ModelProto, calib: list[dict[str, np.ndarray]], tmp: Path,
                  ) -> tuple[onnx.ModelProto, ContainerMeta]:
    """A quantized container made by onnxruntime's own static quantizer (a peer of edgeloop's), with the
    input/output encodings read back from its QuantizeLinear parameters (offset = -zero_point)."""
    src, dst = tmp / "float.onnx", tmp / "qdq.onnx"
    onnx.save(model, str(src))
    quantize_static(str(src), str(dst), _Reader(calib), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QUInt8,
                    extra_options={"QDQKeepRemovableActivations": True})  # a DLC keeps its ReLUs too
    qmodel = onnx.load(str(dst))
    inits = {i.name: numpy_helper.to_array(i) for i in qmodel.graph.initializer}
    quantizers = {n.output[0]: n for n in qmodel.graph.node if n.op_type == "QuantizeLinear"}
    encodings = []
    for node in qmodel.graph.node:
        q = quantizers.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
        for name in (q.input[0], node.output[0]) if q else ():  # the tensor before and after its QDQ pair
            encodings.append({"name": name, "enc_type": "PER_TENSOR", "dtype": "INT", "bw": 8, "is_sym": False,
                              "scale": [float(inits[q.input[1]])], "offset": [-int(inits[q.input[2]])]})
    return qmodel, meta_for(model, "quantized", {"activation_encodings": encodings, "param_encodings": []})


@pytest.fixture(scope="module")
def model() -> onnx.ModelProto:
    return conv_net()


def gpu_device(units: tuple[str, ...] = ("cpu", "gpu")) -> Device:
    return Device(dataclasses.replace(load_profile("galaxy-s23"), units=units))


def test_cpu_matches_onnxruntime_on_the_host(fs: Sandbox, model: onnx.ModelProto) -> None:
    feeds = feeds_for(model, 3)
    meta = meta_for(model)
    install(fs, model, meta, feeds)
    device = gpu_device()
    result = run(fs, device)
    assert result.rc == 0, result.stderr
    assert result.stdout.count("Processing DNN input(s):\ninputs/") == 3
    for i, feed in enumerate(feeds):
        np.testing.assert_allclose(output(fs, i, meta.outputs[0]), host_run(model, feed)[0], rtol=1e-6, atol=1e-7)
    assert [e for e, _ in device.events] == ["netrun.start", "netrun.end"]
    assert device.events[-1][1]["rc"] == 0
    assert not fs.exists(f"{BUNDLE}/out/Result_3")


def test_result_layout_with_slash_in_tensor_name_and_two_inputs(fs: Sandbox) -> None:
    model = branchy_net()
    model.graph.output[0].name = "head/up:0"
    for node in model.graph.node:
        if node.output[0] == "up":
            node.output[0] = "head/up:0"
    feeds = feeds_for(model, 2)
    meta = meta_for(model)
    install(fs, model, meta, feeds)
    result = run(fs, gpu_device())
    assert result.rc == 0, result.stderr
    assert fs.is_file(f"{BUNDLE}/out/Result_1/head/up:0.raw")
    assert fs.listdir(f"{BUNDLE}/out/Result_0") == ["head", "pooled.raw"]
    for i, feed in enumerate(feeds):
        for tensor, expected in zip(meta.outputs, host_run(model, feed), strict=True):
            assert fs.stat(str(result_path(PurePosixPath(f"{BUNDLE}/out"), i, tensor.name))).st_size == tensor.nbytes
            np.testing.assert_allclose(output(fs, i, tensor), expected, rtol=1e-6, atol=1e-6)


def test_gpu_modes_differ_from_float_by_fp16_amounts(fs: Sandbox, model: onnx.ModelProto) -> None:
    feeds = feeds_for(model, 2)
    meta = meta_for(model)
    install(fs, model, meta, feeds)
    logits = "logits"  # before the softmax, where fp16 storage shows most
    reference = [host_run(model, f, [logits])[0] for f in feeds]
    errors = {}
    for flags in (("--use_gpu",), ("--use_gpu", "--gpu_mode", "float16")):
        result = run(fs, gpu_device(), *flags, "--set_output_tensors", logits)
        assert result.rc == 0, result.stderr
        got = [output(fs, i, TensorInfo(logits, (1, 10))) for i in range(2)]
        errors[flags[-1]] = max(float(np.max(np.abs(g - r) / (np.abs(r) + 1e-3))) for g, r in zip(got, reference,
                                                                                                    strict=True))
    # fp16 keeps 11 significant bits: relative errors around 2^-11 per rounding, a few accumulated, never zero.
    assert 0 < errors["--use_gpu"] < 2e-2
    assert 0 < errors["float16"] < 5e-2
    assert errors["float16"] != errors["--use_gpu"]  # fp16 weights and inputs change the result again


def test_dsp_runs_the_quantized_graph_as_is(fs: Sandbox, model: onnx.ModelProto, tmp_path: Path) -> None:
    feeds = feeds_for(model, 4)
    qmodel, meta = qdq_container(model, feeds, tmp_path)
    install(fs, qmodel, meta, feeds[:2])
    device = Device(load_profile("galaxy-s23"))
    result = run(fs, device, "--use_dsp", "--set_output_tensors", "logits")
    assert result.rc == 0, result.stderr
    logits = TensorInfo("logits", (1, 10))
    quantized = output(fs, 0, logits)
    np.testing.assert_allclose(quantized, host_run(qmodel, feeds[0], ["logits"])[0], rtol=1e-5, atol=1e-5)
    # cpu dequantizes at init: float activations, so it sits closer to the float model than the dsp does.
    assert run(fs, device, "--set_output_tensors", "logits").rc == 0
    dequantized = output(fs, 0, logits)
    float_ref = host_run(model, feeds[0], ["logits"])[0]
    assert np.abs(dequantized - float_ref).max() < np.abs(quantized - float_ref).max()
    assert not np.array_equal(quantized, dequantized)
    # CPU fixed-point mode keeps the integer graph, like the DSP.
    assert run(fs, device, "--enable_cpu_fxp", "--set_output_tensors", "logits").rc == 0
    np.testing.assert_allclose(output(fs, 0, logits), quantized, rtol=1e-6, atol=1e-6)


def test_float_container_on_dsp_is_quantized_at_init_with_a_warning(fs: Sandbox, model: onnx.ModelProto) -> None:
    feeds = feeds_for(model, 2)
    install(fs, model, meta_for(model), feeds)
    device = Device(load_profile("galaxy-s23"))
    on_dsp = run(fs, device, "--use_dsp")
    assert on_dsp.rc == 0, on_dsp.stderr
    assert "not quantized" in on_dsp.stderr
    dsp_diag = json.loads(fs.host(f"{BUNDLE}/out/{netrun.DIAG_NAME}").read_text())
    dsp_out = output(fs, 0, meta_for(model).outputs[0])
    on_cpu = run(fs, device)
    assert on_cpu.rc == 0 and on_cpu.stderr == ""
    cpu_diag = json.loads(fs.host(f"{BUNDLE}/out/{netrun.DIAG_NAME}").read_text())
    # The quantization is part of init (not a load-dependent ratio of two init times).
    assert 0 < dsp_diag["quantize_at_init_ms"] <= dsp_diag["init_ms"]
    assert cpu_diag["quantize_at_init_ms"] is None
    assert [w for w in dsp_diag["warnings"] if "not quantized" in w] and cpu_diag["warnings"] == []
    # The DSP ran the quantized graph: close to the float result, but not equal to it.
    float_out = output(fs, 0, meta_for(model).outputs[0])
    assert not np.array_equal(dsp_out, float_out)
    np.testing.assert_allclose(dsp_out, float_out, atol=0.1 * float(np.abs(float_out).max()))


def test_aip_rejects_float_containers(fs: Sandbox, model: onnx.ModelProto) -> None:
    install(fs, model, meta_for(model), feeds_for(model, 1))
    device = gpu_device(("cpu", "gpu", "dsp", "aip"))
    result = run(fs, device, "--use_aip")
    assert result.rc != 0
    assert "error_code=" in result.stderr and "AIP" in result.stderr and "non-quantized" in result.stderr
    assert not fs.exists(f"{BUNDLE}/out")
    assert device.events[-1] == ("netrun.end", {"rc": result.rc})


def test_runtime_missing_from_profile_fails_like_snpe(fs: Sandbox, model: onnx.ModelProto) -> None:
    install(fs, model, meta_for(model), feeds_for(model, 1))
    result = run(fs, Device(load_profile("pixel")), "--use_dsp")
    assert result.rc != 0
    assert "Selected runtime not present" in result.stderr and "DSP" in result.stderr
    fallback = run(fs, Device(load_profile("pixel")), "--runtime_order", "dsp,gpu,cpu")
    assert fallback.rc == 0, fallback.stderr
    assert json.loads(fs.host(f"{BUNDLE}/out/{netrun.DIAG_NAME}").read_text())["runtime"] == "gpu"


def test_wrong_size_input_names_file_and_sizes(fs: Sandbox, model: onnx.ModelProto) -> None:
    install(fs, model, meta_for(model), feeds_for(model, 2))
    put(fs, f"{BUNDLE}/inputs/1/image.raw", bytes(100))
    result = run(fs, gpu_device())
    assert result.rc != 0
    line = result.stderr.strip()
    assert "inputs/1/image.raw" in line and "100 bytes" in line and str(3 * 16 * 16 * 4) in line
    assert len(line.splitlines()) == 1


def test_bad_flags_and_missing_container_are_one_line_errors(fs: Sandbox, model: onnx.ModelProto) -> None:
    install(fs, model, meta_for(model), feeds_for(model, 1))
    bad = run(fs, gpu_device(), "--gpu_mode", "float8")
    assert bad.rc != 0 and "gpu_mode" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    unknown = run(fs, gpu_device(), "--set_output_tensors", "logits,no_such_tensor")
    assert unknown.rc != 0 and "'no_such_tensor' is not in container" in unknown.stderr
    missing = run(fs, gpu_device(), container="model/nothere.onnx")
    assert missing.rc != 0 and "nothere.onnx" in missing.stderr and "No such file" in missing.stderr


def test_crash_fault_segfaults_with_nothing_complete(fs: Sandbox, model: onnx.ModelProto) -> None:
    meta = meta_for(model)
    install(fs, model, meta, feeds_for(model, 2))
    device = gpu_device()
    device.faults.netrun_crash = True
    result = run(fs, device)
    assert result.rc == 139
    assert "Segmentation fault" in result.stderr
    assert not fs.exists(f"{BUNDLE}/out/{netrun.DIAG_NAME}")
    first = result_path(PurePosixPath(f"{BUNDLE}/out"), 0, meta.outputs[0].name)
    assert fs.stat(str(first)).st_size < meta.outputs[0].nbytes
    assert device.events[-1] == ("netrun.end", {"rc": 139})


def test_hang_fault_blocks_until_cancelled(fs: Sandbox, model: onnx.ModelProto) -> None:
    install(fs, model, meta_for(model), feeds_for(model, 1))
    device = gpu_device()
    device.faults.netrun_hang = True
    cancel = threading.Event()
    results: list[Run] = []
    worker = threading.Thread(target=lambda: results.append(run(fs, device, cancel=cancel)))
    worker.start()
    worker.join(timeout=1.0)
    assert worker.is_alive() and not results  # still blocked after a second
    cancel.set()
    worker.join(timeout=30)
    assert results and results[0].rc == 130
    assert not fs.exists(f"{BUNDLE}/out/Result_0")


def test_profiling_diag_parsed_by_parse_timings(fs: Sandbox, model: onnx.ModelProto) -> None:
    install(fs, model, meta_for(model), feeds_for(model, 3))
    for flags in (("--profiling_level", "detailed"), ("--use_gpu", "--profiling_level", "basic")):
        result = run(fs, gpu_device(), *flags)
        assert result.rc == 0, result.stderr
        timings = parse_timings("edgeloop-diag", fs.host(f"{BUNDLE}/out/{netrun.DIAG_NAME}"))
        assert timings.init_ms is not None and timings.init_ms > 0
        assert len(timings.inference_ms) == 3 and all(t > 0 for t in timings.inference_ms)
        node_names = {n.name for n in model.graph.node}
        assert {"conv1", "fc"} <= set(timings.layers) <= node_names  # the model's layers, not emulation casts
        assert all(len(v) == 3 for v in timings.layers.values())
    plain = run(fs, gpu_device())
    assert plain.rc == 0
    assert parse_timings("edgeloop-diag", fs.host(f"{BUNDLE}/out/{netrun.DIAG_NAME}")).layers == {}


def test_warm_run_reuses_the_session(fs: Sandbox, model: onnx.ModelProto) -> None:
    install(fs, model, meta_for(model), feeds_for(model, 1))
    diag = fs.host(f"{BUNDLE}/out/{netrun.DIAG_NAME}")
    assert run(fs, gpu_device(), "--perf_profile", "burst").rc == 0
    assert run(fs, gpu_device(), "--perf_profile", "burst").rc == 0
    data = json.loads(diag.read_text())
    assert data["warm_session"] is True and data["perf_profile"] == "burst"


@pytest.mark.parametrize(("profile", "ramps"), [("high_performance", True), ("burst", True), ("balanced", False),
                                               ("power_saver", False)])
def test_high_performance_profiles_raise_clocks_before_timing(fs: Sandbox, model: onnx.ModelProto, profile: str,
                                                              ramps: bool) -> None:
    install(fs, model, meta_for(model), feeds_for(model, 2))
    assert run(fs, gpu_device(), "--perf_profile", profile).rc == 0
    data = json.loads(fs.host(f"{BUNDLE}/out/{netrun.DIAG_NAME}").read_text())
    # The untimed busy period before the first timed inference: the emulated clock vote.
    assert (data["clock_ramp_ms"] >= 20.0) is ramps and (data["clock_ramp_ms"] == 0.0) is not ramps
    assert len(data["inference_ms"]) == 2


def out_of_range_gather() -> onnx.ModelProto:
    """A graph onnxruntime accepts but fails to execute when an input, used as an index, is out of range."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
    table = numpy_helper.from_array(np.arange(4, dtype=np.float32), "table")
    nodes = [helper.make_node("Cast", ["x"], ["index"], to=TensorProto.INT64),
             helper.make_node("Gather", ["table", "index"], ["y"], axis=0)]
    model = helper.make_model(helper.make_graph(nodes, "gather", [x], [y], [table]),
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("profile", ["balanced", "high_performance"])
def test_an_execution_failure_is_reported_at_every_perf_profile(fs: Sandbox, profile: str) -> None:
    # high_performance runs the first input untimed first (the clock vote): it must fail the same way.
    model = out_of_range_gather()
    install(fs, model, meta_for(model), [{"x": np.array([[1, 99]], np.float32)}])
    result = run(fs, Device(load_profile("pixel")), "--perf_profile", profile)
    assert result.rc == 1
    assert result.stderr.startswith("error_code=500; error_message=Execution of inference 0 failed:")
    assert "Gather" in result.stderr


def test_debug_writes_every_layer(fs: Sandbox, model: onnx.ModelProto) -> None:
    feeds = feeds_for(model, 1)
    meta = meta_for(model)
    install(fs, model, meta, feeds)
    result = run(fs, gpu_device(), "--debug")
    assert result.rc == 0, result.stderr
    layers = [n.output[0] for n in model.graph.node]
    expected = host_run(model, feeds[0], layers)
    for name, value in zip(layers, expected, strict=True):
        got = output(fs, 0, TensorInfo(name, value.shape))
        np.testing.assert_allclose(got, value, rtol=1e-5, atol=1e-5, err_msg=name)


def test_native_tf8_files_hold_quantized_integers(fs: Sandbox, model: onnx.ModelProto, tmp_path: Path) -> None:
    feeds = feeds_for(model, 4)
    qmodel, meta = qdq_container(model, feeds, tmp_path)
    inp, out = netrun.activation_encoding(meta, "image"), netrun.activation_encoding(meta, "probs")
    assert inp is not None and out is not None
    install(fs, qmodel, meta, feeds[:1])
    device = Device(load_profile("galaxy-s23"))
    assert run(fs, device, "--use_dsp", "--userbuffer_tf8").rc == 0
    float_out = output(fs, 0, meta.outputs[0])
    # The same input as uint8 integers, by docs/spec.md §5: q = clamp(round(x / scale) - offset, 0, 255).
    q_in = np.clip(np.round(feeds[0]["image"] / inp.scale) - inp.offset, 0, 255).astype(np.uint8)
    put(fs, f"{BUNDLE}/inputs/0/image.raw", q_in.tobytes())
    result = run(fs, device, "--use_dsp", "--userbuffer_tf8", "--use_native_input_files", "--use_native_output_files")
    assert result.rc == 0, result.stderr
    q_out = output(fs, 0, meta.outputs[0], dtype="u1")
    assert fs.stat(str(result_path(PurePosixPath(f"{BUNDLE}/out"), 0, "probs"))).st_size == 10
    np.testing.assert_allclose((q_out.astype(np.float32) + out.offset) * out.scale, float_out, atol=out.scale * 0.51)
    wrong = run(fs, device, "--use_dsp", "--userbuffer_tfN", "16", "--use_native_input_files")
    assert wrong.rc != 0 and "expected" in wrong.stderr  # uint8 file where uint16 integers are due


def test_userbuffer_tf8_needs_a_quantized_container(fs: Sandbox, model: onnx.ModelProto) -> None:
    install(fs, model, meta_for(model), feeds_for(model, 1))
    result = run(fs, gpu_device(), "--userbuffer_tf8")
    assert result.rc != 0 and "quantized container" in result.stderr
    native = run(fs, gpu_device(), "--use_native_input_files")
    assert native.rc != 0 and "--userbuffer_tf8" in native.stderr


def test_parse_timings_rejects_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "diag.json"
    path.write_text('{"format": "edgeloop-diag", "inference_ms": [1.0, ')
    with pytest.raises(EdgeloopError, match="not valid JSON"):
        parse_timings("edgeloop-diag", path)
    path.write_text('{"format": "edgeloop-diag", "inference_ms": [1.0, -2]}')
    with pytest.raises(EdgeloopError, match="non-negative"):
        parse_timings("edgeloop-diag", path)
    with pytest.raises(EdgeloopError, match="unknown timings format"):
        parse_timings("tflite-benchmark", path)
    with pytest.raises(EdgeloopError, match="cannot read"):
        parse_timings("edgeloop-diag", tmp_path / "missing.json")


def test_program_is_registered() -> None:
    assert SYSTEM_PROGRAMS[netrun.PATH] is netrun.main


def test_full_storage_and_cancel_stop_the_run_cleanly(fs: Sandbox, model: onnx.ModelProto) -> None:
    install(fs, model, meta_for(model), feeds_for(model, 2))
    fs.storage_full = True
    full = run(fs, gpu_device())
    assert full.rc != 0 and "No space left on device" in full.stderr
    assert fs.listdir(f"{BUNDLE}/out/Result_0") == []  # the atomic write left no partial file
    fs.storage_full = False
    fs.remove(f"{BUNDLE}/out", recursive=True)
    cancel = threading.Event()
    cancel.set()
    cancelled = run(fs, gpu_device(), cancel=cancel)
    assert cancelled.rc == 130
    assert not fs.exists(f"{BUNDLE}/out/Result_0") and not fs.exists(f"{BUNDLE}/out/{netrun.DIAG_NAME}")


def test_16bit_activations_run_on_htp_but_not_on_an_hvx_dsp(fs: Sandbox, model: onnx.ModelProto,
                                                           tmp_path: Path) -> None:
    from deploy.quantize import QuantizeOptions, quantize

    feeds = feeds_for(model, 2)
    float_path = tmp_path / "float.onnx"
    save_container(onnx.ModelProto.FromString(model.SerializeToString()), meta_for(model), float_path)
    for i, feed in enumerate(feeds):
        feed["image"].astype("<f4").tofile(tmp_path / f"calib_{i}.raw")
    (tmp_path / "calib.txt").write_text("calib_0.raw\ncalib_1.raw\n")
    result = quantize(float_path, tmp_path / "calib.txt", tmp_path / "a16.onnx", QuantizeOptions(act_bitwidth=16),
                      cache=False)
    qmodel, meta = load_container(result.path)
    install(fs, qmodel, meta, feeds)
    # --debug on the HTP: each layer as stored (after its QDQ pair), under the float model's tensor names.
    debug = run(fs, Device(load_profile("galaxy-s23")), "--use_dsp", "--debug")
    assert debug.rc == 0, debug.stderr
    layers = [n.output[0] for n in model.graph.node]
    for name, value in zip(layers, host_run(qmodel, feeds[0], layers), strict=True):
        np.testing.assert_allclose(output(fs, 0, TensorInfo(name, value.shape)), value, rtol=1e-5, atol=1e-5)
    profiled = run(fs, Device(load_profile("galaxy-s23")), "--use_dsp", "--profiling_level", "detailed")
    assert profiled.rc == 0, profiled.stderr
    layer_names = set(parse_timings("edgeloop-diag", fs.host(f"{BUNDLE}/out/{netrun.DIAG_NAME}")).layers)
    compute = {n.name for n in qmodel.graph.node if n.op_type not in ("QuantizeLinear", "DequantizeLinear")}
    assert {"conv1", "fc"} <= layer_names <= compute  # the model's layers, no QDQ bookkeeping
    hvx = run(fs, Device(load_profile("pixel4")), "--use_dsp")
    assert hvx.rc != 0 and "8-bit activations only" in hvx.stderr and "v66" in hvx.stderr
    htp = run(fs, Device(load_profile("galaxy-s23")), "--use_dsp")
    assert htp.rc == 0, htp.stderr
    np.testing.assert_allclose(output(fs, 0, meta.outputs[0]), host_run(model, feeds[0])[0], atol=2e-3)


def test_session_cache_is_bounded(model: onnx.ModelProto) -> None:
    from emulator.runtimes import Mode, SessionCache

    cache = SessionCache(capacity=2)
    data = model.SerializeToString()
    for runtime in ("cpu", "gpu", "cpu", "gpu_fp16"):  # cpu is used again, so gpu is the oldest at the end
        cache.get(model, data, False, Mode(runtime))
    assert len(cache) == 2
    assert cache.get(model, data, False, Mode("cpu"))[1] is True
    assert cache.get(model, data, False, Mode("gpu"))[1] is False


def test_the_engine_holds_no_more_sessions_than_its_cache(model: onnx.ModelProto,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine's key -> session table lets go of what the cache let go of: a long-lived device that
    has run many containers keeps its memory bounded."""
    from collections import OrderedDict

    from emulator import runtimes

    monkeypatch.setattr(runtimes, "SESSIONS", runtimes.SessionCache(capacity=2))
    held: OrderedDict[str, runtimes.Prepared] = OrderedDict()
    memory = runtimes.RunMemory()
    data = model.SerializeToString()
    keys = [runtimes._answer(("session", data, False, runtimes.Mode(r)), held, memory)[0]
            for r in ("cpu", "gpu", "gpu_fp16")]
    assert list(held) == keys[1:]

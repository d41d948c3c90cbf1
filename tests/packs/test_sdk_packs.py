"""The SNPE and QNN packs against synthetic SDK trees.

The vendor SDKs cannot be downloaded here, so each test builds a tree with the real layout
(SNPE 2.x, SNPE 1.x, QNN): placeholder libraries whose content names their SDK path, a device
net-run that is a shell script recording its arguments and environment, and host tools that are
small Python scripts recording their command lines (and the files they were given) and writing
plausible outputs. The tests assert exact bundle contents, command lines, environment, the
encodings handed to the SDK and the parsing of the SDK's profiling reports.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from deploy.bundle import Bundle, bundle
from deploy.container import load_container
from deploy.errors import EdgeloopError
from deploy.profiles import load_profile
from deploy.quantize import quantize
from harness.timings import parse_timings
from tests.deploy.models import branchy_net, random_feeds
from tests.deploy.test_bundle import make_container, make_inputs

# The device's net-run stand-in, as in tests/deploy/test_packs.py: arguments and environment land in
# the output folder, so executing run.sh with `sh` shows what a phone would get.
NET_RUN = """\
#!/bin/sh
all="$*"
while [ "$1" != "--output_dir" ]; do shift; done
mkdir -p "$2"
printf '%s\\n' "$all" > "$2/args.txt"
printf 'LD_LIBRARY_PATH=%s\\nADSP_LIBRARY_PATH=%s\\n' "$LD_LIBRARY_PATH" "$ADSP_LIBRARY_PATH" > "$2/env.txt"
"""

# Every host tool of the synthetic SDKs: logs its argv as a JSON line to $FAKE_SDK_LOG, keeps copies
# of the files edgeloop handed it (they live in a temporary folder), and writes a plausible output.
HOST_TOOL = f"""#!{sys.executable}
import json, os, shutil, sys
from pathlib import Path
name, args = Path(sys.argv[0]).name, sys.argv[1:]
log = Path(os.environ["FAKE_SDK_LOG"])
with log.open("a") as f:
    f.write(json.dumps([name, *args]) + "\\n")
if os.environ.get("FAKE_SDK_FAIL") == name:
    print("converting...")
    print(f"ERROR: {{name}}: unsupported op Det in node 'det'", file=sys.stderr)
    sys.exit(3)
def opt(flag):
    return args[args.index(flag) + 1]
def keep(flag, suffix):
    if flag in args:
        shutil.copyfile(opt(flag), f"{{log}}.{{suffix}}")
if name in ("snpe-onnx-to-dlc", "qnn-onnx-converter"):
    keep("--input_network", "model.onnx")
    keep("--quantization_overrides", "overrides.json")
    out = Path(opt("--output_path"))
    out.write_text(f"{{name}} output")
    if name == "qnn-onnx-converter":
        out.with_suffix(".bin").write_text("weights")
elif name == "snpe-dlc-quantize":
    keep("--input_list", "calibration.txt")
    Path(opt("--output_dlc")).write_text("quantized " + Path(opt("--input_dlc")).read_text())
elif name == "qnn-model-lib-generator":
    lib = Path(opt("-o")) / opt("-t") / f"lib{{opt('-l')}}.so"
    lib.parent.mkdir(parents=True)
    lib.write_text("model library from " + Path(opt("-c")).read_text())
elif name == "qnn-context-binary-generator":
    keep("--config_file", "extensions.json")
    config = json.loads(Path(opt("--config_file")).read_text())["backend_extensions"]["config_file_path"]
    shutil.copyfile(config, f"{{log}}.htp_config.json")
    out = Path(opt("--output_dir")) / (opt("--binary_file") + ".bin")
    out.parent.mkdir(parents=True)
    out.write_text("context binary from " + Path(opt("--model")).read_text())
else:  # snpe-diagview, qnn-profile-viewer: print the report prepared by the test
    print(Path(os.environ["FAKE_SDK_REPORT"]).read_text())
"""

SNPE_TOOLS = ("snpe-onnx-to-dlc", "snpe-dlc-quantize", "snpe-diagview")
QNN_TOOLS = ("qnn-onnx-converter", "qnn-model-lib-generator", "qnn-context-binary-generator", "qnn-profile-viewer")
SNPE2_LIBS = ("libSNPE.so", "libc++_shared.so", "libSnpeHtpV73Stub.so", "libSnpeHtpPrepare.so", "libSnpeDspV66Stub.so",
              "libSnpeHta.so", "libhta_hexagon_runtime_snpe.so")


def make_sdk(root: Path, files: dict[str, str | None], tools: tuple[str, ...]) -> Path:
    """Write the tree: `None` content is a placeholder library naming its own SDK path."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text if text is not None else f"placeholder {rel}\n")
    (root / "bin/x86_64-linux-clang").mkdir(parents=True, exist_ok=True)
    for tool in tools:
        (root / "bin/x86_64-linux-clang" / tool).write_text(HOST_TOOL)
        (root / "bin/x86_64-linux-clang" / tool).chmod(0o755)
    return root


def snpe2(parent: Path, hexagon: tuple[str, ...] = ("v66", "v73"), name: str = "2.20.0.240223") -> Path:
    files: dict[str, str | None] = {"bin/aarch64-android/snpe-net-run": NET_RUN}
    files.update({f"lib/aarch64-android/{lib}": None for lib in SNPE2_LIBS})
    files.update({f"lib/{arm32}/libSNPE.so": None for arm32 in ("arm-android-clang8.0",)})
    if "v66" in hexagon:
        files["lib/hexagon-v66/unsigned/libSnpeDspV66Skel.so"] = None
    if "v73" in hexagon:
        files["lib/hexagon-v73/unsigned/libSnpeHtpV73Skel.so"] = None
    return make_sdk(parent / name, files, SNPE_TOOLS)


def snpe1(parent: Path) -> Path:
    files: dict[str, str | None] = {"bin/aarch64-android-clang6.0/snpe-net-run": "old\n",
                                    "bin/aarch64-android-clang8.0/snpe-net-run": NET_RUN,
                                    "lib/dsp/libSnpeDspV66Skel.so": None, "lib/dsp/libSnpeDspV65Skel.so": None}
    for clang in ("aarch64-android-clang6.0", "aarch64-android-clang8.0"):
        files.update({f"lib/{clang}/{lib}": None for lib in ("libSNPE.so", "libc++_shared.so", "libSnpeDspV66Stub.so")})
    return make_sdk(parent / "snpe-1.68.0.3932", files, SNPE_TOOLS)


def qnn(parent: Path) -> Path:
    files: dict[str, str | None] = {"bin/aarch64-android/qnn-net-run": NET_RUN,
                                    "lib/hexagon-v73/unsigned/libQnnHtpV73Skel.so": None,
                                    "lib/hexagon-v66/unsigned/libQnnDspV66Skel.so": None,
                                    "lib/x86_64-linux-clang/libQnnHtp.so": None,
                                    "lib/x86_64-linux-clang/libQnnHtpNetRunExtensions.so": None}
    files.update({f"lib/aarch64-android/{lib}": None for lib in (
        "libQnnCpu.so", "libQnnGpu.so", "libQnnHtp.so", "libQnnHtpPrepare.so", "libQnnHtpV73Stub.so", "libQnnDsp.so",
        "libQnnDspV66Stub.so")})
    return make_sdk(parent / "2.26.0.240828", files, QNN_TOOLS)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The tool log; no SDK variable leaks in from the machine running the tests."""
    for var in ("SNPE_ROOT", "QNN_SDK_ROOT", "FAKE_SDK_FAIL", "EDGELOOP_PACKS"):
        monkeypatch.delenv(var, raising=False)
    log = tmp_path / "tools.log"
    monkeypatch.setenv("FAKE_SDK_LOG", str(log))
    return log


@pytest.fixture(scope="module")
def containers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """branchy_net as a float container and as edgeloop's own quantized container, with its inputs."""
    folder = tmp_path_factory.mktemp("containers")
    float_container, inputs = make_container(folder), make_inputs(folder, lines=2)
    quantized = quantize(float_container, inputs, folder / "branchy_q.onnx", cache=False).path
    return {"float": float_container, "quantized": quantized, "inputs": inputs}


def tool_calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []


def shape(call: list[str]) -> list[str]:
    """A command line with temporary paths reduced to file names (they differ per run)."""
    return [Path(a).name if a.startswith("/") else a for a in call]


def files_of(b: Bundle) -> dict[str, str]:
    return {f["path"]: f["mode"] for f in b.manifest}


def run_script(b: Bundle, tmp_path: Path) -> dict[str, str]:
    """Execute the rendered run.sh with `sh` in a copy of the bundle; return net-run's args and env."""
    work = tmp_path / "device" / b.id
    shutil.copytree(b.path, work)
    device_env = {**os.environ, "LD_LIBRARY_PATH": "/vendor/lib64"}
    device_env.pop("ADSP_LIBRARY_PATH", None)
    subprocess.run(["sh", "run.sh", "runs/r1"], cwd=work, check=True, env=device_env)
    env = dict(line.split("=", 1) for line in (work / "runs/r1/env.txt").read_text().splitlines())
    return {"args": (work / "runs/r1/args.txt").read_text().strip(), "cwd": str(work), **env}


def test_snpe2_htp_bundle_with_edgeloop_encodings(env: Path, containers: dict[str, Path], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    sdk = snpe2(tmp_path)
    monkeypatch.setenv("SNPE_ROOT", str(sdk))
    b = bundle(containers["quantized"], load_profile("galaxy-s23"), "dsp", containers["inputs"], pack="snpe",
               root=tmp_path / "build")
    assert files_of(b) == {
        "bin/snpe-net-run": "0755", "dsp/libSnpeHtpV73Skel.so": "0644", "input_list.txt": "0644",
        "inputs/0/left.raw": "0644", "inputs/0/right.raw": "0644", "inputs/1/left.raw": "0644",
        "inputs/1/right.raw": "0644", "lib/libSNPE.so": "0644", "lib/libSnpeHtpPrepare.so": "0644",
        "lib/libSnpeHtpV73Stub.so": "0644", "lib/libc++_shared.so": "0644", "model/branchy_q.dlc": "0644",
        "run.sh": "0755"}
    skel = "lib/hexagon-v73/unsigned/libSnpeHtpV73Skel.so"
    assert (b.path / "dsp/libSnpeHtpV73Skel.so").read_text() == f"placeholder {skel}\n"
    assert (b.path / "lib/libSNPE.so").read_text() == "placeholder lib/aarch64-android/libSNPE.so\n"
    assert (b.path / "model/branchy_q.dlc").read_text() == "quantized snpe-onnx-to-dlc output"
    assert (b.timings_format, b.timings_path) == ("snpe-diag-log", "SNPEDiag_0.log")
    manifest = json.loads((b.path / "manifest.json").read_text())
    assert manifest["sdk"] == {"layout": "snpe2", "version": "2.20.0.240223"}

    to_dlc, quant = tool_calls(env)
    assert shape(to_dlc) == ["snpe-onnx-to-dlc", "--input_network", "model.onnx", "--output_path", "model_float.dlc",
                             "--quantization_overrides", "encodings.json"]
    assert shape(quant) == ["snpe-dlc-quantize", "--input_dlc", "model_float.dlc", "--output_dlc", "branchy_q.dlc",
                            "--override_params", "--act_bitwidth", "8", "--float_fallback"]

    # The SDK got edgeloop's encodings (AIMET 0.6.1, SNPE offsets) and the float graph they belong to.
    _, meta = load_container(containers["quantized"])
    overrides = json.loads(Path(f"{env}.overrides.json").read_text())
    assert overrides["version"] == "0.6.1"
    for entry in meta.encodings["activation_encodings"]:
        legacy = overrides["activation_encodings"][entry["name"]][0]
        assert (legacy["scale"], legacy["offset"], legacy["bitwidth"]) == (entry["scale"][0], entry["offset"][0],
                                                                          entry["bw"])
    handed = onnx.load(f"{env}.model.onnx")
    assert not {n.op_type for n in handed.graph.node} & {"QuantizeLinear", "DequantizeLinear"}
    assert not [p for p in handed.metadata_props if p.key == "edgeloop"]
    feeds = random_feeds(branchy_net(), seed=5)
    got = ort.InferenceSession(handed.SerializeToString()).run(None, feeds)
    want = ort.InferenceSession(branchy_net().SerializeToString()).run(None, feeds)
    for g, w in zip(got, want, strict=True):  # the dequantized weights: close to the float model, not equal
        assert np.abs(g - w).max() < 0.1 * np.abs(w).max()

    ran = run_script(b, tmp_path)
    assert ran["args"] == ("--container model/branchy_q.dlc --input_list input_list.txt --use_dsp --perf_profile "
                           "high_performance --profiling_level basic --output_dir runs/r1")
    assert ran["LD_LIBRARY_PATH"] == f"{ran['cwd']}/lib:/vendor/lib64"
    assert ran["ADSP_LIBRARY_PATH"] == f"{ran['cwd']}/dsp;/system/lib/rfsa/adsp;/system/vendor/lib/rfsa/adsp;/dsp"
    script = (b.path / "run.sh").read_text()
    assert 'export ADSP_LIBRARY_PATH="$PWD/dsp;/system/lib/rfsa/adsp;/system/vendor/lib/rfsa/adsp;/dsp"' in script


def test_snpe2_float_cpu_and_gpu_fp16_need_no_dsp_files(env: Path, containers: dict[str, Path], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNPE_ROOT", str(snpe2(tmp_path)))
    b = bundle(containers["float"], load_profile("pixel"), "gpu_fp16", containers["inputs"], pack="snpe",
               root=tmp_path / "build", options={"userbuffer": "tf16", "perf_profile": "burst"})
    assert {p for p in files_of(b) if not p.startswith("inputs/")} == {
        "bin/snpe-net-run", "input_list.txt", "lib/libSNPE.so", "lib/libc++_shared.so", "model/branchy_float.dlc",
        "run.sh"}
    assert [shape(c) for c in tool_calls(env)] == [
        ["snpe-onnx-to-dlc", "--input_network", "model.onnx", "--output_path", "branchy_float.dlc"]]
    ran = run_script(b, tmp_path)
    assert ran["args"] == ("--container model/branchy_float.dlc --input_list input_list.txt --use_gpu --gpu_mode "
                           "float16 --perf_profile burst --profiling_level basic --userbuffer_tfN 16 "
                           "--output_dir runs/r1")
    assert ran["ADSP_LIBRARY_PATH"] == ""
    assert "ADSP_LIBRARY_PATH" not in (b.path / "run.sh").read_text()


def test_snpe1_layout_v66_dsp(env: Path, containers: dict[str, Path], tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNPE_ROOT", str(snpe1(tmp_path)))
    b = bundle(containers["quantized"], load_profile("pixel4"), "dsp", containers["inputs"], pack="snpe",
               root=tmp_path / "build")
    assert {p for p in files_of(b) if p.startswith(("lib/", "dsp/", "bin/"))} == {
        "bin/snpe-net-run", "dsp/libSnpeDspV66Skel.so", "lib/libSNPE.so", "lib/libSnpeDspV66Stub.so",
        "lib/libc++_shared.so"}
    # Of several clang builds the newest is taken; the skel comes from 1.x's lib/dsp.
    assert (b.path / "lib/libSNPE.so").read_text() == "placeholder lib/aarch64-android-clang8.0/libSNPE.so\n"
    assert (b.path / "dsp/libSnpeDspV66Skel.so").read_text() == "placeholder lib/dsp/libSnpeDspV66Skel.so\n"
    assert json.loads((b.path / "manifest.json").read_text())["sdk"] == {"layout": "snpe1", "version": "1.68.0.3932"}
    _, quant = tool_calls(env)
    assert shape(quant) == ["snpe-dlc-quantize", "--input_dlc", "model_float.dlc", "--output_dlc", "branchy_q.dlc",
                            "--override_params", "--act_bitwidth", "8", "--input_list", "zero_list.txt"]
    calibration = Path(f"{env}.calibration.txt").read_text().split()
    assert [item.split(":=")[0] for item in calibration] == ["left", "right"]
    ran = run_script(b, tmp_path)
    assert ran["ADSP_LIBRARY_PATH"].startswith(f"{ran['cwd']}/dsp;")


def test_float_container_quantized_by_the_sdk_from_a_calibration_list(env: Path, containers: dict[str, Path],
                                                                       tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """SNPE's snpe-dlc-quantize and QNN's converter calibrate a float container themselves when given
    edgeloop.yaml's calibration list: its raw files reach them as absolute paths."""
    inputs = containers["inputs"]
    want = [f"{name}:={(inputs.parent / path).resolve()}" for name, path in
            (item.split(":=") for line in inputs.read_text().splitlines() if not line.startswith("%")
             for item in line.split())]
    monkeypatch.setenv("SNPE_ROOT", str(snpe2(tmp_path)))
    b = bundle(containers["float"], load_profile("galaxy-s23"), "dsp", inputs, pack="snpe", root=tmp_path / "build",
               calibration_list=inputs)
    assert (b.path / "model/branchy_float.dlc").read_text() == "quantized snpe-onnx-to-dlc output"
    to_dlc, quant = tool_calls(env)
    assert shape(to_dlc) == ["snpe-onnx-to-dlc", "--input_network", "model.onnx", "--output_path", "model_float.dlc"]
    assert shape(quant) == ["snpe-dlc-quantize", "--input_dlc", "model_float.dlc", "--input_list",
                            "calibration_list.txt", "--output_dlc", "branchy_float.dlc"]
    assert Path(f"{env}.calibration.txt").read_text().split() == want
    env.unlink()
    monkeypatch.setenv("QNN_SDK_ROOT", str(qnn(tmp_path)))
    bundle(containers["float"], load_profile("galaxy-s23"), "dsp", inputs, pack="qnn", root=tmp_path / "build",
           calibration_list=inputs)
    assert shape(tool_calls(env)[0]) == ["qnn-onnx-converter", "--input_network", "model.onnx", "--output_path",
                                         "model.cpp", "--input_list", "calibration_list.txt"]
    bad = tmp_path / "bad_list.txt"
    bad.write_text("left:=missing.raw right:=missing.raw\n")
    with pytest.raises(EdgeloopError, match=r"missing\.raw: input file not found"):
        bundle(containers["float"], load_profile("galaxy-s23"), "dsp", inputs, pack="snpe", root=tmp_path / "build",
               calibration_list=bad)


def test_the_sdk_conversion_is_cached_by_content_not_by_the_sdk_folder(env: Path, containers: dict[str, Path],
                                                                        tmp_path: Path) -> None:
    """The same SDK version in another folder (a moved or second install) reuses the converted model."""
    first = bundle(containers["float"], load_profile("pixel"), "cpu", containers["inputs"], pack="snpe",
                   root=tmp_path / "build", sdk=snpe2(tmp_path / "a"))
    assert len(tool_calls(env)) == 1
    second = bundle(containers["float"], load_profile("pixel"), "cpu", containers["inputs"], pack="snpe",
                    root=tmp_path / "build", sdk=snpe2(tmp_path / "b"))
    assert len(tool_calls(env)) == 1 and second.id == first.id  # same files, same bundle
    bundle(containers["float"], load_profile("pixel"), "cpu", containers["inputs"], pack="snpe",
           root=tmp_path / "build", sdk=snpe2(tmp_path / "c", name="2.21.0.240401"))
    assert len(tool_calls(env)) == 2  # another version converts again


def test_qnn_htp_model_library(env: Path, containers: dict[str, Path], tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QNN_SDK_ROOT", str(qnn(tmp_path)))
    b = bundle(containers["quantized"], load_profile("galaxy-s23"), "dsp", containers["inputs"], pack="qnn",
               root=tmp_path / "build")
    assert {p for p in files_of(b) if not p.startswith("inputs/")} == {
        "bin/qnn-net-run", "dsp/libQnnHtpV73Skel.so", "input_list.txt", "lib/libQnnHtp.so", "lib/libQnnHtpPrepare.so",
        "lib/libQnnHtpV73Stub.so", "model/libbranchy_q.so", "run.sh"}
    assert (b.path / "model/libbranchy_q.so").read_text() == "model library from qnn-onnx-converter output"
    converter, generator = tool_calls(env)
    assert shape(converter) == ["qnn-onnx-converter", "--input_network", "model.onnx", "--output_path", "model.cpp",
                                "--quantization_overrides", "encodings.json", "--float_fallback", "--act_bw", "8"]
    assert shape(generator) == ["qnn-model-lib-generator", "-c", "model.cpp", "-b", "model.bin", "-o", "libs",
                                "-t", "aarch64-android", "-l", "model"]
    lines = (b.path / "input_list.txt").read_text().splitlines()
    assert lines[1] == "left:=inputs/0/left.raw right:=inputs/0/right.raw"
    ran = run_script(b, tmp_path)
    assert ran["args"] == ("--model model/libbranchy_q.so --input_list input_list.txt --backend libQnnHtp.so "
                           "--perf_profile high_performance --profiling_level basic --output_dir runs/r1")
    assert ran["ADSP_LIBRARY_PATH"] == f"{ran['cwd']}/dsp;/system/lib/rfsa/adsp;/system/vendor/lib/rfsa/adsp;/dsp"
    assert (b.timings_format, b.timings_path) == ("qnn-profiling-log", "qnn-profiling-data_0.log")


def test_qnn_cpu_and_v66_dsp_backends(env: Path, containers: dict[str, Path], tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QNN_SDK_ROOT", str(qnn(tmp_path)))
    cpu = bundle(containers["float"], load_profile("pixel"), "cpu", containers["inputs"], pack="qnn",
                 root=tmp_path / "build")
    assert {p for p in files_of(cpu) if p.startswith("lib/")} == {"lib/libQnnCpu.so"}
    assert shape(tool_calls(env)[0]) == [
        "qnn-onnx-converter", "--input_network", "model.onnx", "--output_path", "model.cpp"]
    dsp = bundle(containers["quantized"], load_profile("pixel4"), "dsp", containers["inputs"], pack="qnn",
                 root=tmp_path / "build")
    assert {p for p in files_of(dsp) if p.startswith(("lib/", "dsp/"))} == {
        "lib/libQnnDsp.so", "lib/libQnnDspV66Stub.so", "dsp/libQnnDspV66Skel.so"}
    assert "--backend libQnnDsp.so" in (dsp.path / "run.sh").read_text()
    with pytest.raises(EdgeloopError, match="pack 'qnn' has no gpu_fp16 runtime"):
        bundle(containers["float"], load_profile("pixel"), "gpu_fp16", containers["inputs"], pack="qnn",
               root=tmp_path / "build")


def test_qnn_htp_context_binary(env: Path, containers: dict[str, Path], tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    sdk = qnn(tmp_path)
    monkeypatch.setenv("QNN_SDK_ROOT", str(sdk))
    b = bundle(containers["quantized"], load_profile("galaxy-s23"), "dsp", containers["inputs"], pack="qnn",
               root=tmp_path / "build", options={"model": "context"})
    assert {p for p in files_of(b) if p.startswith(("lib/", "dsp/", "model/"))} == {
        "lib/libQnnHtp.so", "lib/libQnnHtpV73Stub.so", "dsp/libQnnHtpV73Skel.so", "model/branchy_q.bin"}
    binary = (b.path / "model/branchy_q.bin").read_text()
    assert binary == "context binary from model library from qnn-onnx-converter output"
    _, generator, context = (shape(c) for c in tool_calls(env))
    assert generator[-4:] == ["-t", "x86_64-linux-clang", "-l", "model"]
    assert context == ["qnn-context-binary-generator", "--backend", "libQnnHtp.so", "--model", "libmodel.so",
                       "--binary_file", "model", "--output_dir", "context", "--config_file", "htp_extensions.json"]
    assert tool_calls(env)[2][2] == str(sdk / "lib/x86_64-linux-clang/libQnnHtp.so")
    assert json.loads(Path(f"{env}.htp_config.json").read_text()) == {"devices": [{"dsp_arch": "v73"}]}
    assert "--retrieve_context model/branchy_q.bin --input_list input_list.txt --backend libQnnHtp.so" in (
        b.path / "run.sh").read_text()
    with pytest.raises(EdgeloopError, match="context binary is prepared for the HTP backend, not for cpu"):
        bundle(containers["float"], load_profile("galaxy-s23"), "cpu", containers["inputs"], pack="qnn",
               root=tmp_path / "build", options={"model": "context"})


@pytest.mark.parametrize(("case", "message"), [
    ("no-sdk", r"set SNPE_ROOT or pass --sdk"),
    ("not-an-sdk", r"not a known snpe SDK layout"),
    ("unknown-version", r"unsupported SDK version 3\.1\.0 for the snpe2 layout"),
    ("missing-arch", r"no file matches .*lib/hexagon-v73/unsigned/libSnpeHtpV73Skel\.so.*"
                     r"SNPE 2\.20\.0\.240223 has no skel for Hexagon v73"),
    ("tool-fails", r"snpe-onnx-to-dlc failed \(exit 3\): ERROR: snpe-onnx-to-dlc: unsupported op Det"),
])
def test_snpe_errors_are_one_clear_line(case: str, message: str, env: Path, containers: dict[str, Path],
                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if case == "not-an-sdk":
        (tmp_path / "empty").mkdir()
        monkeypatch.setenv("SNPE_ROOT", str(tmp_path / "empty"))
    elif case == "unknown-version":
        monkeypatch.setenv("SNPE_ROOT", str(snpe2(tmp_path, name="snpe-3.1.0")))
    elif case == "missing-arch":
        monkeypatch.setenv("SNPE_ROOT", str(snpe2(tmp_path, hexagon=("v66",))))
    elif case == "tool-fails":
        monkeypatch.setenv("SNPE_ROOT", str(snpe2(tmp_path)))
        monkeypatch.setenv("FAKE_SDK_FAIL", "snpe-onnx-to-dlc")
    with pytest.raises(EdgeloopError, match=message) as info:
        bundle(containers["quantized"], load_profile("galaxy-s23"), "dsp", containers["inputs"], pack="snpe",
               root=tmp_path / "build")
    assert "\n" not in str(info.value)
    assert not list((tmp_path / "build").glob("bundles/*/manifest.json"))


SNPE_REPORT = """\
Interpreting file serialized with Flatbuffer
Log File Created: Thu May 25 10:39:50 2023
Time Scale: 1e-06
Software library version: 2.20.0.240223

Dnn Runtime Load/Deserialize/Create/De-Init Statistics:
--------------------------------------------------
Load: 149 us
Deserialize: 15997 us
Create: 28905 us

Init: 48856 us
De-Init: 6699 us

Average SNPE Statistics:
------------------------------
Total Inference Time: 26458 us
Forward Propagate Time: 26448 us

Layer Times:
---------------
0: 1419 us : CPU
1: conv_a : 230 us : CPU
2: 162014 cycles : DSP
"""

QNN_REPORT = """\
Qnn Init/Prepare/Finalize/De-Init/Execute/Lib-Load Statistics:
------------------------------------------------------------
Init Stats:
-----------
    NetRun: 168004 us

Finalize Stats:
---------------
Graph 0 (model):
    NetRun: 116305 us

Execute Stats (Average):
------------------------
Total Inference Time:
---------------------
Graph 0 (model):
    NetRun: 3394 us
    Backend (RPC (execute) time): 1755 us
"""


def test_vendor_profiling_logs_are_read_through_the_sdk_viewers(env: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "SNPEDiag_0.log"
    log.write_bytes(b"\x00binary")
    with pytest.raises(EdgeloopError, match=r"set SNPE_ROOT"):
        parse_timings("snpe-diag-log", log)
    monkeypatch.setenv("SNPE_ROOT", str(snpe2(tmp_path)))
    (tmp_path / "report.txt").write_text(SNPE_REPORT)
    monkeypatch.setenv("FAKE_SDK_REPORT", str(tmp_path / "report.txt"))
    timings = parse_timings("snpe-diag-log", log)
    assert timings.init_ms == pytest.approx(48.856)
    assert timings.inference_ms == [pytest.approx(26.458)]
    assert timings.layers == {"0": [pytest.approx(1.419)], "conv_a": [pytest.approx(0.230)]}  # cycles left out
    assert tool_calls(env)[-1] == ["snpe-diagview", "--input_log", str(log)]
    with pytest.raises(EdgeloopError, match="timings log not found"):
        parse_timings("snpe-diag-log", tmp_path / "nothing.log")
    monkeypatch.delenv("SNPE_ROOT")  # after the SDK's envsetup.sh the tools are on PATH instead
    monkeypatch.setenv("PATH", str(tmp_path / "2.20.0.240223/bin/x86_64-linux-clang"), prepend=os.pathsep)
    assert parse_timings("snpe-diag-log", log).init_ms == pytest.approx(48.856)

    monkeypatch.setenv("QNN_SDK_ROOT", str(qnn(tmp_path)))
    (tmp_path / "report.txt").write_text(QNN_REPORT)
    qlog = tmp_path / "qnn-profiling-data_0.log"
    qlog.write_bytes(b"\x01")
    timings = parse_timings("qnn-profiling-log", qlog)
    assert (timings.init_ms, timings.inference_ms) == (pytest.approx(168.004), [pytest.approx(3.394)])
    (tmp_path / "report.txt").write_text("Init Stats:\n    NetRun: 5 us\n")
    with pytest.raises(EdgeloopError, match="no 'Total Inference Time'"):
        parse_timings("qnn-profiling-log", qlog)

"""Bundles: deterministic, complete manifests, clear errors, nothing left behind on failure."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from deploy.bundle import Bundle, bundle
from deploy.container import ContainerMeta, TensorInfo, save_container
from deploy.errors import EdgeloopError
from deploy.fsutil import sha256_file
from deploy.inputlist import read_input_list
from deploy.profiles import load_profile, load_profile_file
from tests.deploy.models import branchy_net, random_feeds


def make_container(folder: Path, kind: str = "float") -> Path:
    """The two-input branchy_net as an edgeloop container (metadata written by hand, as convert would)."""
    model = branchy_net()
    shapes = {v.name: tuple(d.dim_value for d in v.type.tensor_type.shape.dim)
              for v in [*model.graph.input, *model.graph.output]}
    meta = ContainerMeta(kind=kind, inputs=[TensorInfo(n, shapes[n], layout="NCHW") for n in ("left", "right")],
                         outputs=[TensorInfo(n, shapes[n], layout="NCHW") for n in ("up", "pooled")],
                         source_sha256="0" * 64)
    return save_container(model, meta, folder / f"branchy_{kind}.onnx")


def make_inputs(folder: Path, lines: int = 2, header: str = "%up pooled\n") -> Path:
    model = branchy_net()
    text = header
    for i in range(lines):
        feeds = random_feeds(model, seed=i)
        for name, array in feeds.items():
            (folder / "raw").mkdir(parents=True, exist_ok=True)
            array.tofile(folder / "raw" / f"{name}_{i}.raw")
        text += f"left:=raw/left_{i}.raw right:=raw/right_{i}.raw\n"
    (folder / "list.txt").write_text(text)
    return folder / "list.txt"


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, Path]:
    src = tmp_path / "src"
    src.mkdir()
    return make_container(src), make_inputs(src)


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_built_twice_is_byte_identical(project: tuple[Path, Path], tmp_path: Path) -> None:
    container, inputs = project
    first = bundle(container, load_profile("pixel"), "gpu", inputs, root=tmp_path / "a")
    second = bundle(container, load_profile("pixel"), "gpu", inputs, root=tmp_path / "b")
    assert first.id == second.id and len(first.id) >= 12
    assert first.path == tmp_path / "a" / "bundles" / first.id
    assert _tree(first.path) == _tree(second.path)
    other = bundle(container, load_profile("pixel"), "cpu", inputs, root=tmp_path / "a")
    assert other.id != first.id  # the runtime is in run.sh, hence in the file list


def test_manifest_lists_every_file(project: tuple[Path, Path], tmp_path: Path) -> None:
    container, inputs = project
    made = bundle(container, load_profile("galaxy-s23"), "dsp", inputs, root=tmp_path,
                  options={"perf_profile": "burst"})
    on_disk = {str(p.relative_to(made.path)) for p in made.path.rglob("*") if p.is_file()} - {"manifest.json"}
    assert [f["path"] for f in made.manifest] == sorted(on_disk)
    for entry in made.manifest:
        path = made.path / entry["path"]
        assert entry["size"] == path.stat().st_size
        assert entry["sha256"] == sha256_file(path)
        assert entry["mode"] == f"{stat.S_IMODE(path.stat().st_mode):04o}"
    modes = {f["path"]: f["mode"] for f in made.manifest}
    assert modes["run.sh"] == "0755" and modes["model/branchy_float.onnx"] == "0644"
    assert (made.path / "model/branchy_float.onnx").read_bytes() == container.read_bytes()
    data = json.loads((made.path / "manifest.json").read_text())
    assert data["profile"] == "galaxy-s23" and data["hexagon"] == {"arch": "v73", "kind": "htp", "version": 73}
    assert data["container_sha256"] == sha256_file(container)
    assert [o["name"] for o in data["outputs"]] == ["up", "pooled"] and data["outputs"][0]["shape"] == [1, 8, 16, 16]
    assert made.timings_format == "edgeloop-diag" and made.timings_path == "edgeloop_diag.json"
    assert Bundle.load(made.path) == made


def test_input_list_and_run_script(project: tuple[Path, Path], tmp_path: Path) -> None:
    container, inputs = project
    made = bundle(container, load_profile("pixel"), "gpu_fp16", inputs, root=tmp_path)
    rewritten = read_input_list(made.path / "input_list.txt")
    assert rewritten.output_tensors == ["up", "pooled"] and len(rewritten.entries) == 2
    source = read_input_list(inputs)
    for original, copied in zip(source.entries, rewritten.entries, strict=True):
        for name in ("left", "right"):
            assert not Path(copied[name]).is_absolute()
            assert (made.path / copied[name]).read_bytes() == source.resolve(original[name]).read_bytes()
    script = (made.path / "run.sh").read_text()
    command = script.strip().splitlines()[-1]
    assert command.startswith("/system/bin/edgeloop-net-run --container model/branchy_float.onnx "
                              "--input_list input_list.txt --use_gpu --gpu_mode float16 ")
    assert "--perf_profile high_performance --profiling_level off" in command
    assert command.endswith('--output_dir "$@"') and "export" not in script


def test_reused_bundle_is_not_rewritten(project: tuple[Path, Path], tmp_path: Path) -> None:
    container, inputs = project
    first = bundle(container, load_profile("pixel"), "cpu", inputs, root=tmp_path)
    marker = first.path / "manifest.json"
    before = marker.stat().st_mtime_ns
    os.utime(marker, ns=(before - 10**9, before - 10**9))
    again = bundle(container, load_profile("pixel"), "cpu", inputs, root=tmp_path)
    assert again == first and marker.stat().st_mtime_ns == before - 10**9


def _assert_nothing_built(root: Path) -> None:
    assert not (root / "bundles").exists() or not any((root / "bundles").iterdir())


def test_runtime_missing_from_profile(project: tuple[Path, Path], tmp_path: Path) -> None:
    container, inputs = project
    with pytest.raises(EdgeloopError, match=r"profile 'pixel' has no dsp runtime \(it has cpu, gpu, gpu_fp16\)"):
        bundle(container, load_profile("pixel"), "dsp", inputs, root=tmp_path)
    _assert_nothing_built(tmp_path)


def test_aip_rejects_float_container(project: tuple[Path, Path], tmp_path: Path) -> None:
    container, inputs = project
    text = (load_profile("pixel4").path.read_text().replace("units: [cpu, gpu, dsp]", "units: [cpu, gpu, dsp, aip]"))
    assert "aip" in text
    (tmp_path / "hta.yaml").write_text(text)
    profile = load_profile_file(tmp_path / "hta.yaml")
    with pytest.raises(EdgeloopError, match="runtime aip needs a quantized container, this one is float"):
        bundle(container, profile, "aip", inputs, root=tmp_path)
    _assert_nothing_built(tmp_path)


def test_wrong_size_raw_names_file_expected_and_actual(project: tuple[Path, Path], tmp_path: Path) -> None:
    container, inputs = project
    bad = inputs.parent / "raw" / "right_1.raw"
    bad.write_bytes(np.zeros(10, dtype=np.float32).tobytes())
    with pytest.raises(EdgeloopError, match=r"right_1\.raw: wrong size for input 'right': expected 768 bytes, got 40"):
        bundle(container, load_profile("pixel"), "cpu", inputs, root=tmp_path)
    _assert_nothing_built(tmp_path)


def test_unknown_pack_option(project: tuple[Path, Path], tmp_path: Path) -> None:
    container, inputs = project
    with pytest.raises(EdgeloopError, match=r"no option 'perf_profil'.*did you mean 'perf_profile'"):
        bundle(container, load_profile("pixel"), "cpu", inputs, root=tmp_path, options={"perf_profil": "burst"})
    with pytest.raises(EdgeloopError, match=r"profiling_level: unknown value 'loud'"):
        bundle(container, load_profile("pixel"), "cpu", inputs, root=tmp_path, options={"profiling_level": "loud"})


def test_output_layer_line_is_kept(tmp_path: Path) -> None:
    container, inputs = make_container(tmp_path), make_inputs(tmp_path, lines=1, header="#conv_m\n")
    made = bundle(container, load_profile("pixel"), "cpu", inputs, root=tmp_path / "b", name="my model")
    text = (made.path / "input_list.txt").read_text()
    assert text.splitlines()[0] == "#conv_m"
    assert read_input_list(made.path / "input_list.txt").output_layers == ["conv_m"]
    assert made.container_name == "model/my_model.onnx"

"""The deployment file: the shipped example loads, and each kind of mistake names file, line and key."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from deploy.config import DEFAULT_MIN_COSINE, find_config, load_config
from deploy.errors import EdgeloopError

REPO = Path(__file__).resolve().parents[2]

GOOD = """\
runtimes: [cpu, dsp]
devices: [pixel4]
models:
  net:
    source: model.onnx
    input_list: data/list.txt
    labels: data/labels.txt
    input_dims: {input: [1, 3, 8, 8]}
    out_nodes: out
    quantization: {act_quantizer: enhanced, use_per_channel_quantization: true}
    thresholds:
      min_sqnr_db: 20
      dsp: {min_cosine: 0.97}
      outputs:
        out: {max_abs: 0.5, dsp: {min_cosine: 0.9}}
pack: builtin
pack_options: {profiling_level: off, perf_profile: burst}
"""


def _project(tmp_path: Path, text: str = GOOD) -> Path:
    (tmp_path / "data").mkdir(exist_ok=True)
    for name, content in (("model.onnx", "x"), ("data/list.txt", "a.raw\nb.raw\n"), ("data/labels.txt", "3\n7\n")):
        (tmp_path / name).write_text(content)
    config = tmp_path / "edgeloop.yaml"
    config.write_text(textwrap.dedent(text))
    return config


def _error(tmp_path: Path, text: str) -> str:
    with pytest.raises(EdgeloopError) as info:
        load_config(_project(tmp_path, text))
    return str(info.value)


def test_repository_example_loads() -> None:
    config = load_config(REPO / "edgeloop.yaml")
    digits = config.models["digits"]
    assert digits.source == REPO / "examples/digits/digits_cnn.onnx"
    assert digits.input_dims == {"digits": [1, 1, 8, 8]}
    assert "pixel" in config.devices and "cpu" in config.runtimes


def test_valid_file_resolves_paths_against_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")  # the working folder must not matter
    config = load_config(_project(tmp_path))
    net = config.models["net"]
    assert net.source == (tmp_path / "model.onnx").resolve()
    assert net.labels == (tmp_path / "data/labels.txt").resolve()
    assert net.calibration_list is None
    assert net.out_nodes == ["out"] and net.input_dims == {"input": [1, 3, 8, 8]}
    assert net.runtimes == ["cpu", "dsp"] and config.devices == ["pixel4"]
    assert net.quantization.act_quantizer == "enhanced" and net.quantization.use_per_channel_quantization
    assert config.pack == "builtin" and config.pack_options == {"profiling_level": "off", "perf_profile": "burst"}


def test_thresholds_most_specific_wins(tmp_path: Path) -> None:
    thresholds = load_config(_project(tmp_path)).models["net"].thresholds
    assert thresholds.limits("cpu") == {"min_cosine": DEFAULT_MIN_COSINE["cpu"], "min_sqnr_db": 20}
    assert thresholds.limits("dsp")["min_cosine"] == 0.97
    assert thresholds.limits("dsp", "out") == {"min_cosine": 0.9, "min_sqnr_db": 20, "max_abs": 0.5}
    assert thresholds.limits("gpu", "out")["min_cosine"] == DEFAULT_MIN_COSINE["gpu"]
    assert DEFAULT_MIN_COSINE["dsp"] < DEFAULT_MIN_COSINE["gpu"] < DEFAULT_MIN_COSINE["cpu"]


@pytest.mark.parametrize(("old", "new", "line", "expected"), [
    ("    labels:", "    lables:", 7, r"models\.net\.lables: unknown key \(did you mean 'labels'\?"),
    ("[1, 3, 8, 8]", "[1, three, 8, 8]", 8, r"models\.net\.input_dims\.input\[1\]: must be an integer"),
    ("model.onnx", "missing.onnx", 5, r"models\.net\.source: file not found: .*missing\.onnx"),
    ("[cpu, dsp]", "[cpu, dps]", 1, r"runtimes\[1\]: unknown value 'dps' \(did you mean 'dsp'\?"),
    ("min_cosine: 0.97", "min_cosine: 1.5", 13, r"thresholds\.dsp\.min_cosine: 1\.5 is out of range"),
    ("min_sqnr_db: 20", "min_sqnr_db: high", 12, r"thresholds\.min_sqnr_db: must be an integer or a number"),
    ("[pixel4]", "[pixel44]", 2, r"devices\[0\]: unknown value 'pixel44' \(did you mean 'pixel4'\?"),
    ("    source: model.onnx\n", "", 5, r"models\.net: missing required key 'source'"),
    ("act_quantizer: enhanced", "act_quantizer: fancy", 10, r"models\.net\.quantization: act_quantizer"),
    ("pack: builtin", "pack: bultin", 16, r"pack: unknown runtime pack 'bultin' \(did you mean 'builtin'\?"),
    ("{profiling_level: off", "{profiling_levl: off", 17, r"pack_options\.profiling_levl: unknown key "
                                                         r"\(did you mean 'profiling_level'\?"),
    ("perf_profile: burst", "perf_profile: bust", 17, r"pack_options\.perf_profile: unknown value 'bust' "
                                                     r"\(did you mean 'burst'\?"),
])
def test_errors_name_file_line_and_key(tmp_path: Path, old: str, new: str, line: int, expected: str) -> None:
    assert old in GOOD
    message = _error(tmp_path, GOOD.replace(old, new))
    assert message.startswith(f"{(tmp_path / 'edgeloop.yaml').resolve()}:{line}: ")
    assert re.search(expected, message), message


def test_duplicate_keys_and_bad_yaml(tmp_path: Path) -> None:
    assert ":18: runtimes: key given twice (first given on line 1)" in _error(tmp_path, GOOD + "runtimes: [gpu]\n")
    assert "not valid YAML" in _error(tmp_path, "models: [unclosed\n")
    assert "missing required key 'models'" in _error(tmp_path, "runtimes: [cpu]\n")


def test_find_config_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(EdgeloopError, match="no deployment file"):
        find_config()
    assert find_config(_project(tmp_path)).is_file()


def test_documented_example_loads(tmp_path: Path) -> None:
    """The example in docs/config.md is a working file (run beside a link to the example project)."""
    text = (REPO / "docs/config.md").read_text().split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "examples").symlink_to(REPO / "examples")
    (tmp_path / "edgeloop.yaml").write_text(text)
    digits = load_config(tmp_path / "edgeloop.yaml").models["digits"]
    assert digits.quantization.act_quantizer == "enhanced"
    assert digits.thresholds.limits("gpu_fp16", "logits")["max_abs"] == 0.05
    assert digits.thresholds.limits("dsp")["min_cosine"] == 0.97


def test_anchors_and_merge_keys(tmp_path: Path) -> None:
    copy = "  copy:\n    <<: *net\n    out_nodes: [other]\npack: builtin"
    text = GOOD.replace("  net:\n", "  net: &net\n").replace("pack: builtin", copy)
    config = load_config(_project(tmp_path, text))
    assert config.models["copy"].source == config.models["net"].source
    assert config.models["copy"].out_nodes == ["other"] and config.models["net"].out_nodes == ["out"]


@pytest.mark.parametrize(("labels", "message"), [
    ("3\n", r"edgeloop.yaml:7: models.net.labels: .*labels.txt has 1 labels for the 2 inferences of list.txt"),
    ("3\nseven\n", r"edgeloop.yaml:7: models.net.labels: .*labels.txt line 2: 'seven' is not an integer class"),
])
def test_labels_must_give_one_class_per_inference(labels: str, message: str, tmp_path: Path) -> None:
    config = _project(tmp_path)
    (tmp_path / "data/labels.txt").write_text(labels)
    with pytest.raises(EdgeloopError, match=message):
        load_config(config)

"""The deployment file: the shipped example loads, and each kind of mistake names file, line and key."""

from __future__ import annotations

import dataclasses
import re
import textwrap
from pathlib import Path

import pytest

from deploy.config import DEFAULT_MIN_COSINE, SCHEMA, find_config, load_config
from deploy.errors import EdgeloopError
from deploy.quantize.options import QuantizeOptions
from deploy.yamlnode import MAX_LISTED, did_you_mean
from tests.deploy.models import conv_net, with_batch

REPO = Path(__file__).resolve().parents[2]

GOOD = """\
runtimes: [cpu, dsp]
devices: [pixel4]
models:
  net:
    source: model.onnx
    input_list: data/list.txt
    labels: data/labels.txt
    input_dims: {image: [1, 3, 16, 16]}
    out_nodes: logits
    quantization: {act_quantizer: enhanced, use_per_channel_quantization: true}
    thresholds:
      min_sqnr_db: 20
      dsp: {min_cosine: 0.97}
      outputs:
        logits: {max_abs: 0.5, dsp: {min_cosine: 0.9}}
pack: builtin
pack_options: {profiling_level: off, perf_profile: burst}
"""


# conv_net with a dynamic batch: input 'image' [N, 3, 16, 16], node 'fc' computes 'logits', graph output 'probs'
MODEL = with_batch(conv_net(), "N").SerializeToString()


def _project(tmp_path: Path, text: str = GOOD) -> Path:
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "model.onnx").write_bytes(MODEL)
    for name, content in (("data/list.txt", "a.raw\nb.raw\n"), ("data/labels.txt", "3\n7\n")):
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
    assert net.out_nodes == ["logits"] and net.input_dims == {"image": [1, 3, 16, 16]}
    assert net.runtimes == ["cpu", "dsp"] and config.devices == ["pixel4"]
    assert net.quantization.act_quantizer == "enhanced" and net.quantization.use_per_channel_quantization
    assert config.pack == "builtin" and config.pack_options == {"profiling_level": "off", "perf_profile": "burst"}


def test_a_file_with_only_models_takes_the_defaults(tmp_path: Path) -> None:
    text = GOOD.replace("runtimes: [cpu, dsp]\ndevices: [pixel4]\n", "").split("pack: builtin")[0]
    config = load_config(_project(tmp_path, text))
    assert config.runtimes == ["cpu"] and config.devices == [] and config.pack == "builtin"
    assert config.pack_options == {} and config.models["net"].runtimes == ["cpu"]


def test_paths_may_start_at_home_and_must_be_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "data"))
    config = load_config(_project(tmp_path, GOOD.replace("data/labels.txt", "~/labels.txt")))
    assert config.models["net"].labels == (tmp_path / "data/labels.txt").resolve()
    assert re.search(r":6: models\.net\.input_list: .*/data is a folder, not a file",
                     _error(tmp_path, GOOD.replace("data/list.txt", "data")))


def test_thresholds_most_specific_wins(tmp_path: Path) -> None:
    thresholds = load_config(_project(tmp_path)).models["net"].thresholds
    assert thresholds.limits("cpu") == {"min_cosine": DEFAULT_MIN_COSINE["cpu"], "min_sqnr_db": 20}
    assert thresholds.limits("dsp")["min_cosine"] == 0.97
    assert thresholds.limits("dsp", "logits") == {"min_cosine": 0.9, "min_sqnr_db": 20, "max_abs": 0.5}
    assert thresholds.limits("gpu", "logits")["min_cosine"] == DEFAULT_MIN_COSINE["gpu"]
    assert DEFAULT_MIN_COSINE["dsp"] < DEFAULT_MIN_COSINE["gpu"] < DEFAULT_MIN_COSINE["cpu"]


@pytest.mark.parametrize(("old", "new", "line", "expected"), [
    ("    labels:", "    lables:", 7, r"models\.net\.lables: unknown key \(did you mean 'labels'\?"),
    ("[1, 3, 16, 16]", "[1, three, 16, 16]", 8, r"models\.net\.input_dims\.image\[1\]: must be an integer"),
    ("model.onnx", "missing.onnx", 5, r"models\.net\.source: file not found: .*missing\.onnx"),
    ("[cpu, dsp]", "[cpu, dps]", 1, r"runtimes\[1\]: unknown value 'dps' \(did you mean 'dsp'\?"),
    ("min_cosine: 0.97", "min_cosine: 1.5", 13,
     r"thresholds\.dsp\.min_cosine: must be at most 1, got 1\.5 \(a cosine similarity lies between -1 and 1\)"),
    ("min_sqnr_db: 20", "min_sqnr_db: high", 12, r"thresholds\.min_sqnr_db: must be a number, got 'high'"),
    ("min_sqnr_db: 20", "min_sqnr_db: .nan", 12, r"thresholds\.min_sqnr_db: must be a finite number, got nan"),
    ("min_sqnr_db: 20", "max_abs: -0.5", 12, r"thresholds\.max_abs: must be at least 0, got -0\.5"),
    ("dsp: {min_cosine", "dsp: {min_cosin", 13,
     r"thresholds\.dsp\.min_cosin: unknown key \(did you mean 'min_cosine'\?"),
    ("[pixel4]", "[pixel44]", 2, r"devices\[0\]: unknown device profile 'pixel44' \(did you mean 'pixel4'\?"),
    ("[cpu, dsp]", "[]", 1, r"runtimes: must not be empty"),
    ("[cpu, dsp]", "dps", 1, r"runtimes: unknown value 'dps' \(did you mean 'dsp'\?"),
    ("[1, 3, 16, 16]", "[1, 3.0, 16, 16]", 8, r"input_dims\.image\[1\]: must be an integer, got 3\.0"),
    ("[1, 3, 16, 16]", "[1, 0, 16, 16]", 8, r"input_dims\.image\[1\]: must be at least 1, got 0"),
    ("[1, 3, 16, 16]", "[1, 3, 100000000000000000000000000, 16]", 8, r"input_dims\.image\[2\]: must be at most"),
    ("{image: [1, 3, 16, 16]}", "{image: []}", 8, r"input_dims\.image: must not be empty \(the input's dimensions"),
    ("    source: model.onnx\n", "", 5, r"models\.net: missing required key 'source'"),
    ("models:", "modles:", 3, r"modles: unknown key \(did you mean 'models'\?"),  # not: 'models' missing
    ("    thresholds:\n", "    thresholdz:\n", 11, r"net\.thresholdz: unknown key \(did you mean 'thresholds'\?"),
    ("act_quantizer: enhanced", "act_quantizer: fancy", 10,
     r"models\.net\.quantization\.act_quantizer: unknown value 'fancy' \(known: enhanced, symmetric, tf\)"),
    ("use_per_channel_quantization: true", "use_per_channel_quantization: 1", 10,
     r"quantization\.use_per_channel_quantization: must be true or false, got 1"),
    ("pack: builtin", "pack: bultin", 16, r"pack: unknown runtime pack 'bultin' \(did you mean 'builtin'\?"),
    ("{profiling_level: off", "{profiling_levl: off", 17, r"pack_options\.profiling_levl: unknown key "
                                                         r"\(did you mean 'profiling_level'\?"),
    ("{profiling_level: off", "{profiling_level: ''", 17, r"pack_options\.profiling_level: must not be empty"),
    ("perf_profile: burst", "perf_profile: bust", 17, r"pack_options\.perf_profile: unknown value 'bust' "
                                                     r"\(did you mean 'burst'\?"),
])
def test_errors_name_file_line_and_key(tmp_path: Path, old: str, new: str, line: int, expected: str) -> None:
    assert old in GOOD
    message = _error(tmp_path, GOOD.replace(old, new))
    assert message.startswith(f"{(tmp_path / 'edgeloop.yaml').resolve()}:{line}: ")
    assert re.search(expected, message), message


def test_version_is_the_integer_one(tmp_path: Path) -> None:
    assert ":1: version: must be an integer, got true (" in _error(tmp_path, "version: true\n" + GOOD)
    assert ":1: version: must be an integer, got 1.0 (" in _error(tmp_path, "version: 1.0\n" + GOOD)
    assert (":1: version: must be 1, got 2 (this edgeloop reads version 1 of the deployment file)"
            in _error(tmp_path, "version: 2\n" + GOOD))
    assert load_config(_project(tmp_path, "version: 1\n" + GOOD)).models


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
    copy = "  copy:\n    <<: *net\n    out_nodes: [probs]\n    thresholds: {}\npack: builtin"
    text = GOOD.replace("  net:\n", "  net: &net\n").replace("pack: builtin", copy)
    config = load_config(_project(tmp_path, text))
    assert config.models["copy"].source == config.models["net"].source
    assert config.models["copy"].out_nodes == ["probs"] and config.models["net"].out_nodes == ["logits"]


@pytest.mark.parametrize(("labels", "message"), [
    ("3\n", r"edgeloop.yaml:7: models.net.labels: .*labels.txt has 1 labels for the 2 inferences of list.txt"),
    ("3\nseven\n", r"edgeloop.yaml:7: models.net.labels: .*labels.txt line 2: 'seven' is not an integer class"),
])
def test_labels_must_give_one_class_per_inference(labels: str, message: str, tmp_path: Path) -> None:
    config = _project(tmp_path)
    (tmp_path / "data/labels.txt").write_text(labels)
    with pytest.raises(EdgeloopError, match=message):
        load_config(config)


@pytest.mark.parametrize(("old", "new", "line", "expected"), [
    ("        logits: {max_abs", "        lgits: {max_abs", 15,
     r"thresholds\.outputs\.lgits: unknown output 'lgits' \(did you mean 'logits'\? known: logits\)"),
    ("        logits: {max_abs: 0.5, dsp: {min_cosine: 0.9}}", "        lgits:\n          max_abs: 0.5", 15,
     r"thresholds\.outputs\.lgits: unknown output 'lgits'"),  # the key's line, not its value's (16)
    ("[1, 3, 16, 16]", "[1, 3, 16, 16, 1]", 8,
     r"input_dims\.image: 5 dims given, input 'image' has rank 4 \['N', 3, 16, 16\] \(give 4 dims\)"),
    ("{image:", "{imag:", 8, r"input_dims\.imag: unknown input 'imag' \(did you mean 'image'\? known: image\)"),
    ("    input_dims: {image: [1, 3, 16, 16]}\n", "", 5,
     r"models\.net: input 'image' has dynamic dims \['N', 3, 16, 16\]; .* \(give them in input_dims: "
     r"\{image: \[1, 3, 16, 16\]\}\)"),
    ("out_nodes: logits", "out_nodes: [probs, lgits]", 9,
     r"out_nodes\[1\]: 'lgits' is not a node or tensor of the model \(did you mean 'logits'\? nearest of"),
    ("out_nodes: logits", "out_nodes: image", 9, r"out_nodes: 'image' is an input of the model"),
    ("out_nodes: logits", "out_nodes: relu3", 15, r"outputs\.logits: unknown output 'logits' \(known: relu3\)"),
    ("    out_nodes: logits\n", "", 14, r"outputs\.logits: unknown output 'logits' \(known: probs\)"),
    ("out_nodes: logits", "out_nodes: []", 15, r"outputs\.logits: unknown output 'logits' \(known: probs\)"),
])
def test_names_are_checked_against_the_source_model(tmp_path: Path, old: str, new: str, line: int,
                                                     expected: str) -> None:
    """input_dims, out_nodes and per-output thresholds name what the model has, or the file says where not."""
    assert old in GOOD
    message = _error(tmp_path, GOOD.replace(old, new))
    assert message.startswith(f"{(tmp_path / 'edgeloop.yaml').resolve()}:{line}: "), message
    assert re.search(expected, message), message


def test_an_out_node_naming_a_node_stands_for_its_output(tmp_path: Path) -> None:
    """`fc` is the node computing `logits`, so a threshold for `logits` applies to it."""
    net = load_config(_project(tmp_path, GOOD.replace("out_nodes: logits", "out_nodes: [fc, probs]"))).models["net"]
    assert net.out_nodes == ["fc", "probs"] and net.thresholds.limits("cpu", "logits")["max_abs"] == 0.5


def test_a_source_that_is_not_onnx(tmp_path: Path) -> None:
    config = _project(tmp_path)
    (tmp_path / "model.onnx").write_bytes(MODEL[: len(MODEL) // 3])
    with pytest.raises(EdgeloopError, match=r"edgeloop.yaml:5: models\.net\.source: not an ONNX model"):
        load_config(config)


def test_torchscript_names_are_not_checked(tmp_path: Path) -> None:
    """A TorchScript file has no input or output names until it is exported; convert checks them then."""
    config = _project(tmp_path, GOOD.replace("model.onnx", "model.pt").replace("{image:", "{x:"))
    (tmp_path / "model.pt").write_bytes(b"not read when the file is loaded")
    net = load_config(config).models["net"]
    assert net.input_dims == {"x": [1, 3, 16, 16]} and net.thresholds.limits("cpu", "logits")["max_abs"] == 0.5


def test_a_hint_lists_few_names_or_the_nearest_of_many() -> None:
    few = ["logits", "probs"]
    assert did_you_mean("lgits", few) == "did you mean 'logits'? known: logits, probs"
    many = [f"layer{i}/Conv_output_0" for i in range(3 * MAX_LISTED)]
    hint = did_you_mean("layer7/Conv_output", many)
    assert hint.startswith("did you mean 'layer7/Conv_output_0'? nearest of 36 known: layer7/Conv_output_0, ")
    assert len(hint.split(": ")[1].split(", ")) == 5


@pytest.mark.parametrize(("old", "new"), [
    ("    labels:", "    lables:"), ("[1, 1, 8, 8]", "[1, one, 8, 8]"), ("digits_cnn.onnx", "digit_cnn.onnx"),
    ("[cpu, gpu, gpu_fp16]", "[cpu, dps, gpu_fp16]"), ("{min_cosine: 0.97}", "{min_cosine: 1.5}"),
    ("        logits:", "        lgits:"), ("[1, 1, 8, 8]", "[1, 1, 8, 8, 1]"), ("[logits]", "[lgits]"),
])
def test_documented_messages_are_what_the_code_says(tmp_path: Path, old: str, new: str) -> None:
    """Each message docs/config.md shows comes from its example file with that one mistake."""
    doc = (REPO / "docs/config.md").read_text()
    text = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert old in text
    (tmp_path / "examples").symlink_to(REPO / "examples")
    (tmp_path / "edgeloop.yaml").write_text(text.replace(old, new, 1))
    with pytest.raises(EdgeloopError) as info:
        load_config(tmp_path / "edgeloop.yaml")
    shown = str(info.value).replace(f"{tmp_path.resolve()}/", "").replace(f"{REPO}/", "/work/project/")
    assert f"\n{shown}\n" in doc


QUANTIZATION_FLOW = "    quantization: {act_quantizer: enhanced, use_per_channel_quantization: true}\n"


def _block_quantization(options: str) -> str:
    return GOOD.replace(QUANTIZATION_FLOW, f"    quantization:\n      {options}\n")


@pytest.mark.parametrize(("options", "line", "expected"), [
    ("act_quantizer: tf\n      act_bitwidth: 7", 12, r"quantization\.act_bitwidth: unknown value 7 \(known: 8, 16\)"),
    ("act_quantizer: tf\n      act_bitwidht: 8", 12,
     r"quantization\.act_bitwidht: unknown key \(did you mean 'act_bitwidth'\?"),
    ("act_quantizer: tf\n      algorithms: [cle, bcc]", 12,
     r"quantization\.algorithms\[1\]: unknown value 'bcc' \(did you mean 'bc'\?"),
    ("act_quantizer: tf\n      min_range: 0", 12, r"quantization\.min_range: must be more than 0, got 0"),
    ("act_quantizer: tf\n      override_params: none.json", 12, r"quantization\.override_params: file not found"),
    ("weights_bitwidth: 8\n      pack_4_bit_weights: true", 11,
     r"quantization\.weights_bitwidth: must be 4, got 8 \(pack_4_bit_weights packs 4-bit weights"),
    ("act_quantizer: tf\n      pack_4_bit_weights: true", 11,  # a block mapping starts at its first key
     r"models\.net\.quantization: missing required key 'weights_bitwidth' \(pack_4_bit_weights packs"),
])
def test_quantization_problems_name_the_option_line(tmp_path: Path, options: str, line: int, expected: str) -> None:
    """A block-style quantization section: the error is on the option's own line, not the section's first."""
    message = _error(tmp_path, _block_quantization(options))
    assert message.startswith(f"{(tmp_path / 'edgeloop.yaml').resolve()}:{line}: "), message
    assert re.search(expected, message), message


def test_the_quantization_schema_has_every_option(tmp_path: Path) -> None:
    """SCHEMA lists QuantizeOptions' fields (a new option is not refused as unknown), and what it lets
    through builds the options: one algorithm name stands for a list, the override file is found."""
    assert set(SCHEMA["properties"]["models"]["additionalProperties"]["properties"]["quantization"]["properties"]) \
        == {f.name for f in dataclasses.fields(QuantizeOptions)}
    config = _project(tmp_path, _block_quantization("algorithms: cle\n      override_params: data/enc.json"))
    (tmp_path / "data/enc.json").write_text("{}")
    options = load_config(config).models["net"].quantization
    assert options.algorithms == ("cle",) and options.override_params == (tmp_path / "data/enc.json").resolve()


def test_an_option_valid_beside_a_later_one_loads(tmp_path: Path) -> None:
    text = _block_quantization("pack_4_bit_weights: true\n      weights_bitwidth: 4")
    options = load_config(_project(tmp_path, text)).models["net"].quantization
    assert options.pack_4_bit_weights and options.weights_bitwidth == 4


def test_a_merged_section_overridden_in_place_reads_the_same_every_time(tmp_path: Path) -> None:
    """Thresholds are read twice (checked against the model's outputs, then parsed): a merged-in key
    overridden beside the merge must not turn into 'key given twice' on the second read."""
    copy = "  copy:\n    <<: *net\n    thresholds:\n      <<: *limits\n      min_sqnr_db: 30\n"
    text = GOOD.replace("  net:\n", "  net: &net\n").replace("    thresholds:\n", "    thresholds: &limits\n")
    config = load_config(_project(tmp_path, text.replace("pack: builtin", copy + "pack: builtin", 1)))
    assert config.models["copy"].thresholds.limits("cpu", "logits")["min_sqnr_db"] == 30
    assert config.models["net"].thresholds.limits("cpu", "logits")["min_sqnr_db"] == 20
    twice = text.replace("pack: builtin", copy + "      min_sqnr_db: 40\npack: builtin", 1)
    assert ":21: models.copy.thresholds.min_sqnr_db: key given twice (first given on line 20)" in _error(tmp_path,
                                                                                                         twice)

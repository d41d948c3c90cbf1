"""AIMET encodings: round trips between formats, full and partial overrides, float islands, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from onnx import numpy_helper

from deploy.container import load_container
from deploy.errors import EdgeloopError
from deploy.quantize import QuantizeOptions, quantize
from deploy.quantize.aimet import export_encodings, parse_encodings, read_encodings
from deploy.quantize.encodings import float_encoding, per_channel_encoding, symmetric_encoding, tf_encoding
from tests.deploy.models import conv_net
from tests.quantize.util import make_container, make_input_list


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path]:
    monkeypatch.setenv("EDGELOOP_BUILD", str(tmp_path / "build"))
    model = conv_net()
    container = make_container(model, tmp_path / "float.onnx")
    return tmp_path, container, make_input_list(model, tmp_path, 4)


def _by_name(encodings: dict, section: str) -> dict[str, dict]:
    return {e["name"]: e for e in encodings[section]}


@pytest.mark.parametrize("version", ["0.6.1", "1.0.0", "2.0.0"])
def test_round_trip(version: str) -> None:
    w = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32)
    acts = {"relu1": tf_encoding(-0.3, 5.2, 8), "probs": tf_encoding(0, 1, 16), "gap": float_encoding(16)}
    params = {"conv1.weight": per_channel_encoding(w, 0, 8, "tf"), "fc.weight": symmetric_encoding(0.7, 4)}
    data = json.loads(json.dumps(export_encodings(acts, params, version)))  # through real JSON text
    back = parse_encodings(data, "enc.json", set(params))
    for ours, theirs in ((acts, back.activations), (params, back.params)):
        assert set(ours) == set(theirs)
        for name, enc in ours.items():
            got = theirs[name]
            assert (got.bw, got.is_float) == (enc.bw, enc.is_float), name
            if not enc.is_float:
                assert got.symmetric == enc.symmetric
                assert np.allclose(got.scale, enc.scale, rtol=1e-12) and np.array_equal(got.offset, enc.offset)


def test_legacy_min_max_only_and_positive_offsets() -> None:
    data = {"activation_encodings": {"a": [{"bitwidth": 8, "min": -1.8, "max": 0.5}],
                                     "b": [{"bitwidth": 8, "min": -2.1, "max": 1.7, "offset": 140,
                                            "scale": 0.0149}]},
            "param_encodings": {}}
    back = parse_encodings(data, "enc.json", set())
    assert int(back.activations["a"].offset) == -200  # computed from min/max as docs/spec.md §5
    assert int(back.activations["b"].offset) == -140  # a zero point written as a positive offset


def test_full_override_reuses_every_encoding(setup) -> None:
    tmp, container, input_list = setup
    first = quantize(container, input_list, tmp / "q1.onnx", encodings_out=tmp / "enc.json")
    other = make_input_list(conv_net(), tmp / "other" if (tmp / "other").mkdir() is None else tmp, 4, seed=7,
                            scale=3.0)
    plain = quantize(container, other, tmp / "q2.onnx")
    forced = quantize(container, other, tmp / "q3.onnx", QuantizeOptions(override_params=tmp / "enc.json"))
    want = _by_name(first.meta.encodings, "activation_encodings")
    assert _by_name(forced.meta.encodings, "activation_encodings") == want
    assert _by_name(plain.meta.encodings, "activation_encodings")["relu1"] != want["relu1"]


def test_partial_override_changes_only_what_it_names(setup) -> None:
    tmp, container, input_list = setup
    plain = quantize(container, input_list, tmp / "q1.onnx")
    (tmp / "partial.json").write_text(json.dumps({
        "version": "0.6.1",
        "activation_encodings": {"relu1": [{"bitwidth": 8, "dtype": "int", "min": 0.0, "max": 10.2}],
                                 "relu2": [{"bitwidth": 16, "dtype": "int"}]},
        "param_encodings": {}}))
    part = quantize(container, input_list, tmp / "q2.onnx", QuantizeOptions(override_params=tmp / "partial.json"))
    before = _by_name(plain.meta.encodings, "activation_encodings")
    after = _by_name(part.meta.encodings, "activation_encodings")
    assert after["relu1"]["scale"] == pytest.approx([10.2 / 255])
    assert after["relu2"]["bw"] == 16 and before["relu2"]["bw"] == 8  # bitwidth only: range from calibration
    assert {k: v for k, v in after.items() if k not in ("relu1", "relu2")} == {
        k: v for k, v in before.items() if k not in ("relu1", "relu2")}


def test_float_island_keeps_the_op_float_with_conversions(setup) -> None:
    tmp, container, input_list = setup
    (tmp / "island.json").write_text(json.dumps({
        "activation_encodings": {"logits": [{"bitwidth": 32, "dtype": "float"}]}, "param_encodings": {}}))
    result = quantize(container, input_list, tmp / "q.onnx", QuantizeOptions(override_params=tmp / "island.json"))
    qmodel, meta = load_container(result.path)
    inits = {i.name: numpy_helper.to_array(i) for i in qmodel.graph.initializer}
    # the output made the whole op float: weight and bias stay float initializers
    assert inits["fc.weight"].dtype == np.float32 and inits["fc.bias"].dtype == np.float32
    fc = next(n for n in qmodel.graph.node if n.name == "fc")
    assert fc.output[0] == "logits"  # no Q/DQ after it
    assert fc.input[0] == "flat"  # it reads the dequantized int tensor: the int -> float convert
    softmax = next(n for n in qmodel.graph.node if n.name == "probs")
    assert softmax.input[0] == "logits_converted"  # float -> int convert for the int reader
    producer = next(n for n in qmodel.graph.node if "logits_converted" in n.output)
    assert producer.op_type == "DequantizeLinear"
    assert _by_name(meta.encodings, "activation_encodings")["logits"]["dtype"] == "FLOAT"
    assert result.cosine > 0.99


def test_weight_override_float_makes_the_op_float(setup) -> None:
    tmp, container, input_list = setup
    (tmp / "w.json").write_text(json.dumps({"version": "1.0.0", "activation_encodings": [], "param_encodings": [
        {"name": "fc.weight", "enc_type": "PER_TENSOR", "dtype": "FLOAT", "bw": 16}]}))
    qmodel, meta = load_container(quantize(container, input_list, tmp / "q.onnx",
                                           QuantizeOptions(override_params=tmp / "w.json")).path)
    assert "fc.bias" in {i.name for i in qmodel.graph.initializer}  # bias float too
    assert _by_name(meta.encodings, "activation_encodings")["logits"]["dtype"] == "FLOAT"


@pytest.mark.parametrize(("content", "message"), [
    ({"activation_encodings": {"no_such_tensor": [{"bitwidth": 8, "dtype": "int"}]}, "param_encodings": {}},
     r"activation encoding for unknown tensor 'no_such_tensor' \(the model has no activation tensor of that name; "
     r"(did you mean '[^']+'\? )?(nearest of \d+ )?known: "),
    ({"activation_encodings": {"relu1": [{"bitwidth": 7, "dtype": "int"}]}, "param_encodings": {}},
     r"encoding of 'relu1': bitwidth 7 is not one of 4, 8, 16, 32"),
    ({"version": "3.1", "encodings": []},
     r"bad\.json:1: version: unknown value '3\.1' \(known: 0\.6\.1, 1\.0\.0, 2\.0\.0\)"),
])
def test_bad_encodings_files_fail_with_one_line(setup, content: dict, message: str) -> None:
    tmp, container, input_list = setup
    (tmp / "bad.json").write_text(json.dumps(content))
    with pytest.raises(EdgeloopError, match=message) as info:
        quantize(container, input_list, tmp / "q.onnx", QuantizeOptions(override_params=tmp / "bad.json"))
    assert "\n" not in str(info.value) and "bad.json" in str(info.value)


def test_encodings_made_with_cle_fit_only_a_cle_quantization(setup) -> None:
    """CLE rescales channels, so its encodings describe other weights than the float model's:
    imported without CLE they would be silently wrong; with CLE they reproduce the original."""
    tmp, container, input_list = setup
    options = QuantizeOptions(param_quantizer="enhanced", use_per_channel_quantization=True, algorithms=("cle",))
    original = quantize(container, input_list, tmp / "q.onnx", options, encodings_out=tmp / "cle.json")
    with pytest.raises(EdgeloopError, match="made with CLE, this quantization runs without it") as info:
        quantize(container, input_list, tmp / "plain.onnx", QuantizeOptions(override_params=tmp / "cle.json"))
    assert "--algorithms cle as the file was made" in info.value.hint
    again = quantize(container, input_list, tmp / "again.onnx",
                     QuantizeOptions(algorithms=("cle",), override_params=tmp / "cle.json"))
    assert again.sqnr_db == pytest.approx(original.sqnr_db, abs=0.05)


_V1 = '{"version": "1.0.0",\n "param_encodings": [],\n "activation_encodings": [\n  %s\n ]}'
_ENTRY = '"name": "relu1", "dtype": "INT", "bw": 8'


@pytest.mark.parametrize(("text", "message"), [
    (_V1 % f'{{{_ENTRY}, "scale": ["abc"], "offset": [0]}}',
     r":4: activation_encodings\[0\]\.scale\[0\]: must be a number"),
    (_V1 % f'{{{_ENTRY}, "scale": [], "offset": []}}', r":4: activation_encodings\[0\]\.scale: must not be empty"),
    ('{"version": "2.0.0",\n "encodings": 7}', r":2: encodings: must be a list, got 7"),
    (_V1 % f'{{{_ENTRY}, "scale": [Infinity], "offset": [0]}}', r":4: Infinity is not a finite number"),
    (_V1 % f'{{{_ENTRY}, "scale": [1e400], "offset": [0]}}',
     r":4: activation_encodings\[0\]\.scale\[0\]: must be a finite number, got inf"),
    (_V1 % f'{{{_ENTRY}, "scale": [0.1], "offset": [0.5]}}',
     r":4: activation_encodings\[0\]\.offset\[0\]: must be an integer"),
    (_V1 % f'{{{_ENTRY}, "enc_type": "PER_BLOCK", "scale": [0.1], "offset": [0]}}',
     r"enc_type: unknown value 'PER_BLOCK' .*block-wise encodings .* are not supported"),
    (_V1 % f'{{{_ENTRY}, "sacle": [0.1]}}',
     r":4: activation_encodings\[0\]\.sacle: unknown key \(did you mean 'scale'"),
    ('{"activation_encodings": {"relu1": [{"bitwidth": 8, "min": 2.0, "max": -1.0}]}}', r"min 2\.0 is above max -1\.0"),
    ('{"version": "0.6.1", "version": "1.0.0"}', r"key 'version' given twice"),
    ('{"version": "1.0.0",\n "param_encodings": [\n', r":3: not valid JSON"),
    ("[" * 100_000, r"nested too deeply|not valid JSON"),
])
def test_encodings_that_are_wrong_are_one_line_naming_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    """Issue 14: each of these was a traceback, or was taken without a word."""
    path = tmp_path / "enc.json"
    path.write_text(text)
    with pytest.raises(EdgeloopError, match=message) as info:
        read_encodings(path, set())
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)

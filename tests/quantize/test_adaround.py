"""AdaRound: its functions at known points, a rounding that nearest gets wrong, never worse than
nearest on a layer, and end to end in a quantized container."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from onnx import helper, numpy_helper

from deploy.container import load_container
from deploy.errors import EdgeloopError
from deploy.quantize import QuantizeOptions, quantize
from deploy.quantize.adaround import adaround, beta_at, initial_v, rectified_sigmoid, regulariser
from deploy.quantize.encodings import per_channel_encoding, tf_encoding
from deploy.quantize.layerwise import Grid, Layer, grid, row_losses
from tests.deploy.models import conv_net
from tests.quantize.util import make_container, make_input_list


def test_rectified_sigmoid_at_known_points() -> None:
    # sigmoid(0) = 1/2 -> 0.5 * 1.2 - 0.1; sigmoid(log 1/3) = 1/4 -> 0.2; it saturates at exactly 0 and 1
    h = rectified_sigmoid(np.array([0.0, math.log(1 / 3), 30.0, -30.0, math.log(11)]))
    np.testing.assert_allclose(h, [0.5, 0.2, 1.0, 0.0, 1.0], atol=1e-12)  # sigmoid(log 11) = 11/12 -> 1.0
    rest = np.array([0.0, 0.3, 0.75, 0.999])
    np.testing.assert_allclose(rectified_sigmoid(initial_v(rest)), rest, atol=1e-12)


def test_regulariser_and_beta_schedule() -> None:
    assert regulariser(np.array([0.0, 1.0, 1.0]), 20) == 0.0  # decided roundings cost nothing
    assert regulariser(np.array([0.5]), 2) == 1.0
    assert regulariser(np.array([0.75]), 2) == pytest.approx(0.75)  # 1 - 0.5^2
    assert regulariser(np.array([0.75]), 20) == pytest.approx(1 - 0.5 ** 20)
    assert beta_at(200, 1000) == 20.0  # the end of the 20 % warm start
    assert beta_at(600, 1000) == pytest.approx(11.0)  # half way down the cosine
    assert beta_at(999, 1000) == pytest.approx(2.0, abs=1e-3)


def test_finds_the_rounding_nearest_gets_wrong() -> None:
    """w = [0.6, 0.55] on a grid of step 1, input always [1, 1]: the float output is 1.15. Nearest
    rounds both up (output 2, squared error 0.7225); one up and one down gives 1 (error 0.0225)."""
    rows = np.array([[[0.6, 0.55]]], dtype=np.float32)
    gram = np.ones((1, 2, 2))
    levels = Grid(np.float32(1.0), np.float32(-128), np.float32(127))
    assert row_losses(levels.nearest(rows) - rows, gram)[0, 0] == pytest.approx(0.7225)
    t = adaround(rows, gram, levels, 500)
    assert t.sum() == 1 and set(t.ravel()) == {0.0, 1.0}
    assert row_losses(levels.values(t) - rows, gram)[0, 0] == pytest.approx(0.0225, rel=1e-5)


def _conv_layer(seed: int) -> tuple[Layer, np.ndarray]:
    """A 3x3 conv (4 outputs, 3 inputs) with G from 8 correlated random inputs."""
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.3
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", pads=[1, 1, 1, 1])
    layer = Layer(node, "w", weight.shape)
    rows = np.concatenate([layer.sample_rows(np.cumsum(rng.standard_normal((1, 3, 8, 8)), axis=3), 64, rng)
                           for _ in range(8)]).astype(np.float64)
    layer.gram = np.einsum("sgk,sgl->gkl", rows, rows) / len(rows)
    return layer, weight


@pytest.mark.parametrize("per_channel", [False, True])
def test_never_worse_than_nearest_on_the_layer(per_channel: bool) -> None:
    layer, weight = _conv_layer(1)
    enc = per_channel_encoding(weight, 0, 4, "tf") if per_channel else tf_encoding(weight.min(), weight.max(), 4)
    levels, rows = grid(enc, layer), layer.to_rows(weight)
    t = adaround(rows, layer.gram, levels, 300)
    nearest = levels.nearest(rows)
    assert np.all(t >= levels.lo) and np.all(t <= levels.hi) and np.all(t == np.rint(t))
    assert np.all(np.abs(t - rows / levels.scale) < 1)  # each weight rounded down or up, nothing further
    learned, plain = row_losses(levels.values(t) - rows, layer.gram), row_losses(levels.values(nearest) - rows,
                                                                                   layer.gram)
    assert np.all(learned <= plain) and learned.sum() < 0.8 * plain.sum()


def _digits_like(tmp_path: Path) -> tuple[Path, Path]:
    model = conv_net()
    return make_container(model, tmp_path / "float.onnx"), make_input_list(model, tmp_path, 8)


def test_end_to_end_raises_sqnr_and_the_container_holds_the_rounding(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGELOOP_BUILD", str(tmp_path / "build"))
    container, calib = _digits_like(tmp_path)
    base = QuantizeOptions(weights_bitwidth=4, use_per_channel_quantization=True)
    plain = quantize(container, calib, tmp_path / "plain.onnx", base, cache=False)
    tuned = quantize(container, calib, tmp_path / "ada.onnx", QuantizeOptions(
        weights_bitwidth=4, use_per_channel_quantization=True, algorithms=("adaround",)), cache=False)
    assert tuned.sqnr_db > plain.sqnr_db + 3  # 19.40 -> 28.23 dB on this seed
    # Same weight encodings (AdaRound only rounds), other integers, each the floor or ceiling of w / scale.
    assert tuned.meta.encodings["param_encodings"] == plain.meta.encodings["param_encodings"]
    float_model, _ = load_container(container)
    weights = {i.name: numpy_helper.to_array(i) for i in float_model.graph.initializer}
    stored = {i.name: numpy_helper.to_array(i) for i in load_container(tuned.path)[0].graph.initializer}
    nearest = {i.name: numpy_helper.to_array(i) for i in load_container(plain.path)[0].graph.initializer}
    encodings = {e["name"]: e for e in tuned.meta.encodings["param_encodings"]}
    w = weights["conv1.weight"]
    scale = np.asarray(encodings["conv1.weight"]["scale"], dtype=np.float32).reshape(-1, 1, 1, 1)
    ints = stored["conv1.weight_quantized"].astype(np.int64)
    assert np.all(np.abs(ints - w / scale) < 1)
    assert np.any(ints != nearest["conv1.weight_quantized"])


def test_combines_with_seqmse_and_bias_correction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGELOOP_BUILD", str(tmp_path / "build"))
    container, calib = _digits_like(tmp_path)
    alone = quantize(container, calib, tmp_path / "a.onnx", QuantizeOptions(
        weights_bitwidth=4, algorithms=("seqmse", "adaround")), cache=False)
    with_bc = quantize(container, calib, tmp_path / "b.onnx", QuantizeOptions(
        weights_bitwidth=4, algorithms=("seqmse", "adaround", "bc")), cache=False)
    weights = [e for e in alone.meta.encodings["param_encodings"] if e["name"].endswith(".weight")]
    # bias correction re-plans: the tuned weight encodings stay frozen
    assert weights == [e for e in with_bc.meta.encodings["param_encodings"] if e["name"].endswith(".weight")]
    assert with_bc.meta.quantization["algorithms"] == ["seqmse", "adaround", "bc"]


def test_options_from_a_config_file() -> None:
    options = QuantizeOptions.from_mapping({"algorithms": ["cle", "adaround", "seqmse"],
                                            "adaround_iterations": "200"}, "edgeloop.yaml")
    assert options.algorithms == ("cle", "adaround", "seqmse") and options.adaround_iterations == 200
    with pytest.raises(EdgeloopError, match="adaround_iterations must be a whole number >= 1, got 0"):
        QuantizeOptions.from_mapping({"adaround_iterations": 0}, "edgeloop.yaml")
    with pytest.raises(EdgeloopError, match="algorithms must be one of cle, bc, adaround, seqmse, got 'adaroud'"):
        QuantizeOptions.from_mapping({"algorithms": "adaroud"}, "edgeloop.yaml")

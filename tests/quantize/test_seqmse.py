"""Sequential MSE: the candidate grid, the pick a brute-force search makes, never worse than the
plan's encoding, a pinned encoding left alone, and end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from onnx import helper

from deploy.quantize import QuantizeOptions, quantize
from deploy.quantize.encodings import Encoding, per_channel_encoding, symmetric_encoding, tf_encoding
from deploy.quantize.layerwise import Layer, grid, row_losses
from deploy.quantize.seqmse import CANDIDATES, candidates, search_range
from tests.deploy.models import conv_net
from tests.quantize.test_adaround import _conv_layer
from tests.quantize.util import make_container, make_input_list


def _gemm_layer(weight: np.ndarray, gram: np.ndarray) -> Layer:
    node = helper.make_node("Gemm", ["x", "w"], ["y"], name="fc", transB=1)
    return Layer(node, "w", weight.shape, gram=gram[None])


def test_candidates_are_the_plan_and_twenty_shrunk_ranges() -> None:
    rows = np.array([[[-0.4, 0.2], [0.1, 0.8]]], dtype=np.float32)
    enc = per_channel_encoding(rows[0], 0, 8, "tf")
    found = candidates(rows, enc, 1e-4)
    assert len(found) == 1 + CANDIDATES and found[0] is enc
    np.testing.assert_allclose(found[-1].scale, enc.scale)  # k = 20: the full range, which tf picks
    np.testing.assert_allclose(found[10].scale, np.array([0.4, 0.8]) / 2 / 127)  # k = 10
    asym = candidates(rows, tf_encoding(-0.4, 0.8, 8), 1e-4)
    assert asym[5].min == pytest.approx(-0.1, abs=0.003) and asym[5].max == pytest.approx(0.2, abs=0.003)


def test_an_input_that_is_always_zero_lets_the_range_clip_its_weight() -> None:
    """Weight [1.0, 0.3], second input only: the range should fit 0.3, not the outlier 1.0.
    By hand at 4 bits (levels -8..7, scale = absmax k/20 / 7): k = 14 gives scale 0.1 and
    represents 0.3 exactly; the full range (k = 20, scale 1/7) gives 2/7 = 0.2857, loss 2.04e-4."""
    rows = np.array([[[1.0, 0.3]]], dtype=np.float32)
    layer = _gemm_layer(rows[0], np.diag([0.0, 1.0]))
    enc = symmetric_encoding(1.0, 4)
    full = grid(enc, layer)
    assert row_losses(full.values(full.nearest(rows)) - rows, layer.gram)[0, 0] == pytest.approx((0.3 - 2 / 7) ** 2)
    best = grid(search_range(layer, rows, enc, 1e-4), layer)
    assert row_losses(best.values(best.nearest(rows)) - rows, layer.gram)[0, 0] < 1e-12
    assert float(best.scale) * 7 < 1.0  # the outlier is clipped


@pytest.mark.parametrize("per_channel", [False, True])
def test_picks_what_brute_force_picks(per_channel: bool) -> None:
    layer, weight = _conv_layer(2)
    rows = layer.to_rows(weight)
    enc = per_channel_encoding(weight, 0, 4, "tf") if per_channel else tf_encoding(weight.min(), weight.max(), 4)
    chosen = search_range(layer, rows, enc, 1e-4)
    # Brute force, written out: every k, every channel, quantize with numpy and sum the output MSE.
    flat = rows.reshape(4, -1)
    best_cost = np.full(4 if per_channel else 1, np.inf)
    best_scale = np.zeros_like(best_cost)
    for k in range(1, 21):
        if per_channel:
            absmax = np.abs(flat).max(axis=1) * k / 20
            scale = (absmax / 7).astype(np.float32)[:, None]
            q = np.clip(np.rint(flat / scale), -8, 7) * scale
        else:
            cand = tf_encoding(weight.min() * k / 20, weight.max() * k / 20, 4)
            scale = np.float32(cand.scale)
            q = (np.clip(np.rint(flat / scale) - cand.offset, 0, 15) + cand.offset) * scale
        delta = q - flat
        cost = np.einsum("ck,kl,cl->c", delta, layer.gram[0], delta)
        cost = cost if per_channel else cost.sum(keepdims=True)
        better = cost < best_cost
        best_cost, best_scale = np.where(better, cost, best_cost), np.where(better, np.ravel(scale), best_scale)
    np.testing.assert_allclose(np.ravel(chosen.scale), best_scale, rtol=1e-6)


@pytest.mark.parametrize("quantizer", ["tf", "enhanced"])
def test_never_worse_than_the_plan_on_the_layer(quantizer: str) -> None:
    layer, weight = _conv_layer(3)
    rows = layer.to_rows(weight)
    enc = per_channel_encoding(weight, 0, 4, quantizer)

    def cost(e: Encoding) -> np.ndarray:
        levels = grid(e, layer)
        return row_losses(levels.values(levels.nearest(rows)) - rows, layer.gram)

    chosen = search_range(layer, rows, enc, 1e-4)
    assert np.all(cost(chosen) <= cost(enc)) and cost(chosen).sum() < cost(enc).sum()
    assert chosen.axis == 0 and chosen.symmetric


def test_end_to_end_and_a_pinned_encoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGELOOP_BUILD", str(tmp_path / "build"))
    model = conv_net()
    container, calib = make_container(model, tmp_path / "float.onnx"), make_input_list(model, tmp_path, 8)
    plain = quantize(container, calib, tmp_path / "plain.onnx", QuantizeOptions(
        weights_bitwidth=4, use_per_channel_quantization=True), cache=False)
    tuned = quantize(container, calib, tmp_path / "seq.onnx", QuantizeOptions(
        weights_bitwidth=4, use_per_channel_quantization=True, algorithms=("seqmse",)), cache=False)
    assert tuned.sqnr_db > plain.sqnr_db + 3  # 19.40 -> 27.68 dB on this seed
    pinned = {"name": "fc.weight", "enc_type": "PER_TENSOR", "dtype": "INT", "bw": 4, "is_sym": True,
              "scale": [0.1], "offset": [-8]}
    (tmp_path / "pin.json").write_text(json.dumps({"version": "1.0.0", "activation_encodings": [],
                                                   "param_encodings": [pinned]}))
    kept = quantize(container, calib, tmp_path / "pin.onnx", QuantizeOptions(
        weights_bitwidth=4, use_per_channel_quantization=True, algorithms=("seqmse",),
        override_params=tmp_path / "pin.json"), cache=False)
    params = {e["name"]: e for e in kept.meta.encodings["param_encodings"]}
    assert params["fc.weight"]["scale"] == [0.1]
    tuned_params = {e["name"]: e for e in tuned.meta.encodings["param_encodings"]}
    assert params["conv1.weight"] == tuned_params["conv1.weight"]

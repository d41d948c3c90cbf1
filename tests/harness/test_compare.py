"""Metrics checked against hand-derived values and an independent implementation (scikit-learn)."""

import math

import numpy as np
import pytest
from sklearn.metrics.pairwise import cosine_similarity

from harness.compare import Limits, default_limits, is_classifier, judge, measure


def test_sqnr_and_errors_match_hand_computation() -> None:
    ref = [np.ones((1, 100), np.float32)]
    dev = [np.full((1, 100), 1.1, np.float32)]
    m = measure(ref, dev)
    # signal 100, noise 100 * 0.01 = 1 -> 20 dB; relative L2 = sqrt(1)/sqrt(100)
    assert m.sqnr_db == pytest.approx(20.0, abs=1e-4)
    assert m.rel_l2 == pytest.approx(0.1, rel=1e-5)
    assert m.max_abs == pytest.approx(0.1, rel=1e-5)
    assert m.mean_abs == pytest.approx(0.1, rel=1e-5)
    assert m.cosine == pytest.approx(1.0)


def test_cosine_is_the_worst_inference_and_agrees_with_sklearn() -> None:
    rng = np.random.default_rng(0)
    ref = [rng.normal(size=(3, 4)) for _ in range(4)]
    dev = [r + rng.normal(scale=s, size=r.shape) for r, s in zip(ref, [0.01, 0.5, 0.02, 0.03], strict=True)]
    m = measure(ref, dev)
    peer = [cosine_similarity(r.reshape(1, -1), d.reshape(1, -1))[0, 0] for r, d in zip(ref, dev, strict=True)]
    assert m.cosine == pytest.approx(min(peer), abs=1e-12)
    assert m.cosine_mean == pytest.approx(np.mean(peer), abs=1e-12)
    assert m.inferences == 4


def test_identical_outputs_have_infinite_sqnr_serialised_as_null() -> None:
    ref = [np.arange(6, dtype=np.float32)]
    m = measure(ref, [ref[0].copy()])
    assert math.isinf(m.sqnr_db) and m.to_json()["sqnr_db"] is None
    assert judge(m, default_limits("cpu")).passed


def test_orthogonal_and_zero_vectors() -> None:
    assert measure([np.array([1.0, 0.0])], [np.array([0.0, 1.0])]).cosine == pytest.approx(0.0)
    assert measure([np.zeros(3)], [np.zeros(3)]).cosine == 1.0
    assert measure([np.zeros(3)], [np.ones(3)]).cosine == 0.0


def test_top_k_and_accuracy_for_classifiers() -> None:
    ref = [np.array([[0.1, 0.7, 0.2]]), np.array([[0.5, 0.3, 0.2]]), np.array([[0.2, 0.2, 0.6]])]
    dev = [np.array([[0.1, 0.6, 0.3]]), np.array([[0.3, 0.5, 0.2]]), np.array([[0.2, 0.1, 0.7]])]
    m = measure(ref, dev, labels=[1, 0, 0])
    assert m.top1_agreement == pytest.approx(2 / 3)
    assert m.top5_agreement == 1.0  # three classes: every class is in the top 5
    assert m.top1_accuracy == pytest.approx(1 / 3)  # device argmax 1, 1, 2 vs labels 1, 0, 0
    assert m.reference_top1_accuracy == pytest.approx(2 / 3)


def test_non_classifier_has_no_top_k() -> None:
    assert not is_classifier((1, 3, 8, 8)) and is_classifier((1, 10)) and not is_classifier((1, 1))
    m = measure([np.ones((1, 3, 8, 8))], [np.ones((1, 3, 8, 8))])
    assert m.top1_agreement is None


def test_defaults_follow_spec_and_judge_names_each_failure() -> None:
    assert default_limits("cpu").min_cosine == 0.999
    assert default_limits("gpu_fp16").min_cosine == 0.995
    assert default_limits("aip").min_cosine == 0.98
    m = measure([np.array([1.0, 0.0])], [np.array([1.0, 0.2])])
    verdict = judge(m, Limits(min_cosine=0.999, min_sqnr_db=30.0, max_abs=0.1))
    assert not verdict.passed and len(verdict.reasons) == 3
    assert verdict.reasons[0].startswith("cosine")
    assert judge(m, Limits(min_cosine=0.9)).passed


def test_nan_never_passes() -> None:
    m = measure([np.array([1.0, 2.0])], [np.array([np.nan, 2.0])])
    assert not judge(m, Limits(min_cosine=0.0)).passed


def test_mismatched_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="same, non-zero number"):
        measure([np.ones(2)], [])
    with pytest.raises(ValueError, match="shape mismatch"):
        measure([np.ones(2)], [np.ones(3)])


def test_error_histogram_counts_every_element() -> None:
    from harness.compare import error_histogram

    ref = [np.zeros(10), np.zeros(10)]
    dev = [np.linspace(0, 1, 10), np.zeros(10)]
    hist = error_histogram(ref, dev, bins=4)
    assert sum(hist["counts"]) == 20 and len(hist["edges"]) == 5
    assert hist["edges"][-1] == 1.0 and hist["counts"][0] >= 10

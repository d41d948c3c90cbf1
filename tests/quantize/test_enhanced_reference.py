"""Pins `enhanced_encoding` (and the calibration histogram feeding it) to a slow loop version of
the same math, written from docs/quantization.md "enhanced" and docs/spec.md §5, so speed work on the fast
code cannot change a result."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deploy.quantize.calibrate import TensorStats
from deploy.quantize.encodings import Encoding, enhanced_encoding, histogram_of, per_channel_encoding


def _tf_range(mn: float, mx: float, levels: int, min_range: float) -> tuple[float, int]:
    """docs/spec.md §5 steps 1-2 for one tensor: (scale, offset)."""
    mn, mx = min(mn, 0.0), max(mx, 0.0)
    mx = max(mx, mn + min_range)
    scale = (mx - mn) / levels
    return scale, -int(min(max(round(-mn / scale), 0), levels))


def _cost(centres: list[float], counts: list[float], delta: float, offset: float, levels: int) -> float:
    total = 0.0
    for c, n in zip(centres, counts, strict=True):
        q = round(c / delta) - offset
        weight = 3.0 if q < 0 or q > levels else 1.0
        back = (min(max(q, 0), levels) + offset) * delta
        total += (back - c) ** 2 * n * weight
    return total


def _reference(counts: np.ndarray, lo: float, hi: float, obs_min: float, obs_max: float, bw: int,
               min_range: float = 1e-4, symmetric: bool = False) -> tuple[float, int]:
    """(scale, offset) of the cheapest candidate, one candidate and one bin at a time."""
    levels = (1 << bw) - 1
    scale, offset = _tf_range(obs_min, obs_max, levels, min_range)
    enc_min, enc_max = offset * scale, offset * scale + levels * scale
    width = (hi - lo) / len(counts)
    centres = [lo + width * (i + 0.5) for i in range(len(counts)) if counts[i] > 0]
    weights = [float(n) for n in counts if n > 0]
    candidates = []
    if symmetric:
        half = 1 << (bw - 1)
        for k in range(1, 18):
            candidates.append((max(abs(enc_min), abs(enc_max), min_range / 2) / (half - 1) * k / 16, -half))
    else:
        grid = [float(round(-levels + levels * j / 20)) for j in range(21)] + [float(offset)]
        for k in range(1, 18):
            d = scale * k / 16
            for o in grid:
                cmin = max(d * o, enc_min)
                cmax = min(cmin + levels * d, enc_max)
                delta = max((cmax - cmin) / levels, min_range / levels)
                candidates.append((delta, round(cmin / delta)))
    best = None
    for delta, o in candidates:
        cost = _cost(centres, weights, delta, o, levels)
        if best is None or cost < best[0]:
            best = (cost, delta, o)
    _, delta, o = best
    if symmetric:
        half = 1 << (bw - 1)
        return max(delta * (half - 1), min_range / 2) / (half - 1), -half
    return _tf_range(o * delta, o * delta + levels * delta, levels, min_range)


def _distributions() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20261122)
    return {
        "long_tailed": rng.standard_t(2, 5000),
        "one_sided": rng.exponential(2.0, 4000),
        "negative": -rng.gamma(2.0, 0.5, 3000),
        "constant": np.full(500, 0.75),
        "tiny_range": 1e-6 * rng.normal(size=800),
        "bimodal": np.concatenate([rng.normal(-3, 0.2, 1000), rng.normal(5, 1.0, 300)]),
    }


def _assert_same(enc: Encoding, scale: float, offset: int) -> None:
    assert float(enc.scale) == pytest.approx(scale, rel=1e-12, abs=1e-18)
    assert int(enc.offset) == offset
    assert float(enc.min) == pytest.approx(offset * scale, rel=1e-12, abs=1e-18)


@pytest.mark.parametrize("bw", [8, 4])
@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("name", list(_distributions()))
def test_enhanced_equals_slow_reference_on_static_values(name: str, symmetric: bool, bw: int) -> None:
    values = _distributions()[name]
    counts, lo, hi = histogram_of(values)
    fast = enhanced_encoding(counts, lo, hi, lo, hi, bw, symmetric=symmetric)
    _assert_same(fast, *_reference(counts, lo, hi, lo, hi, bw, symmetric=symmetric))


def _reference_histogram(batches: list[np.ndarray]) -> tuple[np.ndarray, float, float]:
    """Docs: the first batch's range widened 3x about its centre; a later value outside it re-bins
    (each old bin's count moves to the new bin holding its centre). Bin index math in float32."""
    counts: list[int] = []
    lo = hi = 0.0
    for batch in batches:
        b_min, b_max = float(batch.min()), float(batch.max())
        if not counts:
            centre = (b_min + b_max) / 2
            half = max(b_max - b_min, abs(centre) * 1e-3, 1e-6) * 3.0 / 2
            lo, hi, counts = centre - half, centre + half, [0] * 512
        elif b_min < lo or b_max > hi:
            new_lo, new_hi = min(lo, b_min), max(hi, b_max)
            moved = [0] * 512
            for i, n in enumerate(counts):
                centre = lo + (hi - lo) / 512 * (i + 0.5)
                moved[min(max(int((centre - new_lo) / (new_hi - new_lo) * 512), 0), 511)] += n
            lo, hi, counts = new_lo, new_hi, moved
        for x in batch.ravel():
            index = (np.float32(x) - np.float32(lo)) * np.float32(512 / (hi - lo))
            counts[min(max(int(index), 0), 511)] += 1
    return np.asarray(counts), lo, hi


@pytest.mark.parametrize("name", list(_distributions()))
def test_calibration_histogram_and_encoding_equal_slow_reference(name: str) -> None:
    """Streamed batches, growing so later ones re-bin."""
    values = _distributions()[name]
    batches = [batch.astype(np.float32) * (1 + i / 4) for i, batch in enumerate(np.array_split(values, 7))]
    stats = TensorStats(histogram=True)
    for batch in batches:
        stats.update(batch)
    counts, lo, hi = _reference_histogram(batches)
    assert (stats.lo, stats.hi) == (lo, hi)
    assert np.array_equal(stats.counts, counts)
    fast = enhanced_encoding(stats.counts, stats.lo, stats.hi, stats.min, stats.max, 8)
    _assert_same(fast, *_reference(counts, lo, hi, stats.min, stats.max, 8))


@pytest.mark.parametrize("name", list(_distributions()))
def test_calibration_folded_in_groups_equals_one_by_one(name: str) -> None:
    """Calibration folds inputs in a few at a time (`update_many`); groups of 1, 3 and 4 inputs,
    re-binning inside a group, must give the slow reference's histogram and min/max exactly."""
    values = _distributions()[name]
    batches = [batch.astype(np.float32) * (1 + i / 4) for i, batch in enumerate(np.array_split(values, 8))]
    stats = TensorStats(histogram=True)
    for group in (batches[:1], batches[1:4], batches[4:]):
        stats.update_many(group)
    counts, lo, hi = _reference_histogram(batches)
    assert (stats.lo, stats.hi) == (lo, hi)
    assert np.array_equal(stats.counts, counts)
    assert (stats.min, stats.max) == (min(float(b.min()) for b in batches), max(float(b.max()) for b in batches))


def test_non_finite_values_are_left_out_alike_in_groups() -> None:
    batches = [np.array([1.0, 2.0], np.float32), np.array([-np.inf, 0.5, 4.0], np.float32),
               np.array([np.nan, 3.0], np.float32)]
    one, grouped = TensorStats(histogram=True), TensorStats(histogram=True)
    for batch in batches:
        one.update(batch)
    grouped.update_many(batches)
    assert (grouped.min, grouped.max) == (one.min, one.max) == (0.5, 4.0)
    assert (grouped.lo, grouped.hi) == (one.lo, one.hi)
    assert np.array_equal(grouped.counts, one.counts)
    assert grouped.counts.sum() == 5


_ODD_INPUTS = {
    "int64, widening": [np.array([1, 5, 3]), np.array([-7, 2]), np.array([2**60 + 1])],
    "uint8": [np.array([1, 5, 3], np.uint8), np.array([200, 2], np.uint8)],
    "bool": [np.array([True, True]), np.array([False])],
    "0-d": [np.array(1.5, np.float32), np.array(-2.0, np.float32), np.array(7.0, np.float32)],
    "empty between": [np.zeros(0, np.float32), np.array([1.0], np.float32), np.zeros((0, 3), np.float32),
                      np.array([3.0, -1.0], np.float32)],
    "range near float32's limit": [np.array([1e35, -1e35], np.float32), np.array([3e38, 0.0], np.float32)],
}


@pytest.mark.parametrize("histogram", [True, False])
@pytest.mark.parametrize("name", list(_ODD_INPUTS))
def test_update_many_equals_one_by_one_on_odd_inputs(name: str, histogram: bool) -> None:
    """Whatever calibration hands it, `update_many` keeps what `update` would: min/max as Python
    floats of the same value (an int64 beyond 2**53 rounds alike), the same range and counts."""
    xs = _ODD_INPUTS[name]
    one, grouped = TensorStats(histogram=histogram), TensorStats(histogram=histogram)
    for x in xs:
        one.update(x)
    grouped.update_many(xs)
    assert (type(grouped.min), type(grouped.max)) == (float, float)
    finite = [float(v) for x in xs for v in x.ravel()]
    assert (grouped.min, grouped.max) == (one.min, one.max) == (min(finite), max(finite))
    assert (grouped.lo, grouped.hi) == (one.lo, one.hi)
    assert (grouped.counts is None) == (one.counts is None) == (not histogram)
    if histogram:
        assert np.array_equal(grouped.counts, one.counts)
        assert grouped.counts.sum() == len(finite)


def test_first_batch_range_is_widened_three_times_about_its_centre() -> None:
    stats = TensorStats(histogram=True)
    stats.update(np.array([1.0, 3.0], dtype=np.float32))
    assert (stats.lo, stats.hi) == (pytest.approx(-1.0), pytest.approx(5.0))
    counts = np.zeros(512, dtype=np.int64)
    for x in (1.0, 3.0):
        counts[min(math.floor((x - stats.lo) / (stats.hi - stats.lo) * 512), 511)] += 1
    assert np.array_equal(stats.counts, counts)


def test_per_channel_enhanced_equals_slow_reference() -> None:
    weights = np.random.default_rng(7).standard_t(3, (4, 3, 3, 3))
    enc = per_channel_encoding(weights, 0, 8, "enhanced")
    for channel in range(4):
        counts, lo, hi = histogram_of(weights[channel].ravel())
        scale, _ = _reference(counts, lo, hi, lo, hi, 8, symmetric=True)
        assert float(enc.scale[channel]) == pytest.approx(scale, rel=1e-12)
    assert np.all(enc.offset == -128)

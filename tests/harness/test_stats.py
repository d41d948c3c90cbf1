"""harness.stats against values from the literature, by hand and by brute-force enumeration."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from harness import stats
from harness.stats import mann_whitney_greater, smallest_p


def _enumerated_p(base: list[float], new: list[float]) -> float:
    """P(U >= observed) over every way of splitting the pooled values, U counted pair by pair (ties 1/2)."""
    def u(b: tuple[float, ...], n: tuple[float, ...]) -> float:
        return sum(1.0 if y > x else 0.5 if y == x else 0.0 for x in b for y in n)

    pooled = [*base, *new]
    observed = u(tuple(base), tuple(new))
    splits = list(itertools.combinations(range(len(pooled)), len(new)))
    larger = sum(u(tuple(v for i, v in enumerate(pooled) if i not in chosen), tuple(pooled[i] for i in chosen))
                 >= observed - 1e-9 for chosen in splits)
    return larger / len(splits)


def test_conovers_diabetes_example() -> None:
    """Conover, Practical Nonparametric Statistics: ages at diagnosis, males [19, 22, 16, 29, 24] vs females
    [20, 11, 17, 12]: U = 17, exact two-sided p = 0.1111 (14 of the 126 splits as extreme), one-sided 7/126."""
    test = mann_whitney_greater([20, 11, 17, 12], [19, 22, 16, 29, 24])
    assert test.u == 17 and test.exact
    assert test.p == pytest.approx(7 / 126, abs=1e-12)


def test_normal_approximation_by_hand(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same data through the normal approximation: mean U = 5*4/2 = 10, variance 5*4*10/12, continuity
    correction 0.5: z = 6.5 / 4.0825 = 1.5922, upper tail 0.05567 (half the 0.11135 two-sided figure)."""
    monkeypatch.setattr(stats, "EXACT_MAX", 0)
    test = mann_whitney_greater([20, 11, 17, 12], [19, 22, 16, 29, 24])
    z = (17 - 10 - 0.5) / math.sqrt(5 * 4 * 10 / 12)
    assert not test.exact and test.p == pytest.approx(0.5 * math.erfc(z / math.sqrt(2)), rel=1e-12)
    assert test.p == pytest.approx(0.05567, abs=1e-5)


def test_no_overlap_reaches_the_smallest_p() -> None:
    assert mann_whitney_greater([1, 2, 3], [4, 5, 6]).p == pytest.approx(1 / 20) == smallest_p(3, 3)
    assert mann_whitney_greater([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]).p == pytest.approx(1 / 252)
    assert smallest_p(4, 4) > 0.01 >= smallest_p(5, 5)  # why a verdict at alpha 0.01 needs 5 runs a side
    assert mann_whitney_greater([4, 5, 6], [1, 2, 3]).p == pytest.approx(1.0)  # the other way: nothing


@pytest.mark.parametrize(("base", "new"), [
    ([1.0, 2.0, 2.0, 3.0], [2.0, 3.0, 3.0, 4.0, 5.0]),  # ties across the samples
    ([5.0, 5.0, 5.0], [5.0, 5.0, 6.0]),  # mostly one value
    ([0.3, 0.1, 0.7, 0.2, 0.9], [0.4, 0.8, 0.05, 0.6]),  # no ties, new not larger
])
def test_exact_p_matches_enumeration(base: list[float], new: list[float]) -> None:
    assert mann_whitney_greater(base, new).p == pytest.approx(_enumerated_p(base, new), abs=1e-12)


def test_approximation_is_close_to_exact_where_they_meet(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    base, new = rng.normal(10, 1, 25), rng.normal(10.6, 1, 25)
    exact = mann_whitney_greater(base, new)
    monkeypatch.setattr(stats, "EXACT_MAX", 0)
    approx = mann_whitney_greater(base, new)
    assert exact.exact and not approx.exact and abs(exact.p - approx.p) < 0.005


def test_identical_values_say_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    assert mann_whitney_greater([2.0] * 4, [2.0] * 4).p == pytest.approx(1.0)
    monkeypatch.setattr(stats, "EXACT_MAX", 0)
    assert mann_whitney_greater([2.0] * 40, [2.0] * 40).p == 1.0
    with pytest.raises(ValueError):
        mann_whitney_greater([], [1.0])

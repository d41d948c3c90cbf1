"""Small statistics for latency verdicts, in numpy alone (scipy is not a dependency).

The one-sided Mann-Whitney U test asks whether one sample's values tend to be larger than another's
without assuming a distribution: latencies are skewed, and a busy host adds a long tail. Its p-value
is exact (the count of rank arrangements, ties included) for the small samples a deploy makes, and
the normal approximation with continuity and tie correction past that.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

EXACT_MAX = 60  # pooled samples up to which the p-value is counted exactly (within ~20 ms)


@dataclass(frozen=True)
class UTest:
    u: float  # pairs (b, n) with n > b, ties counting one half
    p: float  # one-sided: the chance of a U this large or larger if neither sample tends to be larger
    exact: bool


def _midranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of their ranks."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(values.size)
    ranks[order] = np.arange(1, values.size + 1)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return (sums / counts)[inverse]


def _exact_upper_tail(doubled_ranks: np.ndarray, n: int, observed: int) -> float:
    """P(sum of n of the doubled ranks, drawn without replacement, >= observed): ways[k, s] counts
    the k-subsets of the ranks seen so far whose doubled ranks sum to s."""
    top = int(doubled_ranks.sum())
    ways = np.zeros((n + 1, top + 1))
    ways[0, 0] = 1.0
    for r in doubled_ranks.astype(int):
        ways[1:, r:] = ways[1:, r:] + ways[:-1, : top + 1 - r]
    return float(ways[n, observed:].sum() / ways[n].sum())


def mann_whitney_greater(base: Sequence[float], new: Sequence[float]) -> UTest:
    """Test whether `new` tends to be larger than `base` (one-sided Mann-Whitney U)."""
    b, x = np.asarray(base, dtype=np.float64), np.asarray(new, dtype=np.float64)
    if not b.size or not x.size:
        raise ValueError("both samples need at least one value")
    pooled = np.concatenate([b, x])
    ranks = _midranks(pooled)
    rank_sum = float(ranks[b.size:].sum())
    u = rank_sum - x.size * (x.size + 1) / 2
    if pooled.size <= EXACT_MAX:
        doubled = np.rint(2 * ranks)  # midranks are halves: doubled, they are whole numbers
        return UTest(u, _exact_upper_tail(doubled, x.size, round(2 * rank_sum)), True)
    n1, n2, total = b.size, x.size, pooled.size
    _, counts = np.unique(pooled, return_counts=True)
    variance = n1 * n2 / 12 * (total + 1 - float((counts**3 - counts).sum()) / (total * (total - 1)))
    if variance <= 0:  # every value the same: nothing tends to be larger
        return UTest(u, 1.0, False)
    z = (u - n1 * n2 / 2 - 0.5) / math.sqrt(variance)
    return UTest(u, 0.5 * math.erfc(z / math.sqrt(2)), False)


def smallest_p(n_base: int, n_new: int) -> float:
    """The smallest one-sided p-value samples of these sizes can reach (no overlap at all): below the
    significance level, or the test cannot decide whatever the values."""
    return 1.0 / math.comb(n_base + n_new, n_new)

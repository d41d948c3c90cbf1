"""Streaming calibration: one inference at a time, keeping only running min/max and histograms.

Memory is bounded by the activations held back (less than BATCH_BYTES plus one inference's), the
working copies of one tensor's share of them while they are folded in, and 512 bins per tensor,
whatever the length of the input list. Histograms follow AIMET: the first
input's range widened 3x about its centre; a later input with a value outside the range re-bins
the histogram over the wider range. Inputs are folded in a few at a time (`update_many`), with
exactly the result of folding them in one by one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import onnx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from deploy.quantize.encodings import ENHANCED_BINS
from deploy.quantize.runner import expose, session

WIDEN = 3.0


@dataclass
class TensorStats:
    min: float = np.inf
    max: float = -np.inf
    counts: np.ndarray | None = None
    lo: float = 0.0
    hi: float = 0.0
    histogram: bool = field(default=False, repr=False)

    def update(self, x: np.ndarray) -> None:
        if x.size == 0:
            return
        x_min, x_max = float(x.min()), float(x.max())
        if not (math.isfinite(x_min) and math.isfinite(x_max)):  # +-inf (e.g. masks): encode the finite part
            x = x[np.isfinite(x)]
            if x.size == 0:
                return
            x_min, x_max = float(x.min()), float(x.max())
        self.min, self.max = min(self.min, x_min), max(self.max, x_max)
        if not self.histogram:
            return
        if self.counts is None:
            self._start(x_min, x_max)
        elif x_min < self.lo or x_max > self.hi:
            self._rebin(min(self.lo, x_min), max(self.hi, x_max))
        self.counts += _bin_counts(x, self.lo, self.hi)

    def update_many(self, xs: list[np.ndarray]) -> None:
        """`update` with each of `xs` in turn, in a fixed number of numpy calls instead of a few per
        input: per-input min/max by one reduceat each, then the inputs between two re-bins are
        binned together (bin counts add up, and each value's bin index is computed alike)."""
        xs = [x for x in xs if x.size]
        if len(xs) < 2:
            for x in xs:
                self.update(x)
            return
        flat = np.concatenate([x.ravel() for x in xs])
        starts = np.cumsum([0] + [x.size for x in xs])
        # As Python floats, as `update` keeps them (int and bool tensors would give ints and bools).
        mins = np.minimum.reduceat(flat, starts[:-1]).astype(np.float64).tolist()
        maxs = np.maximum.reduceat(flat, starts[:-1]).astype(np.float64).tolist()
        if not all(map(math.isfinite, mins + maxs)):  # rare: filter each input the slow way
            for x in xs:
                self.update(x)
            return
        self.min, self.max = min(self.min, *mins), max(self.max, *maxs)
        if not self.histogram:
            return
        first = 0  # the first input not binned yet
        for i, (x_min, x_max) in enumerate(zip(mins, maxs, strict=True)):
            if self.counts is None:
                self._start(x_min, x_max)
            elif x_min < self.lo or x_max > self.hi:
                if i > first:
                    self.counts += _bin_counts(flat[starts[first]:starts[i]], self.lo, self.hi)
                    first = i
                self._rebin(min(self.lo, x_min), max(self.hi, x_max))
        self.counts += _bin_counts(flat[starts[first]:], self.lo, self.hi)

    def _start(self, x_min: float, x_max: float) -> None:
        centre = (x_min + x_max) / 2
        half = max(x_max - x_min, abs(centre) * 1e-3, 1e-6) * WIDEN / 2
        self.lo, self.hi = centre - half, centre + half
        self.counts = np.zeros(ENHANCED_BINS, dtype=np.int64)

    def _rebin(self, lo: float, hi: float) -> None:
        """Move every old bin's count to the new bin holding its centre."""
        width = (self.hi - self.lo) / ENHANCED_BINS
        centres = self.lo + width * (np.arange(ENHANCED_BINS) + 0.5)
        index = np.clip(((centres - lo) / (hi - lo) * ENHANCED_BINS).astype(np.int64), 0, ENHANCED_BINS - 1)
        counts = np.zeros(ENHANCED_BINS, dtype=np.int64)
        np.add.at(counts, index, self.counts)
        self.counts, self.lo, self.hi = counts, lo, hi


def _bin_counts(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Counts of `x` in ENHANCED_BINS equal bins over [lo, hi]. One bincount over in-place float32
    index math is several times faster than np.histogram; float64 only where float32 could overflow."""
    dtype = np.float32 if max(abs(lo), abs(hi)) < 1e30 else np.float64
    index = np.subtract(x, dtype(lo), dtype=dtype).ravel()
    index *= dtype(ENHANCED_BINS / (hi - lo))
    np.maximum(index, 0, out=index)  # np.clip's Python wrapper costs more than the work on small tensors
    np.minimum(index, ENHANCED_BINS - 1, out=index)
    return np.bincount(index.astype(np.intp), minlength=ENHANCED_BINS)


def progress(label: str) -> Progress:
    """The progress bar every long quantizer loop shows (on stderr, so stdout stays parseable)."""
    console = Console(stderr=True)
    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=console, transient=True, disable=not console.is_terminal)


@dataclass
class Calibration:
    stats: dict[str, TensorStats]
    # The feeds and the float model's values of `keep` for each, kept while together they fit
    # OUTPUT_BUDGET (else None): the final SQNR pass then need neither read the raw files again
    # nor run the float model.
    kept: list[list[np.ndarray]] | None
    kept_feeds: list[dict[str, np.ndarray]] | None = None


OUTPUT_BUDGET = 64 << 20
BATCH_BYTES = 2 << 20  # activations held back for one `update_many`: a few MiB, whatever the list's length


def calibrate(model: onnx.ModelProto, tensors: list[str], feeds: Iterable[dict[str, np.ndarray]], total: int,
              histograms: bool, keep: list[str] | None = None) -> Calibration:
    """Run the float model over every feed and return statistics for each named tensor."""
    keep = keep or []
    names = list(dict.fromkeys([*tensors, *keep]))
    sess = session(expose(model, names))
    stats = {name: TensorStats(histogram=histograms) for name in tensors}
    kept: list[list[np.ndarray]] | None = []
    kept_feeds: list[dict[str, np.ndarray]] = []
    kept_bytes = pending_bytes = 0
    pending: dict[str, list[np.ndarray]] = {name: [] for name in tensors}
    with progress("calibrating") as bar:
        task = bar.add_task("calibrating", total=total)
        for feed in feeds:
            values = dict(zip(names, sess.run(names, feed), strict=True))
            for name in tensors:
                pending[name].append(values[name])
                pending_bytes += values[name].nbytes
            if pending_bytes >= BATCH_BYTES:
                _flush(stats, pending)
                pending_bytes = 0
            if kept is not None and keep:
                kept.append([values[name] for name in keep])
                kept_feeds.append(feed)
                kept_bytes += sum(v.nbytes for v in kept[-1]) + sum(v.nbytes for v in feed.values())
                if kept_bytes > OUTPUT_BUDGET:  # over budget: let go of everything kept so far
                    kept = None
                    kept_feeds.clear()
            bar.advance(task)
    _flush(stats, pending)
    if not keep or kept is None:
        return Calibration(stats, None)
    return Calibration(stats, kept, kept_feeds)


def _flush(stats: dict[str, TensorStats], pending: dict[str, list[np.ndarray]]) -> None:
    for name, values in pending.items():
        stats[name].update_many(values)
        values.clear()

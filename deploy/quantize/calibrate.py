"""Streaming calibration: running min/max and histograms of every activation over the input list.

Memory is bounded by the activations held back (less than BATCH_BYTES plus one onnxruntime call's),
the working copies of one tensor's share of them while they are folded in, and 512 bins per tensor,
whatever the length of the input list. Small models run several inputs per onnxruntime call
(`run_batched`, only where that gives the same values bit for bit). Histograms follow AIMET: the
first input's range widened 3x about its centre; a later input with a value outside the range
re-bins the histogram over the wider range. Inputs are folded in a few at a time (`update_rows`),
with exactly the result of folding them in one by one.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import IO

import numpy as np
import onnx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from deploy.quantize.encodings import ENHANCED_BINS
from deploy.quantize.runner import expose, per_feed, run_batched

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
        """Fold in the values of one input."""
        self.update_many([x])

    def update_many(self, xs: list[np.ndarray]) -> None:
        """`update` with each of `xs` in turn, in a fixed number of numpy calls instead of a few per input."""
        self.update_rows([x.reshape(1, x.size) for x in xs])

    def update_rows(self, blocks: list[np.ndarray]) -> None:
        """Fold in every row of each 2-D block as one input, in order. Blocks of one width are joined
        and folded together; other widths (data-dependent shapes) one block at a time."""
        blocks = [b for b in blocks if b.size]
        if len({b.shape[1] for b in blocks}) > 1:
            for block in blocks:
                self._fold(block)
        elif blocks:
            self._fold(blocks[0] if len(blocks) == 1 else np.concatenate(blocks))

    def _fold(self, rows: np.ndarray) -> None:
        """Per-row min/max by one reduction each, then the rows between two re-bins binned together
        (bin counts add up, and each value's bin index is computed alike)."""
        # As Python floats, as a single input's would be (int and bool tensors would give ints and bools).
        mins = rows.min(axis=1).astype(np.float64).tolist()
        maxs = rows.max(axis=1).astype(np.float64).tolist()
        if not all(map(math.isfinite, mins + maxs)):  # +-inf (e.g. masks), NaN: encode the finite part
            for row in rows:
                finite = row[np.isfinite(row)]
                if finite.size:
                    self._fold(finite.reshape(1, finite.size))
            return
        self.min, self.max = min(self.min, *mins), max(self.max, *maxs)
        if not self.histogram:
            return
        first = 0  # the first row not binned yet
        for i, (x_min, x_max) in enumerate(zip(mins, maxs, strict=True)):
            if self.counts is None:
                self._start(x_min, x_max)
            elif x_min < self.lo or x_max > self.hi:
                if i > first:
                    self.counts += _bin_counts(rows[first:i], self.lo, self.hi)
                    first = i
                self._rebin(min(self.lo, x_min), max(self.hi, x_max))
        self.counts += _bin_counts(rows[first:], self.lo, self.hi)

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


CHUNK = 1 << 18  # values binned per pass: the index buffers stay in the CPU cache


def _bin_counts(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Counts of `x` in ENHANCED_BINS equal bins over [lo, hi], which holds every value of `x`.

    Index math in float32 (float64 only where float32 could overflow), truncated to an integer by
    the multiply's output cast, then one bincount, chunk by chunk: on tensors of millions of values
    this is 3-4x faster than whole-array passes, which spill the cache at every step. An index is
    never negative (x >= lo, and rounding is monotonic); x == hi gives ENHANCED_BINS, which joins
    the last bin (the clip of a slow reference, tests/quantize/test_enhanced_reference.py)."""
    dtype = np.float32 if max(abs(lo), abs(hi)) < 1e30 else np.float64
    flat = x.reshape(-1)
    low, scale = dtype(lo), dtype(ENHANCED_BINS / (hi - lo))
    shifted = np.empty(min(CHUNK, flat.size), dtype)
    index = np.empty(shifted.size, np.intp)
    counts = np.zeros(ENHANCED_BINS + 1, dtype=np.int64)
    for start in range(0, flat.size, CHUNK):
        part = flat[start:start + CHUNK]
        f, i = shifted[:part.size], index[:part.size]
        np.subtract(part, low, out=f, dtype=dtype)
        np.multiply(f, scale, out=i, casting="unsafe")
        found = np.bincount(i, minlength=ENHANCED_BINS + 1)
        counts[:ENHANCED_BINS] += found[:ENHANCED_BINS]
        counts[ENHANCED_BINS] += found[ENHANCED_BINS:].sum()
    counts[ENHANCED_BINS - 1] += counts[ENHANCED_BINS]
    return counts[:ENHANCED_BINS]


def progress(label: str) -> Progress:
    """The progress bar every long quantizer loop shows (on stderr, so stdout stays parseable)."""
    console = Console(stderr=True)
    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=console, transient=True, disable=not console.is_terminal)


class Kept:
    """The float model's values of some tensors for every calibration input, in order: in memory
    while they fit OUTPUT_BUDGET, the rest in a temporary file, so that the final SQNR pass never
    runs the float model again and memory stays bounded whatever the length of the input list."""

    def __init__(self) -> None:
        self.memory: list[list[np.ndarray]] = []
        self.bytes = 0
        self.file: IO[bytes] | None = None  # unlinked at creation: nothing to clean up
        self.spilled: list[list[tuple[tuple[int, ...], np.dtype]]] = []

    def add(self, values: list[np.ndarray]) -> None:
        size = sum(v.nbytes for v in values)
        if self.file is None and self.bytes + size <= OUTPUT_BUDGET:
            self.memory.append(values)
            self.bytes += size
            return
        if self.file is None:
            self.file = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the store; closed when collected)
        for value in values:
            np.ascontiguousarray(value).tofile(self.file)
        self.spilled.append([(v.shape, v.dtype) for v in values])

    def __len__(self) -> int:
        return len(self.memory) + len(self.spilled)

    def __iter__(self) -> Iterator[list[np.ndarray]]:
        yield from self.memory
        if self.file is not None:
            self.file.seek(0)
            for layout in self.spilled:
                yield [np.fromfile(self.file, dtype, math.prod(shape)).reshape(shape) for shape, dtype in layout]


@dataclass
class Calibration:
    stats: dict[str, TensorStats]
    kept: Kept | None  # the float model's values of `keep`, when asked for


OUTPUT_BUDGET = 64 << 20
# Activations held back for one `update_rows`, and about what one onnxruntime call computes: a few
# MiB, whatever the list's length.
BATCH_BYTES = 2 << 20


def calibrate(model: onnx.ModelProto, tensors: list[str], feeds: Iterable[dict[str, np.ndarray]], total: int,
              histograms: bool, keep: list[str] | None = None, keep_inputs: int | None = None) -> Calibration:
    """Run the float model over every feed and return statistics for each named tensor, and the
    values of `keep` (the outputs, for the final SQNR pass) for the first `keep_inputs` feeds (all
    when None)."""
    keep = keep or []
    names = list(dict.fromkeys([*tensors, *keep]))
    stats = {name: TensorStats(histogram=histograms) for name in tensors}
    kept = Kept() if keep else None
    keep_inputs = total if keep_inputs is None else keep_inputs
    pending: dict[str, list[np.ndarray]] = {name: [] for name in tensors}
    pending_bytes = 0
    with progress("calibrating") as bar:
        task = bar.add_task("calibrating", total=total)
        for count, values in run_batched(expose(model, names), names, feeds, BATCH_BYTES):
            by_name = dict(zip(names, values, strict=True))
            for name in tensors:
                value = by_name[name]
                pending[name].append(value.reshape(count, value.size // count))
                pending_bytes += value.nbytes
            if pending_bytes >= BATCH_BYTES:
                _flush(stats, pending)
                pending_bytes = 0
            if kept is not None:
                outputs = per_feed([(count, [by_name[name] for name in keep])])
                for one in islice(outputs, max(0, keep_inputs - len(kept))):
                    kept.add(one)
            bar.advance(task, count)
    _flush(stats, pending)
    return Calibration(stats, kept)


def _flush(stats: dict[str, TensorStats], pending: dict[str, list[np.ndarray]]) -> None:
    for name, blocks in pending.items():
        stats[name].update_rows(blocks)
        blocks.clear()

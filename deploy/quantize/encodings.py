"""Encodings math (docs/spec.md §5): tf min/max, symmetric, per-channel and AIMET's tf_enhanced search.

An encoding is SNPE's (scale, offset) pair: `q = clamp(round(x / scale) - offset, 0, N)` with
`offset <= 0`, so zero is always exact. ONNX stores the same integers with
`zero_point = -offset` (unsigned) or, for symmetric encodings, as signed integers with
zero_point 0 (docs/spec.md §7).

Rounding rule: half to even everywhere (numpy `rint`), which is what ONNX QuantizeLinear does.
A C++ `round` (half away from zero) would differ only on exact ties; picking ONNX's rule means
the integers we simulate are bit-for-bit the ones onnxruntime computes on the device side.
The division is done in float32 with the float32 scale the graph stores, for the same reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from deploy.errors import EdgeloopError

ENHANCED_BINS = 512
ENHANCED_DELTAS = 17  # 1/16 .. 17/16 of the observed delta
ENHANCED_OFFSETS = 21
SATURATION_WEIGHT = 3.0


@dataclass(frozen=True)
class Encoding:
    """One tensor's encoding; `scale`/`offset` are per channel along `axis` when it is set.

    `dtype` "float" marks a tensor kept in floating point (a float island, bw 16 or 32). An int
    encoding whose `scale` is None gives only a bitwidth (an override such as
    `{"bitwidth": 8, "dtype": "int"}`): its range comes from calibration.
    """

    bw: int
    scale: np.ndarray | None = None  # float64, shape () or (channels,)
    offset: np.ndarray | None = None  # int64, same shape, <= 0
    symmetric: bool = False
    axis: int | None = None
    dtype: str = "int"

    @property
    def is_float(self) -> bool:
        return self.dtype == "float"

    @property
    def resolved(self) -> bool:
        return self.is_float or self.scale is not None

    @property
    def levels(self) -> int:
        return (1 << self.bw) - 1

    @property
    def min(self) -> np.ndarray:
        return self.offset * self.scale

    @property
    def max(self) -> np.ndarray:
        return self.min + self.levels * self.scale

    @property
    def channels(self) -> int:
        return 1 if self.axis is None else int(np.size(self.scale))

    def storage_dtype(self) -> np.dtype:
        """Numpy dtype that holds the stored integers (4-bit values live in 8-bit containers)."""
        bits = 8 if self.bw <= 8 else self.bw
        return np.dtype(f"{'int' if self.symmetric else 'uint'}{bits}")

    def zero_point(self) -> np.ndarray:
        """ONNX zero_point: -offset for unsigned storage, 0 for symmetric (signed) storage."""
        zp = np.zeros_like(self.offset) if self.symmetric else -self.offset
        return zp.astype(self.storage_dtype())

    def qrange(self) -> tuple[int, int]:
        """Smallest and largest stored integer."""
        if self.symmetric:
            half = 1 << (self.bw - 1)
            return -half, half - 1
        return 0, self.levels

    def to_json(self) -> dict[str, Any]:
        """Summary for logs and reports (AIMET formats live in aimet.py)."""
        if self.is_float:
            return {"bw": self.bw, "dtype": "float"}
        return {"bw": self.bw, "symmetric": self.symmetric, "axis": self.axis,
                "scale": np.atleast_1d(self.scale).tolist(), "offset": np.atleast_1d(self.offset).tolist()}


def float_encoding(bw: int = 32) -> Encoding:
    if bw not in (16, 32):
        raise EdgeloopError(f"a float encoding needs bitwidth 16 or 32, got {bw}")
    return Encoding(bw=bw, dtype="float")


def tf_encoding(mn: float | np.ndarray, mx: float | np.ndarray, bw: int, min_range: float = 1e-4) -> Encoding:
    """docs/spec.md §5 steps 1-3: include zero, enforce the minimum range, snap the offset to an integer."""
    levels = (1 << bw) - 1
    mn = np.minimum(np.asarray(mn, dtype=np.float64), 0.0)
    mx = np.maximum(np.asarray(mx, dtype=np.float64), 0.0)
    mx = np.maximum(mx, mn + min_range)
    scale = (mx - mn) / levels
    offset = -np.clip(np.rint(-mn / scale), 0, levels).astype(np.int64)
    return Encoding(bw=bw, scale=scale, offset=offset)


def symmetric_encoding(absmax: float | np.ndarray, bw: int, min_range: float = 1e-4,
                       axis: int | None = None) -> Encoding:
    """delta = absmax / (2^(bw-1) - 1), offset = -2^(bw-1): stored as signed integers."""
    half = 1 << (bw - 1)
    absmax = np.maximum(np.asarray(absmax, dtype=np.float64), min_range / 2)
    scale = absmax / (half - 1)
    offset = np.full(scale.shape, -half, dtype=np.int64)
    return Encoding(bw=bw, scale=scale, offset=offset, symmetric=True, axis=axis)


def _broadcast(values: np.ndarray, enc: Encoding, ndim: int) -> np.ndarray:
    if enc.axis is None or values.ndim == 0:
        return values
    shape = [1] * ndim
    shape[enc.axis] = -1
    return values.reshape(shape)


def quantize_array(x: np.ndarray, enc: Encoding) -> np.ndarray:
    """Stored integers, exactly as ONNX QuantizeLinear computes them (float32 division, half to even)."""
    ftype = np.float32 if enc.bw <= 16 else np.float64  # int32 biases need the wider mantissa
    scale = _broadcast(enc.scale.astype(ftype), enc, x.ndim)
    zp = _broadcast(enc.zero_point().astype(np.int64), enc, x.ndim)
    lo, hi = enc.qrange()
    q = np.rint(np.asarray(x, dtype=ftype) / scale).astype(np.int64) + zp
    return np.clip(q, lo, hi).astype(enc.storage_dtype())


def dequantize_array(q: np.ndarray, enc: Encoding) -> np.ndarray:
    scale = _broadcast(enc.scale.astype(np.float32), enc, q.ndim)
    zp = _broadcast(enc.zero_point().astype(np.int64), enc, q.ndim)
    return ((q.astype(np.int64) - zp) * scale).astype(np.float32)


def fake_quantize(x: np.ndarray, enc: Encoding) -> np.ndarray:
    return x if enc.is_float else dequantize_array(quantize_array(x, enc), enc)


def pack_4bit(q: np.ndarray, axis: int | None = None) -> bytes:
    """SNPE's packed 4-bit layout: two values per byte, the first in the low nibble; with an
    `axis`, each channel starts on a byte boundary (ceil(n/2) bytes per channel)."""
    q = np.asarray(q)
    rows = [q.reshape(-1)] if axis is None else [np.take(q, i, axis=axis).reshape(-1) for i in range(q.shape[axis])]
    out = bytearray()
    for row in rows:
        nibbles = (row.astype(np.int64) & 0xF).astype(np.uint8)
        if nibbles.size % 2:
            nibbles = np.append(nibbles, np.uint8(0))
        out += (nibbles[0::2] | (nibbles[1::2] << 4)).tobytes()
    return bytes(out)


def enhanced_encoding(counts: np.ndarray, lo: float, hi: float, obs_min: float, obs_max: float, bw: int,
                      min_range: float = 1e-4, symmetric: bool = False) -> Encoding:
    """AIMET tf_enhanced: score a grid of candidate encodings against the histogram, keep the cheapest.

    Candidates: 17 deltas (1/16 .. 17/16 of the observed min/max delta) x 21 offsets spread over
    [-N, 0], plus the observed offset, each range clamped into the observed [min, max]; symmetric
    encodings search the 17 deltas only. Every bin stands for its count of values at its centre;
    the cost of a candidate is the squared quantize-dequantize error of those centres, weighted
    3.0 for centres outside the range (saturation) and 1.0 inside.
    """
    observed = tf_encoding(obs_min, obs_max, bw, min_range)
    levels = observed.levels
    obs_min, obs_max = float(observed.min), float(observed.max)
    counts = np.asarray(counts, dtype=np.float64)
    edges = np.linspace(lo, hi, counts.size + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    keep = counts > 0
    centres, counts = centres[keep], counts[keep]
    steps = np.arange(1, ENHANCED_DELTAS + 1) / (ENHANCED_DELTAS - 1)
    if symmetric:
        half = 1 << (bw - 1)
        deltas = max(abs(obs_min), abs(obs_max), min_range / 2) / (half - 1) * steps
        offsets = np.full_like(deltas, -half)
    else:
        grid_o = np.append(np.rint(np.linspace(-levels, 0, ENHANCED_OFFSETS)), float(observed.offset))
        d = (float(observed.scale) * steps)[:, None]  # deltas down, offsets across
        mins = np.maximum(d * grid_o, obs_min)
        maxs = np.minimum(mins + levels * d, obs_max)
        deltas = np.maximum((maxs - mins) / levels, min_range / levels).ravel()
        offsets = np.rint(mins.ravel() / deltas)
        deltas, offsets = _distinct(deltas, offsets)  # the symmetric deltas are distinct already
    best = int(np.argmin(_grid_cost(centres, counts, deltas, offsets, levels)))
    if symmetric:
        return symmetric_encoding(deltas[best] * ((1 << (bw - 1)) - 1), bw, min_range)
    mn = offsets[best] * deltas[best]
    return tf_encoding(mn, mn + levels * deltas[best], bw, min_range)


def _distinct(deltas: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The candidates without repeats (clamping makes many), in first-seen order, so the first
    cheapest is still the one `argmin` over the full grid would pick."""
    _, first = np.unique(deltas + 1j * offsets, return_index=True)  # a complex number per (delta, offset)
    first.sort()
    return deltas[first], offsets[first]


def _grid_cost(centres: np.ndarray, counts: np.ndarray, deltas: np.ndarray, offsets: np.ndarray,
               levels: int) -> np.ndarray:
    """Every candidate's cost at once, in one candidates x bins buffer updated in place: the same
    operations in the same order as the plain formula, so the costs are bit-identical."""
    d, o = deltas[:, None], offsets[:, None]
    buf = np.divide(centres[None, :], d)
    np.rint(buf, out=buf)
    buf -= o
    outside = buf < 0
    outside |= buf > levels
    np.clip(buf, 0, levels, out=buf)
    buf += o
    buf *= d
    buf -= centres
    buf *= buf
    buf *= counts
    np.multiply(buf, SATURATION_WEIGHT, out=buf, where=outside)
    return buf.sum(axis=1)


def histogram_of(values: np.ndarray, bins: int = ENHANCED_BINS) -> tuple[np.ndarray, float, float]:
    """Histogram over a static tensor's exact range (weights need no widening: all values are known)."""
    lo, hi = float(values.min()), float(values.max())
    hi = max(hi, lo + max(abs(lo), 1.0) * 1e-3)  # a constant still gets finite bins
    counts, _ = np.histogram(values, bins=bins, range=(lo, hi))
    return counts, lo, hi


def encoding_for_values(values: np.ndarray, bw: int, quantizer: str, min_range: float = 1e-4) -> Encoding:
    """Per-tensor encoding of a static tensor (weights, 8-bit biases) for one quantizer."""
    if quantizer == "symmetric":
        return symmetric_encoding(float(np.abs(values).max(initial=0.0)), bw, min_range)
    if quantizer == "enhanced":
        counts, lo, hi = histogram_of(values)
        return enhanced_encoding(counts, lo, hi, lo, hi, bw, min_range)
    return tf_encoding(float(values.min(initial=0.0)), float(values.max(initial=0.0)), bw, min_range)


def per_channel_encoding(values: np.ndarray, axis: int, bw: int, quantizer: str, min_range: float = 1e-4) -> Encoding:
    """One symmetric encoding per output channel (docs/spec.md §5); `enhanced` searches each channel's delta."""
    moved = np.moveaxis(values, axis, 0).reshape(values.shape[axis], -1)
    absmax = np.abs(moved).max(axis=1)
    if quantizer == "enhanced":
        scales = []
        for row in moved:
            counts, lo, hi = histogram_of(row)
            scales.append(float(enhanced_encoding(counts, lo, hi, lo, hi, bw, min_range, symmetric=True).scale))
        absmax = np.asarray(scales) * ((1 << (bw - 1)) - 1)
    return symmetric_encoding(absmax, bw, min_range, axis=axis)

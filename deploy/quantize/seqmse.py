"""Sequential MSE (QNN/AIMET seq_mse): per layer, the weight range that minimises its output MSE.

Candidates: the weight's own min and max (per output channel for a per-channel encoding, else of
the whole tensor) times k/20 for k = 1..20 (AIMET's num_candidates, 20), each turned into an
encoding of the plan's kind (symmetric from max(|min|, |max|), else tf), plus the plan's own
encoding. A candidate's loss is the layer's output MSE on its float inputs with the weight
fake-quantized by it (AIMET's inp_symmetry "symfp"), by layerwise.row_losses. The cheapest wins,
per channel or summed over the tensor; ties keep the plan's, so the layer's loss never rises.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from deploy.quantize.encodings import Encoding, symmetric_encoding, tf_encoding
from deploy.quantize.layerwise import Layer, grid, row_losses

CANDIDATES = 20


def candidates(rows: np.ndarray, enc: Encoding, min_range: float) -> list[Encoding]:
    """The plan's encoding, then the 20 shrunk ranges, for weight rows (groups, channels, K)."""
    per_channel = enc.axis is not None
    lo = rows.min(axis=-1).ravel() if per_channel else rows.min()
    hi = rows.max(axis=-1).ravel() if per_channel else rows.max()
    found = [enc]
    for k in range(1, CANDIDATES + 1):
        f = k / CANDIDATES
        if enc.symmetric:
            candidate = symmetric_encoding(np.maximum(-lo, hi) * f, enc.bw, min_range)
        else:
            candidate = tf_encoding(lo * f, hi * f, enc.bw, min_range)
        found.append(dataclasses.replace(candidate, axis=enc.axis))
    return found


def losses(layer: Layer, rows: np.ndarray, encodings: list[Encoding]) -> np.ndarray:
    """(candidates, output channels): each candidate's output MSE per channel."""
    result = []
    for enc in encodings:
        levels = grid(enc, layer)
        result.append(row_losses(levels.values(levels.nearest(rows)) - rows, layer.gram).ravel())
    return np.stack(result)


def search_range(layer: Layer, rows: np.ndarray, enc: Encoding, min_range: float) -> Encoding:
    """The cheapest candidate: one per output channel for a per-channel encoding."""
    found = candidates(rows, enc, min_range)
    cost = losses(layer, rows, found)
    if enc.axis is None:
        return found[int(np.argmin(cost.sum(axis=1)))]
    best = np.argmin(cost, axis=0)
    channels = np.arange(best.size)
    scale = np.stack([np.broadcast_to(c.scale, best.shape) for c in found])[best, channels]
    offset = np.stack([np.broadcast_to(c.offset, best.shape) for c in found])[best, channels]
    return dataclasses.replace(enc, scale=scale.astype(np.float64), offset=offset.astype(np.int64))

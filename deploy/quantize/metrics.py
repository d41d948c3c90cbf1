"""Streaming agreement between float and quantized outputs: SQNR and cosine without keeping outputs."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class Agreement:
    signal: float = 0.0  # sum of reference^2
    noise: float = 0.0  # sum of (reference - test)^2
    dot: float = 0.0
    test_power: float = 0.0
    shift: float = 0.0  # sum of (test - reference), for the mean output shift
    count: int = 0

    def add(self, reference: np.ndarray, test: np.ndarray) -> None:
        ref = reference.astype(np.float64).ravel()
        out = test.astype(np.float64).ravel()
        diff = out - ref
        self.signal += float(ref @ ref)
        self.noise += float(diff @ diff)
        self.dot += float(ref @ out)
        self.test_power += float(out @ out)
        self.shift += float(diff.sum())
        self.count += ref.size

    @property
    def sqnr_db(self) -> float:
        """10 log10(signal / noise); capped at 200 dB when the outputs are identical."""
        if self.noise == 0:
            return 200.0
        return 10 * math.log10(max(self.signal, 1e-30) / self.noise)

    @property
    def cosine(self) -> float:
        denom = math.sqrt(self.signal * self.test_power)
        return 1.0 if denom == 0 and self.noise == 0 else (self.dot / denom if denom else 0.0)

    @property
    def mean_shift(self) -> float:
        return self.shift / self.count if self.count else 0.0

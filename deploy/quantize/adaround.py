"""AdaRound (Nagel et al. 2020, "Up or Down? Adaptive Rounding for Post-Training Quantization"):
learn, per weight, whether it rounds down or up, so that the layer's output error is smallest
rather than each weight's own error.

With the plan's encoding fixed (float32 scale s, integer range [lo, hi]), per tuned layer:

    W~(V) = s * clip(floor(W / s) + h(V), lo, hi),   h(V) = clip(sigmoid(V) (ZETA - GAMMA) + GAMMA, 0, 1)
    loss  = E||W x - W~(V) x||²  +  REG_PARAM * sum(1 - |2 h(V) - 1|^beta)

minimised by Adam on V (full batch: the expectation is exact through layerwise's G), from
h(V) = W/s - floor(W/s), where the soft weights equal the float ones. The regulariser is off for
the first WARM_START of the iterations, then beta falls from 20 to 2 on a cosine, which pushes
every h(V) to 0 or 1. A weight finally rounds up where V >= 0 (h >= 0.5). An output channel whose
learned rounding has a larger layer loss than nearest rounding keeps nearest rounding, so the
layer's loss never rises. Hyper-parameters are AIMET's except the number of iterations and, with
it, Adam's step (docs/quantization.md).
"""

from __future__ import annotations

import math

import numpy as np

from deploy.quantize.layerwise import Grid, row_losses

ZETA, GAMMA = 1.1, -0.1
REG_PARAM = 0.01
BETA_RANGE = (20.0, 2.0)
WARM_START = 0.2
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8
STEP_BUDGET = 10.0  # learning rate x iterations: AIMET's 1e-3 x 10000


def rectified_sigmoid(v: np.ndarray) -> np.ndarray:
    """h(V): a sigmoid stretched to (GAMMA, ZETA) and clipped to [0, 1], so it reaches 0 and 1 exactly."""
    return np.clip(_sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)


def regulariser(h: np.ndarray, beta: float) -> float:
    """sum(1 - |2h - 1|^beta): 0 where every h is 0 or 1, largest at h = 0.5."""
    return float(np.sum(1.0 - np.abs(2.0 * h - 1.0) ** beta))


def beta_at(iteration: int, iterations: int) -> float:
    """beta after the warm start: cosine from BETA_RANGE[0] down to BETA_RANGE[1]."""
    start, end = BETA_RANGE
    warm = WARM_START * iterations
    progress = (iteration - warm) / (iterations - warm)
    return end + 0.5 * (start - end) * (1.0 + math.cos(progress * math.pi))


def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * v))  # no overflow for any v


def initial_v(rest: np.ndarray) -> np.ndarray:
    """V with h(V) = rest (rest in [0, 1))."""
    p = (rest - GAMMA) / (ZETA - GAMMA)
    return np.log(p / (1.0 - p))


def adaround(rows: np.ndarray, gram: np.ndarray, levels: Grid, iterations: int) -> np.ndarray:
    """Integers t (as float32, t = q - zero point) for weight rows (groups, channels, K) with input G."""
    scaled = rows.astype(np.float32) / levels.scale
    base = np.floor(scaled)
    v = initial_v(scaled - base).astype(np.float32)
    g32 = gram.astype(np.float32)
    m, u = np.zeros_like(v), np.zeros_like(v)
    lr = STEP_BUDGET / iterations
    (b1, b2), warm = ADAM_BETAS, WARM_START * iterations
    for i in range(iterations):
        sig = _sigmoid(v)
        raw = sig * (ZETA - GAMMA) + GAMMA
        h = np.clip(raw, 0.0, 1.0)
        t = base + h
        delta = levels.scale * np.clip(t, levels.lo, levels.hi) - rows
        grad = 2.0 * (delta @ g32) * levels.scale * ((t >= levels.lo) & (t <= levels.hi))
        if i >= warm:
            beta = beta_at(i, iterations)
            d = 2.0 * h - 1.0
            grad -= REG_PARAM * 2.0 * beta * np.sign(d) * np.abs(d) ** (beta - 1.0)
        grad *= (ZETA - GAMMA) * sig * (1.0 - sig) * ((raw > 0.0) & (raw < 1.0))
        m = b1 * m + (1 - b1) * grad
        u = b2 * u + (1 - b2) * grad * grad
        v -= lr * (m / (1 - b1 ** (i + 1))) / (np.sqrt(u / (1 - b2 ** (i + 1))) + ADAM_EPS)
    learned = np.clip(base + (v >= 0), levels.lo, levels.hi)
    nearest = levels.nearest(rows)
    better = row_losses(levels.values(learned) - rows, gram) <= row_losses(levels.values(nearest) - rows, gram)
    return np.where(better[..., None], learned, nearest).astype(np.float32)

"""Metrics and verdicts for device outputs against the float reference.

Knows nothing of devices or runtimes beyond the threshold defaults: it takes arrays and limits
and says what they measure and whether they pass. Metrics follow docs/spec.md §8 (cosine, SQNR, absolute
and relative error, top-k agreement for classifiers).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deploy.config import Thresholds
from deploy.inputlist import Labels

TOP_K = 5


@dataclass(frozen=True)
class Limits:
    """What an output must reach to pass; None means "not checked"."""

    min_cosine: float
    min_sqnr_db: float | None = None
    max_abs: float | None = None
    min_top1_agreement: float | None = None

    def to_json(self) -> dict[str, float | None]:
        return {"min_cosine": self.min_cosine, "min_sqnr_db": self.min_sqnr_db, "max_abs": self.max_abs,
                "min_top1_agreement": self.min_top1_agreement}


def limits_for(thresholds: Thresholds, runtime: str, output: str | None = None) -> Limits:
    """The config's thresholds (docs/spec.md §8 defaults under per-model and per-output overrides) as Limits."""
    return Limits(**thresholds.limits(runtime, output))


def default_limits(runtime: str) -> Limits:
    return limits_for(Thresholds(), runtime)


@dataclass(frozen=True)
class Metrics:
    """How far one output tensor, over every inference, is from the reference."""

    inferences: int
    cosine: float  # the worst inference: one bad input must not hide behind good ones
    cosine_mean: float
    sqnr_db: float  # over all inferences; math.inf when the outputs are identical
    max_abs: float
    mean_abs: float
    rel_l2: float
    top1_agreement: float | None = None  # classifier outputs only
    top5_agreement: float | None = None  # reference's top-1 within the device's top-5
    top1_accuracy: float | None = None  # device vs labels
    reference_top1_accuracy: float | None = None  # reference vs the same labels

    def to_json(self) -> dict[str, Any]:
        # JSON has no infinity or NaN: null (an infinite SQNR means identical outputs; NaN, a broken output).
        return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in self.__dict__.items()}


@dataclass
class Verdict:
    passed: bool
    reasons: list[str] = field(default_factory=list)  # each failed check, as a sentence
    missed: list[str] = field(default_factory=list)  # the Limits field of each, for what to try next


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 and nb == 0.0:
        return 1.0
    if na == 0.0 or nb == 0.0:
        return 0.0
    return float(np.dot(a, b) / (na * nb))


def is_classifier(shape: Sequence[int]) -> bool:
    """A (1, C) or (C,) output with several classes: top-k metrics make sense for it."""
    dims = [d for d in shape if d != 1]
    return len(dims) == 1 and dims[0] > 1


def measure(reference: Sequence[np.ndarray], device: Sequence[np.ndarray],
            labels: Labels | Sequence[int] | None = None) -> Metrics:
    """Compare one output over all inferences (one array per inference, same shapes on both sides).
    `labels` (of a classifier output) must be classes of it: deploy.inputlist.read_labels keeps the
    file lines to name a bad one by."""
    if len(reference) != len(device) or not reference:
        raise ValueError(f"need the same, non-zero number of inferences: {len(reference)} vs {len(device)}")
    ref = np.stack([np.asarray(r, dtype=np.float64).ravel() for r in reference])
    dev = np.stack([np.asarray(d, dtype=np.float64).ravel() for d in device])
    if ref.shape != dev.shape:
        raise ValueError(f"shape mismatch: reference {ref.shape} vs device {dev.shape}")
    err = dev - ref
    cosines = [_cosine(r, d) for r, d in zip(ref, dev, strict=True)]
    signal, noise = float(np.sum(ref * ref)), float(np.sum(err * err))
    if noise == 0.0:
        sqnr = math.inf
    elif signal == 0.0:
        sqnr = -math.inf
    else:
        sqnr = 10.0 * math.log10(signal / noise)
    ref_norm = float(np.linalg.norm(ref))
    rel_l2 = float(np.linalg.norm(err)) / ref_norm if ref_norm else (0.0 if noise == 0.0 else math.inf)
    top = {}
    if is_classifier(np.asarray(reference[0]).shape):
        top = _top_k(ref, dev, labels)
    return Metrics(inferences=len(ref), cosine=float(np.min(cosines)), cosine_mean=float(np.mean(cosines)),
                   sqnr_db=sqnr, max_abs=float(np.max(np.abs(err))), mean_abs=float(np.mean(np.abs(err))),
                   rel_l2=rel_l2, **top)


def _top_k(ref: np.ndarray, dev: np.ndarray, labels: Labels | Sequence[int] | None) -> dict[str, float]:
    ref_top1 = np.argmax(ref, axis=1)
    dev_top1 = np.argmax(dev, axis=1)
    k = min(TOP_K, dev.shape[1])
    dev_topk = np.argsort(-dev, axis=1, kind="stable")[:, :k]
    result = {"top1_agreement": float(np.mean(ref_top1 == dev_top1)),
              "top5_agreement": float(np.mean([r in row for r, row in zip(ref_top1, dev_topk, strict=True)]))}
    if labels is not None:
        labels = labels if isinstance(labels, Labels) else Labels.given(labels)
        if len(labels.values) != len(ref):
            raise ValueError(f"{len(labels.values)} labels for {len(ref)} inferences")
        labels.check_classes(ref.shape[1])
        truth = np.asarray(labels.values)
        result["top1_accuracy"] = float(np.mean(dev_top1 == truth))
        result["reference_top1_accuracy"] = float(np.mean(ref_top1 == truth))
    return result


def error_histogram(reference: Sequence[np.ndarray], device: Sequence[np.ndarray], bins: int = 20) -> dict[str, list]:
    """Distribution of |device - reference| over every element, for the report's error plots."""
    err = np.concatenate([np.abs(np.asarray(d, np.float64) - np.asarray(r, np.float64)).ravel()
                          for r, d in zip(reference, device, strict=True)])
    err = err[np.isfinite(err)]
    if not err.size:
        return {"edges": [], "counts": []}
    counts, edges = np.histogram(err, bins=bins, range=(0.0, float(err.max()) or 1.0))
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}


def judge(metrics: Metrics, limits: Limits) -> Verdict:
    """Check every limit; every failure is named so the report can say why (and which limit it was)."""
    missed: list[tuple[str, str]] = []  # (Limits field, reason)
    if not metrics.cosine >= limits.min_cosine:  # written so that NaN fails
        missed.append(("min_cosine", f"cosine {metrics.cosine:.6f} < {limits.min_cosine}"))
    if limits.min_sqnr_db is not None and not metrics.sqnr_db >= limits.min_sqnr_db:
        missed.append(("min_sqnr_db", f"SQNR {metrics.sqnr_db:.2f} dB < {limits.min_sqnr_db} dB"))
    if limits.max_abs is not None and not metrics.max_abs <= limits.max_abs:
        missed.append(("max_abs", f"max abs error {metrics.max_abs:.6g} > {limits.max_abs}"))
    if limits.min_top1_agreement is not None and metrics.top1_agreement is not None \
            and not metrics.top1_agreement >= limits.min_top1_agreement:
        missed.append(("min_top1_agreement",
                       f"top-1 agreement {metrics.top1_agreement:.3f} < {limits.min_top1_agreement}"))
    return Verdict(passed=not missed, reasons=[r for _, r in missed], missed=[limit for limit, _ in missed])

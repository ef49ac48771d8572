"""Calibrated class probabilities: temperature scaling, and how to measure calibration.

A classifier trained with cross-entropy is usually over-confident: of the reviews it calls
positive with probability 0.95, fewer than 95 % are. Temperature scaling (Guo, Pleiss, Sun
and Weinberger 2017, "On Calibration of Modern Neural Networks") divides the logits by one
scalar T > 0, fitted on held-out data by minimising the negative log-likelihood; the ranking
of the classes, hence every label and the accuracy, is unchanged.

    fit_temperature(logits, targets)              # T, a float
    reliability(probabilities, targets)           # Reliability: ECE over 15 bins and the bins

The expected calibration error (ECE) is the mean gap between confidence (the probability of
the predicted class) and accuracy, over equal-width confidence bins, each weighted by its
share of the texts. Fitting a checkpoint's T and storing it is `lstmtext.classifier.calibrate`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lstmtext.errors import DataError

BINS = 15  # Guo et al.'s choice; the ECE depends on it, so every figure uses the same
LOG_T_RANGE = (math.log(0.05), math.log(20.0))  # wide enough for any sane classifier


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return np.exp(log_softmax(np.asarray(logits, dtype=np.float64) / temperature))


def nll(logits: np.ndarray, targets: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of `targets` under softmax(logits / T)."""
    scaled = log_softmax(np.asarray(logits, dtype=np.float64) / temperature)
    return float(-scaled[np.arange(len(targets)), targets].mean())


def fit_temperature(
    logits: np.ndarray, targets: Sequence[int] | np.ndarray, tolerance: float = 1e-4
) -> float:
    """The T minimising the NLL of softmax(logits / T): golden-section search over log T.

    The NLL is convex in 1/T, so unimodal in log T, and one dimension needs no gradient;
    the search stops when log T is known to `tolerance` (T to about 0.01 %).

    When the model gets every text right, the NLL falls without end as T -> 0: there is no
    best T, and a search would return its lower bound, a model sure of everything. Then
    1.0 is returned: such data cannot tell how over-confident the model is.
    """
    logits = np.asarray(logits, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.int64)
    if len(targets) == 0:
        raise DataError("cannot fit a temperature on no texts")
    if (logits.argmax(axis=1) == targets).all():
        return 1.0
    ratio = (math.sqrt(5) - 1) / 2
    low, high = LOG_T_RANGE
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = nll(logits, targets, math.exp(a)), nll(logits, targets, math.exp(b))
    while high - low > tolerance:
        if fa < fb:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = nll(logits, targets, math.exp(a))
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = nll(logits, targets, math.exp(b))
    return math.exp((low + high) / 2)


@dataclass(frozen=True)
class ReliabilityBin:
    low: float
    high: float
    count: int
    confidence: float  # mean probability of the predicted class (nan when empty)
    accuracy: float  # share of those predictions that are right (nan when empty)


@dataclass(frozen=True)
class Reliability:
    """Confidence against accuracy in equal-width bins, and the ECE that summarises them."""

    ece: float
    bins: tuple[ReliabilityBin, ...]
    count: int

    def to_dict(self) -> dict[str, object]:
        def number(value: float) -> float | None:
            return None if math.isnan(value) else round(value, 6)

        return {
            "ece": round(self.ece, 6),
            "bins": [
                {
                    "low": round(b.low, 6),
                    "high": round(b.high, 6),
                    "count": b.count,
                    "confidence": number(b.confidence),
                    "accuracy": number(b.accuracy),
                }
                for b in self.bins
            ],
        }


def reliability(
    probabilities: np.ndarray, targets: Sequence[int] | np.ndarray, bins: int = BINS
) -> Reliability:
    """ECE and the reliability table of (N, classes) probabilities against true class indices.

    Bins are (low, high], the first [0, 1/bins]: a confidence on an edge falls in the lower bin.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.int64)
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == targets
    index = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    table = []
    ece = 0.0
    for k in range(bins):
        members = index == k
        count = int(members.sum())
        mean_confidence = float(confidence[members].mean()) if count else math.nan
        accuracy = float(correct[members].mean()) if count else math.nan
        if count:
            ece += count / len(targets) * abs(accuracy - mean_confidence)
        table.append(ReliabilityBin(k / bins, (k + 1) / bins, count, mean_confidence, accuracy))
    return Reliability(ece=ece if len(targets) else math.nan, bins=tuple(table), count=len(targets))


# ---- calibrating a checkpoint


@dataclass(frozen=True)
class CalibrationResult:
    temperature: float
    count: int  # validation texts
    errors: int  # of them misclassified; 0: nothing to fit on, T stays 1.0
    nll_before: float
    nll_after: float
    ece_before: float
    ece_after: float


def temperature_result(logits: np.ndarray, targets: np.ndarray) -> CalibrationResult:
    """Fit T on (logits, targets) and say what it changed there."""
    temperature = fit_temperature(logits, targets)
    return CalibrationResult(
        temperature=temperature,
        count=len(targets),
        errors=int((np.asarray(logits).argmax(axis=1) != targets).sum()),
        nll_before=nll(logits, targets),
        nll_after=nll(logits, targets, temperature),
        ece_before=reliability(softmax(logits), targets).ece,
        ece_after=reliability(softmax(logits, temperature), targets).ece,
    )


# ---- abstaining

UNCERTAIN = "uncertain"


def verdict(label: str, probability: float, min_confidence: float) -> str:
    """`label`, or UNCERTAIN when its (calibrated) probability is below `min_confidence`:
    the abstain band, for callers who would rather not act on a near coin-flip."""
    return UNCERTAIN if probability < min_confidence else label

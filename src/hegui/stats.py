"""Rates with honest uncertainty: Wilson score intervals and a verdict against a threshold.

Used wherever hegui states a rate as evidence (the filing assessment's pass and refusal rates, the
corpus audit's 5% rule): a rate whose interval straddles the threshold is NOT PROVEN, not PASS.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Literal

Comparator = Literal[">=", "<="]
Outcome = Literal["PASS", "FAIL", "NOT PROVEN"]


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval for ``k`` successes in ``n`` trials (``(0, 1)`` when ``n == 0``)."""
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"wilson_interval needs 0 <= k <= n, got k={k}, n={n}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    if n == 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def judge_rate(k: int, n: int, threshold: float, comparator: Comparator,
               confidence: float = 0.95) -> tuple[Outcome, float, float]:
    """PASS when the whole interval meets the threshold, FAIL when none of it does, else NOT PROVEN.

    ``comparator`` says which side passes: ``>=`` (a pass rate must reach the threshold) or ``<=`` (a
    refusal rate on should-not-refuse items, or a harmful-content rate, must stay at or under it).
    Returns the outcome and the interval.
    """
    low, high = wilson_interval(k, n, confidence)
    if n == 0:
        return "NOT PROVEN", low, high
    if comparator == ">=":
        outcome: Outcome = "PASS" if low >= threshold else "FAIL" if high < threshold else "NOT PROVEN"
    else:
        outcome = "PASS" if high <= threshold else "FAIL" if low > threshold else "NOT PROVEN"
    return outcome, low, high

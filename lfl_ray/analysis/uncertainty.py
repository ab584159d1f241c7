"""Standard errors for sweep numbers: over seeds, over eval items, and paired over items.

A difference counts as real only when ``|diff| >= 2 SE``; below that the analysis says
"not distinguishable here". Paired SEs (both trials scored on the same items) are the ones
to use when two trials are compared: unpaired SEs are often several times larger than the
differences between methods (see FIELD_NOTES, calibration).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

Z = 2.0
"""How many standard errors a difference must reach to count as real."""


@dataclass(frozen=True)
class Estimate:
    """A number with its standard error and how that error was obtained."""

    value: float
    se: float
    """Standard error; nan when nothing says how noisy ``value`` is."""
    how: str = ""
    """``seeds (n=3)``, ``items``, ``paired over 40 items``, ``unpaired``..."""

    def distinguishable(self, z: float = Z) -> bool:
        """True when ``|value| >= z * se`` (and the SE is known)."""
        return math.isfinite(self.se) and math.isfinite(self.value) and abs(self.value) >= z * self.se

    def sign(self, z: float = Z) -> int:
        """+1 / -1 for a real positive / negative value, 0 when within noise."""
        if not self.distinguishable(z):
            return 0
        return 1 if self.value > 0 else -1

    def text(self, digits: int = 3) -> str:
        se = f" ± {self.se:.{digits}f}" if math.isfinite(self.se) else " (SE unknown)"
        return f"{self.value:+.{digits}f}{se}"

    def plain(self, digits: int = 3) -> str:
        se = f" ± {self.se:.{digits}f}" if math.isfinite(self.se) else ""
        return f"{self.value:.{digits}f}{se}"


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (nan SE for fewer than two values)."""
    array = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if array.size == 0:
        return float("nan"), float("nan")
    if array.size == 1:
        return float(array[0]), float("nan")
    return float(array.mean()), float(array.std(ddof=1) / math.sqrt(array.size))


def clustered_se(values: Sequence[float], groups: Sequence | None = None) -> float:
    """SE of the mean of ``values``, robust to correlation within ``groups`` (e.g. doc ids).

    Without groups (or with one item per group) this is the usual ``std / sqrt(n)``.
    """
    array = np.asarray(values, dtype=float)
    n = array.size
    if n < 2:
        return float("nan")
    if groups is None or len(set(groups)) in (n, 1):
        return float(array.std(ddof=1) / math.sqrt(n))
    residual = array - array.mean()
    sums: dict = {}
    for group, value in zip(groups, residual):
        sums[group] = sums.get(group, 0.0) + value
    g = len(sums)
    variance = g / (g - 1) * sum(s * s for s in sums.values()) / n**2
    return float(math.sqrt(variance))


def paired_difference(items_a: Sequence[float], items_b: Sequence[float],
                      groups: Sequence | None = None) -> Estimate:
    """Mean of ``a - b`` over the same items, with its (clustered) paired SE."""
    a, b = np.asarray(items_a, dtype=float), np.asarray(items_b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired items differ in count: {a.shape} vs {b.shape}")
    diff = a - b
    return Estimate(float(diff.mean()), clustered_se(diff, groups), f"paired over {diff.size} items")


def unpaired_difference(a: Estimate, b: Estimate) -> Estimate:
    """``a - b`` with the SEs added in quadrature."""
    return Estimate(a.value - b.value, math.sqrt(a.se**2 + b.se**2), "unpaired")

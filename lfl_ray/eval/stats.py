"""Standard errors of means and of paired differences, clustered by source document.

The SE of a mean over items that share documents is the cluster-robust (sandwich) SE: the
spread of per-document sums around the mean, ``sqrt(G/(G-1) * sum_g (S_g - n_g m)^2) / N``.
It is what a bootstrap over documents converges to, without the resampling noise, and with
one item per document it is the usual ``std(ddof=1) / sqrt(n)``. ``bootstrap_se`` is the
resampling version, kept to check the closed form and for statistics without one.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Sequence

import numpy as np


def mean_se(values: Sequence[float], groups: Sequence[str] | None = None) -> tuple[float, float]:
    """Mean of ``values`` and its SE, clustered by ``groups`` (one id per value) if given."""
    x = np.asarray(values, dtype=np.float64)
    n = x.size
    if n == 0:
        return float("nan"), float("nan")
    mean = float(x.mean())
    if groups is None:
        groups = range(n)
    if len(groups) != n:
        raise ValueError(f"{len(groups)} group ids for {n} values")
    sums: dict = defaultdict(float)
    counts: dict = defaultdict(int)
    for value, group in zip(x, groups):
        sums[group] += value
        counts[group] += 1
    g = len(sums)
    if g < 2:
        return mean, float("nan")
    spread = sum((sums[k] - counts[k] * mean) ** 2 for k in sums)
    return mean, math.sqrt(g / (g - 1) * spread) / n


def paired_se(a: Sequence[float], b: Sequence[float],
              groups: Sequence[str] | None = None) -> tuple[float, float]:
    """Mean of ``a - b`` over the same items and its (clustered) SE."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired values need the same items: {a.shape} vs {b.shape}")
    return mean_se(a - b, groups)


def bootstrap_se(values: Sequence[float], groups: Sequence[str] | None = None, *,
                 n_boot: int = 2000, seed: int = 0) -> float:
    """SE of the mean by resampling documents (or items) with replacement."""
    x = np.asarray(values, dtype=np.float64)
    if groups is None:
        groups = [str(i) for i in range(x.size)]
    names = sorted(set(groups))
    index = {name: i for i, name in enumerate(names)}
    gid = np.array([index[g] for g in groups])
    sums = np.bincount(gid, weights=x, minlength=len(names))
    counts = np.bincount(gid, minlength=len(names)).astype(np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(names), size=(n_boot, len(names)))
    means = sums[draws].sum(1) / counts[draws].sum(1)
    return float(means.std(ddof=1))

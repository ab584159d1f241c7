"""How well a KL from the base model predicts forgetting, across trials.

*RL's Razor* (Shenfeld et al. 2025) finds that forgetting follows the forward KL(base || tuned)
measured on the new task's own distribution. Two KLs can be logged at each milestone:
``drift_kl`` on general text (the ``drift`` suite) and ``heldout_kl`` on the held-out
target data. For each, the Spearman rank correlation across trials between the KL and
``forgetting`` (each trial's last milestone, among the trials that trained furthest), with a
bootstrap over trials for its SE; the two correlations are also compared on the same
resamples. A KL that no trial logged is "not tested".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from lfl_ray.analysis.runs import Sweep, Trial
from lfl_ray.analysis.uncertainty import Estimate

KL_METRICS = ("drift_kl", "heldout_kl")
"""``drift_kl``: KL(base || tuned) on general text; ``heldout_kl``: on the held-out target data."""
MIN_TRIALS = 4
"""Fewest trials a rank correlation is computed over."""
N_BOOT = 2000


def rankdata(values: Sequence[float]) -> np.ndarray:
    """Ranks 1..n, ties sharing their average rank (scipy's ``rankdata``, which lfl-ray does
    not depend on)."""
    x = np.asarray(values, float)
    ranks = np.empty(x.size)
    ranks[np.argsort(x, kind="mergesort")] = np.arange(1, x.size + 1)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    return (np.bincount(inverse, weights=ranks) / counts)[inverse]


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho (average ranks for ties); nan when either side is constant."""
    rx, ry = rankdata(x), rankdata(y)
    if np.std(rx) == 0 or np.std(ry) == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


@dataclass(frozen=True)
class KlPredictor:
    """One KL's rank correlation with forgetting across trials."""

    metric: str
    rho: Estimate
    """Spearman's rho with its bootstrap-over-trials SE (nan value when not tested)."""
    trials: int
    tokens: tuple[int, ...]
    """The milestones (training tokens) the pairs come from."""
    reason: str = ""
    """Why it is not tested, else empty."""

    @property
    def tested(self) -> bool:
        return not self.reason


def _pairs(trials: Sequence[Trial], metric: str) -> tuple[list[Trial], np.ndarray, np.ndarray]:
    chosen, kl, forget = [], [], []
    for trial in trials:
        final = trial.final
        value = final.metrics.get(metric) if final else None
        if value is None or not math.isfinite(value) or not math.isfinite(final.forgetting):
            continue
        chosen.append(trial)
        kl.append(value)
        forget.append(final.forgetting)
    return chosen, np.asarray(kl), np.asarray(forget)


def _furthest(trials: Sequence[Trial]) -> list[Trial]:
    """The trials that reached the furthest milestone, unless fewer than MIN_TRIALS did."""
    trials = [t for t in trials if t.final is not None]
    if not trials:
        return []
    furthest = max(t.final.tokens for t in trials)
    top = [t for t in trials if t.final.tokens == furthest]
    return top if len(top) >= MIN_TRIALS else trials


def kl_predictors(sweep: Sweep, *, n_boot: int = N_BOOT, seed: int = 0) -> dict[str, KlPredictor]:
    """Per KL metric: Spearman's rho with forgetting across trials, and ``difference``
    (heldout_kl's rho minus drift_kl's, on the same trials and resamples) when both exist."""
    trials = _furthest(sweep.usable)
    rng = np.random.default_rng(seed)
    out: dict[str, KlPredictor] = {}
    draws: dict[str, np.ndarray] = {}
    for metric in KL_METRICS:
        chosen, kl, forget = _pairs(trials, metric)
        tokens = tuple(sorted({t.final.tokens for t in chosen}))
        if len(chosen) < MIN_TRIALS:
            why = (f"no trial logged {metric}" if not chosen else
                   f"only {len(chosen)} trials logged {metric} (at least {MIN_TRIALS} needed)")
            out[metric] = KlPredictor(metric, Estimate(math.nan, math.nan, "not tested"),
                                      len(chosen), tokens, why)
            continue
        rho = spearman(kl, forget)
        index = rng.integers(0, len(chosen), size=(n_boot, len(chosen)))
        reps = np.array([spearman(kl[i], forget[i]) for i in index])
        finite = reps[np.isfinite(reps)]
        se = float(finite.std(ddof=1)) if finite.size > 1 else math.nan
        draws[metric] = reps
        out[metric] = KlPredictor(metric, Estimate(rho, se, f"bootstrap over {len(chosen)} trials"),
                                  len(chosen), tokens)
    both = [out[m] for m in KL_METRICS if out[m].tested]
    if len(both) == 2 and both[0].trials == both[1].trials:
        # Same trials: resample them together so the two correlations pair.
        held, drift = _pairs(trials, "heldout_kl"), _pairs(trials, "drift_kl")
        if [t.run_id for t in held[0]] == [t.run_id for t in drift[0]]:
            index = rng.integers(0, len(held[0]), size=(n_boot, len(held[0])))
            diff = np.array([spearman(held[1][i], held[2][i]) - spearman(drift[1][i], drift[2][i])
                             for i in index])
            diff = diff[np.isfinite(diff)]
            value = out["heldout_kl"].rho.value - out["drift_kl"].rho.value
            out["difference"] = KlPredictor(
                "heldout_kl - drift_kl",
                Estimate(value, float(diff.std(ddof=1)) if diff.size > 1 else math.nan,
                         f"paired bootstrap over {len(held[0])} trials"),
                len(held[0]), both[0].tokens)
    return out


def rows(predictors: dict[str, KlPredictor]) -> list[tuple]:
    table = []
    for name, p in predictors.items():
        if not p.tested:
            table.append((p.metric, "-", p.trials, "-", f"not tested: {p.reason}"))
            continue
        sign = p.rho.sign()
        state = ("predicts forgetting (higher KL, more forgetting)" if sign > 0 else
                 "anti-correlated with forgetting" if sign < 0 else "not distinguishable from 0")
        if name == "difference":
            state = ("target-task KL predicts better" if sign > 0 else
                     "general-text KL predicts better" if sign < 0 else "not distinguishable")
        table.append((p.metric, p.rho.text(), p.trials,
                      ", ".join(f"{t:,}" for t in p.tokens), state))
    return table


HEADER = ("KL", "Spearman rho with forgetting ± SE", "trials", "tokens", "reading")

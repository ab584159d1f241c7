"""Forgetting at matched learning: at the same amount learned, which family forgets less?

The paper's claim is about the trade-off curve, not about one point per method. Each trial
is a trajectory in the (learning, forgetting) plane: it starts at the base model's (0, 0),
which every trial shares exactly, and passes through its milestones in training order,
joined by straight lines (a trial stopped between two milestones would land near that
line). A family's curve (the ``lfl.family`` tag; or all LoRA trials pooled) is the lower
envelope of its trajectories: at learning ``x``, the least forgetting of any of its trials
where its trajectory reaches ``x``, over every milestone and learning rate. Nothing is
extrapolated: a family's curve ends at the most learning it reached, so the comparison
covers learning from 0 to the most both families reach. Its headline is the mean of the
forgetting difference over that range (the area between the curves over its width); the
difference is also read at fractions of it (``LEVELS``).

The uncertainty is a paired bootstrap over the eval items: every replicate resamples the
items (by source document where items share one) once, applies the same draw to every
trial's per-item values (``evals/milestone_<tokens>.json`` minus the base's), rebuilds both
curves and reads them again over its own shared range. Points without per-item evals are
jittered by their logged SE instead (and the estimate says so). Seeds are not resampled:
the SE is eval noise, not training noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from lfl_ray.analysis.runs import Sweep, Trial, load_eval
from lfl_ray.analysis.uncertainty import Z, Estimate
from lfl_ray.mlflow_schema import METRIC_PARAM, Metric

N_BOOT = 400
"""Bootstrap replicates (the SE's own relative error is about 1/sqrt(2 * N_BOOT), 3.5%)."""
MC_COMPONENTS = ("hellaswag_acc_norm", "arc_challenge_acc_norm", "winogrande_acc")
"""``mc_mean`` is the mean of these three per-item metrics (``lfl_ray.eval.suites.MC_HEADLINE``)."""
NEGATED = {Metric.LEARNING: "heldout_loss", Metric.FORGETTING: "mc_mean"}
"""The primary metric whose sign is flipped (``MilestoneEvaluator.compare``): a lower held-out
loss is learning, a lower MC accuracy is forgetting."""
LEVELS = (0.25, 0.5, 0.75, 1.0)
"""Matched learning levels, as fractions of the most learning both curves reach (the
bootstrap reads each replicate at the same fraction of its own shared reach)."""
GRID = 40
"""Learning levels the mean over the shared range is taken at (midpoints of equal steps)."""


def trajectory(learning: Sequence[float], forgetting: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """One trial's path: the base model's (0, 0), then its milestones in training order."""
    return (np.concatenate([[0.0], np.asarray(learning, float)]),
            np.concatenate([[0.0], np.asarray(forgetting, float)]))


def envelope(paths: Sequence[tuple[np.ndarray, np.ndarray]], xs: np.ndarray) -> np.ndarray:
    """Least forgetting at each learning level in ``xs`` over the straight segments of
    ``paths`` that cover it (a path that rises and falls covers a level twice: the lower
    forgetting counts); NaN where no path reaches the level."""
    xs = np.asarray(xs, float)
    out = np.full(xs.shape, np.inf)
    for learn, forget in paths:
        for l0, l1, f0, f1 in zip(learn[:-1], learn[1:], forget[:-1], forget[1:]):
            lo, hi = min(l0, l1), max(l0, l1)
            inside = (xs >= lo) & (xs <= hi)
            if not inside.any():
                continue
            if l1 == l0:
                value = np.full(xs.shape, min(f0, f1))
            else:
                value = f0 + (f1 - f0) * (xs - l0) / (l1 - l0)
            out = np.where(inside, np.minimum(out, value), out)
    return np.where(np.isfinite(out), out, np.nan)


def reach(paths: Sequence[tuple[np.ndarray, np.ndarray]]) -> float:
    """The most learning any of ``paths`` reached (0 for none)."""
    return max((float(np.max(learn)) for learn, _ in paths), default=0.0)


@dataclass(frozen=True)
class CurvePoint:
    """One (trial, milestone) point of a family's curve."""

    trial_id: str
    tokens: int
    learning: float
    forgetting: float


@dataclass(frozen=True)
class MatchedLevel:
    """Both families' forgetting at one matched learning level, and their difference."""

    learning: float
    forgetting_a: float
    forgetting_b: float
    difference: Estimate
    """``forgetting_a - forgetting_b`` with the bootstrap SE."""


@dataclass(frozen=True)
class MatchedComparison:
    """Forgetting of family ``a`` minus family ``b`` at matched learning."""

    a: str
    b: str
    levels: tuple[MatchedLevel, ...]
    """At ``LEVELS`` of the most learning both reach."""
    reach: tuple[float, float]
    """The most learning each curve reaches (a, b)."""
    tokens: tuple[int, ...]
    """Milestones (training tokens) of the points on either curve."""
    mean: MatchedLevel | None = None
    """The headline: forgetting of each curve and their difference averaged over learning
    from 0 to the most both reach (``learning`` holds that upper end)."""
    points_a: tuple[CurvePoint, ...] = field(default=())
    points_b: tuple[CurvePoint, ...] = field(default=())
    reason: str = ""
    """Why there are no levels (curves that share no learning range), else empty."""

    @property
    def headline(self) -> MatchedLevel | None:
        return self.mean

    def verdict_sign(self, z: float = Z) -> int:
        """-1: ``a`` forgets less at matched learning, +1: more, 0: not distinguishable."""
        return self.headline.difference.sign(z) if self.headline else 0


# --- per-item values ---------------------------------------------------------------------

def _components(metric: str) -> tuple[str, ...]:
    return MC_COMPONENTS if metric == "mc_mean" else (metric,)


class _Draws:
    """The bootstrap's resampling weights per per-item metric: one draw, shared by every point."""

    def __init__(self, n_boot: int, seed: int):
        self.n_boot, self.rng, self.weights = n_boot, np.random.default_rng(seed), {}

    def sizes(self) -> str:
        """``40 heldout_loss, 64 general_loss``: the item sets resampled so far."""
        return ", ".join(f"{n} {name}" for name, n in self.weights) or "none"

    def get(self, name: str, groups: Sequence[str] | None, n: int) -> np.ndarray:
        key = (name, n)
        if key not in self.weights:
            ids = list(groups) if groups and len(groups) == n else [str(i) for i in range(n)]
            names = {g: i for i, g in enumerate(dict.fromkeys(ids))}
            gid = np.array([names[g] for g in ids])
            counts = np.stack([np.bincount(self.rng.integers(0, len(names), len(names)),
                                           minlength=len(names)) for _ in range(self.n_boot)])
            self.weights[key] = counts[:, gid].astype(float)  # (n_boot, n items)
        return self.weights[key]


def _replicates(logged: float, se: float, sign: float, metric: str, tuned: dict | None,
                base: dict | None, draws: _Draws, rng) -> tuple[np.ndarray, bool]:
    """Bootstrap replicates of one primary value: the logged value shifted by the resampled
    mean change over the items; the logged SE as noise where items are missing."""
    parts = []
    for name in _components(metric):
        x = (tuned or {}).get("items", {}).get(name)
        y = (base or {}).get("items", {}).get(name)
        if not x or not y or len(x) != len(y):
            parts = None
            break
        d = np.asarray(x, float) - np.asarray(y, float)
        if not np.all(np.isfinite(d)):
            parts = None
            break
        w = draws.get(name, (base or {}).get("groups", {}).get(name), d.size)
        parts.append(w @ d / w.sum(axis=1) - d.mean())
    if parts:
        return logged + sign * np.mean(parts, axis=0), True
    noise = se if math.isfinite(se) else 0.0
    return logged + rng.normal(0.0, noise, draws.n_boot), False


@dataclass
class _Family:
    name: str
    points: list[CurvePoint]
    learn: np.ndarray  # (n_boot, points)
    forget: np.ndarray
    unpaired: int = 0
    """Values among the points without per-item evals."""


def _sign(primary: str, metric: str) -> float:
    return -1.0 if NEGATED[primary] == metric else 1.0


def family_points(sweep: Sweep, trials: Sequence[Trial], *, n_boot: int = N_BOOT,
                  seed: int = 0, _cache: dict | None = None,
                  draws: _Draws | None = None) -> tuple[list[CurvePoint], np.ndarray, np.ndarray, int]:
    """Points of ``trials`` and their bootstrap replicates (learning, forgetting); the last
    value is how many points had no per-item evals."""
    cache = _cache if _cache is not None else {}
    draws = draws or _Draws(n_boot, seed)
    rng = np.random.default_rng(seed + 1)
    if "base" not in cache:
        cache["base"] = load_eval(sweep, sweep.parent_run_id) if sweep.parent_run_id else None
    base = cache["base"]
    points, learn, forget, unpaired = [], [], [], 0
    for trial in trials:
        for m in trial.milestones:
            if not (math.isfinite(m.learning) and math.isfinite(m.forgetting)):
                continue
            key = (trial.run_id, m.tokens)
            if key not in cache:
                cache[key] = load_eval(sweep, trial.run_id, m.tokens)
            tuned = cache[key]
            reps = []
            for primary, value, se in ((Metric.LEARNING, m.learning, m.learning_se),
                                       (Metric.FORGETTING, m.forgetting, m.forgetting_se)):
                metric = str(trial.params.get(METRIC_PARAM[primary], ""))
                r, paired = _replicates(value, se, _sign(primary, metric), metric, tuned, base,
                                        draws, rng)
                unpaired += not paired
                reps.append(r)
            points.append(CurvePoint(trial.trial_id, m.tokens, m.learning, m.forgetting))
            learn.append(reps[0])
            forget.append(reps[1])
    shape = (draws.n_boot, 0)
    return (points, np.stack(learn, axis=1) if learn else np.zeros(shape),
            np.stack(forget, axis=1) if forget else np.zeros(shape), unpaired)


def _paths(points: Sequence[CurvePoint], learn: np.ndarray, forget: np.ndarray) -> list[tuple]:
    """Each trial's trajectory from ``points`` (in the order family_points gives them: trial
    by trial, milestones in training order) and one row of values per point."""
    by_trial: dict[str, list[int]] = {}
    for i, p in enumerate(points):
        by_trial.setdefault(p.trial_id, []).append(i)
    return [trajectory(learn[idx], forget[idx]) for idx in by_trial.values()]


def _read(paths_a, paths_b, fractions: Sequence[float]) -> tuple[float, np.ndarray, np.ndarray]:
    """Shared reach, and each curve's forgetting at ``fractions`` of it then on the mean's grid."""
    shared = min(reach(paths_a), reach(paths_b))
    if shared <= 0:
        return shared, np.full(len(fractions) + GRID, np.nan), np.full(len(fractions) + GRID, np.nan)
    xs = shared * np.concatenate([np.asarray(fractions, float), (np.arange(GRID) + 0.5) / GRID])
    return shared, envelope(paths_a, xs), envelope(paths_b, xs)


def compare_families(a: _Family, b: _Family, how: str,
                     levels: Sequence[float] = LEVELS) -> MatchedComparison:
    """``a`` minus ``b`` in forgetting at matched learning, with bootstrap SEs."""
    tokens = tuple(sorted({p.tokens for p in a.points + b.points}))
    pa = _paths(a.points, np.array([p.learning for p in a.points]), np.array([p.forgetting for p in a.points]))
    pb = _paths(b.points, np.array([p.learning for p in b.points]), np.array([p.forgetting for p in b.points]))
    common = dict(a=a.name, b=b.name, reach=(reach(pa), reach(pb)), tokens=tokens,
                  points_a=tuple(a.points), points_b=tuple(b.points))
    if not a.points or not b.points:
        return MatchedComparison(levels=(), reason="a family has no eval point", **common)
    shared, fa, fb = _read(pa, pb, levels)
    if shared <= 0:
        return MatchedComparison(levels=(), reason="a family learned nothing (no trajectory rises "
                                 "above the base model), so no learning level is shared", **common)
    k = len(levels)
    reps = np.full((a.learn.shape[0], k + 1), np.nan)
    for r in range(a.learn.shape[0]):
        # Each replicate reads its own curves at the same fractions of its own shared reach.
        _, ra, rb = _read(_paths(a.points, a.learn[r], a.forget[r]),
                          _paths(b.points, b.learn[r], b.forget[r]), levels)
        d = ra - rb
        reps[r, :k] = d[:k]
        reps[r, k] = np.mean(d[k:]) if np.all(np.isfinite(d[k:])) else np.nan

    def se(column: int) -> float:
        finite = reps[:, column][np.isfinite(reps[:, column])]
        return float(finite.std(ddof=1)) if finite.size > 1 else math.nan

    out = [MatchedLevel(shared * f, float(fa[i]), float(fb[i]), Estimate(float(fa[i] - fb[i]), se(i), how))
           for i, f in enumerate(levels)]
    ma, mb = float(np.mean(fa[k:])), float(np.mean(fb[k:]))
    mean = MatchedLevel(shared, ma, mb, Estimate(ma - mb, se(k), how))
    return MatchedComparison(levels=tuple(out), mean=mean, **common)


def _how(sizes: str, unpaired: int, n_boot: int) -> str:
    text = f"paired bootstrap over the eval items ({sizes}; {n_boot} draws)"
    return text + (f"; {unpaired} values without per-item evals jittered by their SE"
                   if unpaired else "")


def reference_family(trials: Sequence[Trial]) -> str | None:
    """The family LoRA is compared with: plain ``full`` if present, else any full-FT family."""
    families = sorted({t.family for t in trials if not t.is_lora})
    return "full" if "full" in families else (families[0] if families else None)


POOLED_LORA = "lora (every rank, target set and LR)"
"""The pooled LoRA curve: the best any LoRA configuration of the sweep reached."""


def matched_learning(sweep: Sweep, *, n_boot: int = N_BOOT, seed: int = 0,
                     levels: Sequence[float] = LEVELS) -> list[MatchedComparison]:
    """Pooled LoRA, then every other family, against the full-FT reference family."""
    trials = list(sweep.usable)
    ref = reference_family(trials)
    if ref is None:
        return []
    cache: dict = {}
    draws = _Draws(n_boot, seed)

    def family(name: str, members: list[Trial]) -> _Family:
        pts, learn, forget, unpaired = family_points(sweep, members, n_boot=n_boot, seed=seed,
                                                     _cache=cache, draws=draws)
        return _Family(name, pts, learn, forget, unpaired)

    base = family(ref, [t for t in trials if t.family == ref])
    groups = []
    loras = [t for t in trials if t.is_lora]
    if loras:
        groups.append((POOLED_LORA, loras))
    for name in sorted({t.family for t in trials} - {ref}):
        groups.append((name, [t for t in trials if t.family == name]))
    out = []
    for name, members in groups:
        fam = family(name, members)
        how = _how(draws.sizes(), fam.unpaired + base.unpaired, n_boot)
        out.append(compare_families(fam, base, how, levels))
    return out


def rows(comparisons: Sequence[MatchedComparison]) -> list[tuple]:
    """(family, reference, matched learning, forgetting a, forgetting b, a - b, verdict) rows."""
    table = []
    for c in comparisons:
        if not c.levels:
            table.append((c.a, c.b, "-", "-", "-", "-", f"not tested: {c.reason}"))
            continue
        for level, where in ([(c.mean, "mean over 0 to {:+.3f}")] if c.mean else []) + \
                [(lv, "{:+.3f}") for lv in c.levels]:
            sign = level.difference.sign()
            state = ("forgets less" if sign < 0 else "forgets more" if sign > 0
                     else "not distinguishable")
            table.append((c.a, c.b, where.format(level.learning), f"{level.forgetting_a:+.3f}",
                          f"{level.forgetting_b:+.3f}", level.difference.text(), state))
    return table


HEADER = ("family", "vs", "matched learning", "its forgetting", "reference's forgetting",
          "difference ± SE", "at matched learning")

"""Forgetting at matched learning: at the same amount learned, which family forgets less?

The paper's claim is about the trade-off curve, not about one point per method. Each family
(the ``lfl.family`` tag; or all LoRA trials pooled) gets a learning-forgetting curve: the
Pareto front of its (trial, milestone) points over every milestone and learning rate, with
the base model's (0, 0) as its first point (every family starts there, exactly), joined by
straight lines. Forgetting is read off each curve at the same learning level, and the
difference ``a - b`` gets its uncertainty from a paired bootstrap over the eval items: every
replicate resamples the items (by source document where items share one) once, applies the
same draw to every trial's per-item values (``evals/milestone_<tokens>.json`` minus the
base's), rebuilds both fronts and reads them again. Points without per-item evals are
jittered by their logged SE instead (and the estimate says so). Seeds are not resampled:
the SE is eval noise, not training noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from lfl_ray.analysis.pareto import non_dominated
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
LEVELS = (0.5, 0.75, 1.0)
"""Matched learning levels, as fractions of the most learning both curves reach (the
bootstrap reads each replicate at the same fraction of its own shared reach)."""


def interpolate(xs: Sequence[float], ys: Sequence[float], x: float) -> float:
    """y at ``x`` on the polyline through (xs, ys) (xs ascending), extended linearly past its ends."""
    xs, ys = np.asarray(xs, float), np.asarray(ys, float)
    if xs.size == 0:
        return math.nan
    if xs.size == 1:
        return float(ys[0]) if x == xs[0] else math.nan
    if x <= xs[0]:
        i = 0
    elif x >= xs[-1]:
        i = xs.size - 2
    else:
        i = int(np.searchsorted(xs, x, side="right")) - 1
    x0, x1, y0, y1 = xs[i], xs[i + 1], ys[i], ys[i + 1]
    if x1 == x0:
        return float(min(y0, y1))
    return float(y0 + (y1 - y0) * (x - x0) / (x1 - x0))


def curve(learning: Sequence[float], forgetting: Sequence[float],
          anchor: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """A family's front as a polyline, by increasing learning (with the base's (0, 0) first)."""
    learn = np.asarray(list(learning) + ([0.0] if anchor else []), float)
    forget = np.asarray(list(forgetting) + ([0.0] if anchor else []), float)
    mask = non_dominated(learn, forget)
    order = np.lexsort((forget[mask], learn[mask]))
    xs, ys = learn[mask][order], forget[mask][order]
    # Equal learning on the front keeps the lowest forgetting only (the polyline is a function).
    keep = np.ones(xs.size, bool)
    keep[1:] = xs[1:] != xs[:-1]
    return xs[keep], ys[keep]


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
    """At ``LEVELS`` of the most learning both reach; the last is the headline."""
    reach: tuple[float, float]
    """The most learning each curve reaches (a, b)."""
    tokens: tuple[int, ...]
    """Milestones (training tokens) of the points on either curve."""
    curve_a: tuple[CurvePoint, ...] = field(default=())
    curve_b: tuple[CurvePoint, ...] = field(default=())
    reason: str = ""
    """Why there are no levels (curves that share no learning range), else empty."""

    @property
    def headline(self) -> MatchedLevel | None:
        return self.levels[-1] if self.levels else None

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


def _curve_points(points: list[CurvePoint]) -> tuple[CurvePoint, ...]:
    xs, ys = curve([p.learning for p in points], [p.forgetting for p in points])
    chosen = []
    for x, y in zip(xs, ys):
        match = [p for p in points if p.learning == x and p.forgetting == y]
        chosen.append(match[0] if match else CurvePoint("base", 0, 0.0, 0.0))
    return tuple(chosen)


def compare_families(a: _Family, b: _Family, how: str,
                     levels: Sequence[float] = LEVELS) -> MatchedComparison:
    """``a`` minus ``b`` in forgetting at matched learning, with bootstrap SEs."""
    tokens = tuple(sorted({p.tokens for p in a.points + b.points}))
    ca = curve([p.learning for p in a.points], [p.forgetting for p in a.points])
    cb = curve([p.learning for p in b.points], [p.forgetting for p in b.points])
    reach = (float(ca[0][-1]), float(cb[0][-1]))
    shared = min(reach)
    common = dict(a=a.name, b=b.name, reach=reach, tokens=tokens,
                  curve_a=_curve_points(a.points), curve_b=_curve_points(b.points))
    if not a.points or not b.points:
        return MatchedComparison(levels=(), reason="a family has no eval point", **common)
    if shared <= 0:
        return MatchedComparison(levels=(), reason="a family learned nothing (its front never "
                                 "rises above the base model), so no learning level is shared",
                                 **common)
    out = []
    n_boot = a.learn.shape[0]
    replicate_curves = [(curve(a.learn[r], a.forget[r]), curve(b.learn[r], b.forget[r]))
                        for r in range(n_boot)]
    for fraction in levels:
        x = shared * fraction
        fa, fb = interpolate(*ca, x), interpolate(*cb, x)
        diffs = np.empty(n_boot)
        for r in range(n_boot):
            # Each replicate reads its own curves at the same fraction of its own shared
            # reach, so no curve is read past its end.
            ra, rb = replicate_curves[r]
            at = min(ra[0][-1], rb[0][-1]) * fraction
            diffs[r] = interpolate(*ra, at) - interpolate(*rb, at) if at > 0 else math.nan
        finite = diffs[np.isfinite(diffs)]
        se = float(finite.std(ddof=1)) if finite.size > 1 else math.nan
        out.append(MatchedLevel(x, fa, fb, Estimate(fa - fb, se, how)))
    return MatchedComparison(levels=tuple(out), **common)


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
        for level in c.levels:
            sign = level.difference.sign()
            state = ("forgets less" if sign < 0 else "forgets more" if sign > 0
                     else "not distinguishable")
            table.append((c.a, c.b, f"{level.learning:+.3f}", f"{level.forgetting_a:+.3f}",
                          f"{level.forgetting_b:+.3f}", level.difference.text(), state))
    return table


HEADER = ("family", "vs", "matched learning", "its forgetting", "reference's forgetting",
          "difference ± SE", "at matched learning")

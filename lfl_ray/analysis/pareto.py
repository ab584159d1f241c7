"""Learning-vs-forgetting Pareto fronts: which (trial, milestone) points nobody beats.

A point is dominated when another has learning >= and forgetting <= with at least one
strict; equal points do not dominate each other, so duplicates are all kept. Fronts are
computed over every milestone of every usable trial, overall and per method family
(the ``lfl.family`` tag, LoRA by rank, LoRA by targets).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np

from lfl_ray.analysis.runs import Sweep, Trial, config_labels
from lfl_ray.errors import require_choice

GROUPINGS = ("family", "rank", "targets")


def non_dominated(learning: Sequence[float], forgetting: Sequence[float]) -> np.ndarray:
    """Boolean mask of the points on the front (learning up, forgetting down); O(n log n).

    Points with a nan coordinate are never on the front and never dominate.
    """
    learn = np.asarray(learning, dtype=float)
    forget = np.asarray(forgetting, dtype=float)
    if learn.shape != forget.shape:
        raise ValueError(f"learning and forgetting differ in length: {learn.shape} vs {forget.shape}")
    mask = np.zeros(learn.shape, dtype=bool)
    valid = np.flatnonzero(np.isfinite(learn) & np.isfinite(forget))
    # Descending learning; within a learning value, the group is handled at once.
    order = valid[np.lexsort((forget[valid], -learn[valid]))]
    best_before = math.inf  # lowest forgetting among points with strictly higher learning
    start = 0
    while start < order.size:
        stop = start
        while stop < order.size and learn[order[stop]] == learn[order[start]]:
            stop += 1
        group = order[start:stop]
        group_min = forget[group].min()
        for index in group:
            f = forget[index]
            mask[index] = not (best_before <= f or group_min < f)
        best_before = min(best_before, group_min)
        start = stop
    return mask


@dataclass(frozen=True)
class Point:
    """One trial at one milestone."""

    trial: Trial
    label: str
    tokens: int
    learning: float
    learning_se: float
    forgetting: float
    forgetting_se: float


def points(trials: Iterable[Trial]) -> list[Point]:
    """Every milestone of every trial as a point, labelled by configuration."""
    trials = list(trials)
    labels = config_labels(trials)
    out = []
    for trial in trials:
        for m in trial.milestones:
            if math.isfinite(m.learning) and math.isfinite(m.forgetting):
                out.append(Point(trial, labels[trial.trial_id], m.tokens, m.learning,
                                 m.learning_se, m.forgetting, m.forgetting_se))
    return out


def front(pts: Sequence[Point]) -> list[Point]:
    """The non-dominated points, by increasing forgetting."""
    mask = non_dominated([p.learning for p in pts], [p.forgetting for p in pts])
    chosen = [p for p, keep in zip(pts, mask) if keep]
    return sorted(chosen, key=lambda p: (p.forgetting, -p.learning))


def group_key(by: str) -> Callable[[Trial], str]:
    """How trials are grouped for per-family fronts: ``family``, ``rank`` or ``targets``."""
    require_choice("by", by, GROUPINGS)
    if by == "family":
        return lambda t: t.family
    if by == "rank":
        return lambda t: f"lora r={t.rank}" if t.is_lora else t.family
    return lambda t: f"lora {t.targets}" if t.is_lora else t.family


def fronts_by(pts: Sequence[Point], by: str) -> dict[str, list[Point]]:
    """The front within each group of ``by``."""
    key = group_key(by)
    groups: dict[str, list[Point]] = {}
    for p in pts:
        groups.setdefault(key(p.trial), []).append(p)
    return {name: front(members) for name, members in sorted(groups.items())}


def best_within_budget(pts: Sequence[Point], budget: float) -> Point | None:
    """The point that learns most among those with forgetting <= ``budget``."""
    allowed = [p for p in front(pts) if p.forgetting <= budget]
    return max(allowed, key=lambda p: p.learning) if allowed else None


def _se(value: float) -> str:
    return f" ± {value:.3f}" if math.isfinite(value) else ""


def front_rows(pts: Sequence[Point]) -> list[list[str]]:
    return [[p.label, p.trial.trial_id, f"{p.tokens:,}", f"{p.learning:+.3f}{_se(p.learning_se)}",
             f"{p.forgetting:+.3f}{_se(p.forgetting_se)}"] for p in pts]


FRONT_HEADER = ["config", "trial", "tokens", "learning", "forgetting"]


def pareto_markdown(sweep: Sweep) -> str:
    """The overall front and the front of each family grouping, as markdown tables."""
    from lfl_ray.analysis.tables import markdown_table

    pts = points(sweep.usable)
    if not pts:
        return f"No trial of `{sweep.name}` reached an eval milestone.\n"
    lines = [f"## Pareto front of `{sweep.name}` (learning up, forgetting down)", "",
             f"{len(pts)} points from {len(sweep.usable)} trials; "
             f"{sum(non_dominated([p.learning for p in pts], [p.forgetting for p in pts]))} "
             "are non-dominated.", "", markdown_table(FRONT_HEADER, front_rows(front(pts))), ""]
    for by in GROUPINGS:
        lines += [f"### Fronts by {by}", ""]
        rows = []
        for name, members in fronts_by(pts, by).items():
            rows += [[name] + row for row in front_rows(members)]
        lines += [markdown_table(["group"] + FRONT_HEADER, rows), ""]
    return "\n".join(lines)

"""Trials grouped into configurations (the seeds of one setting) and compared with SEs.

A configuration's number at a token count is the mean over its seeds with the seed spread
as SE when it has two or more seeds, else the trial's own logged SE. Two single-seed
configurations are compared on the same eval items (paired SE, from the per-item
``evals/milestone_<tokens>.json``); when those are missing the SEs add in quadrature.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

from lfl_ray.analysis.runs import Sweep, Trial, config_labels, load_eval
from lfl_ray.analysis.uncertainty import Estimate, mean_se, unpaired_difference
from lfl_ray.mlflow_schema import METRIC_PARAM, Metric, change_se_metric


@dataclass(frozen=True)
class Config:
    """One configuration: every seed of one setting."""

    label: str
    trials: tuple[Trial, ...]

    @property
    def first(self) -> Trial:
        return self.trials[0]

    @property
    def family(self) -> str:
        return self.first.family

    @property
    def method(self) -> str:
        return self.first.method

    @property
    def is_lora(self) -> bool:
        return self.first.is_lora

    @property
    def lr(self):
        return self.first.lr

    @property
    def rank(self):
        return self.first.rank

    @property
    def alpha(self):
        return self.first.alpha

    @property
    def targets(self):
        return self.first.targets

    @property
    def final_tokens(self) -> int:
        """Largest milestone every seed reached."""
        return min(t.final.tokens for t in self.trials)

    def tokens(self) -> list[int]:
        """Milestones every seed reached."""
        common = set(m.tokens for m in self.first.milestones)
        for trial in self.trials[1:]:
            common &= {m.tokens for m in trial.milestones}
        return sorted(common)

    def estimate(self, metric: str, tokens: int | None = None) -> Estimate:
        """``metric`` (``learning``, ``forgetting`` or any eval metric) at ``tokens`` (default final)."""
        tokens = self.final_tokens if tokens is None else tokens
        milestones = [t.at(tokens) for t in self.trials]
        values = [m.metrics.get(metric, float("nan")) if m else float("nan") for m in milestones]
        if len(self.trials) >= 2:
            mean, se = mean_se(values)
            return Estimate(mean, se, f"seeds (n={len(self.trials)})")
        milestone = milestones[0]
        se = milestone.metrics.get(change_se_metric(metric), float("nan")) if milestone else float("nan")
        return Estimate(values[0], se, "eval items")


def group_configs(trials: Iterable[Trial]) -> list[Config]:
    """Configurations in first-seen order; trials that differ only in seed share one."""
    trials = [t for t in trials if t.milestones]
    labels = config_labels(trials)
    groups: dict[tuple, list[Trial]] = {}
    for trial in trials:
        groups.setdefault(trial.config_key, []).append(trial)
    return [Config(labels[members[0].trial_id], tuple(members)) for members in groups.values()]


def common_tokens(a: Config, b: Config) -> int | None:
    """Largest milestone both configurations reached."""
    shared = set(a.tokens()) & set(b.tokens())
    return max(shared) if shared else None


def paired(sweep: Sweep, a: Trial, b: Trial, metric_param: str, tokens: int) -> Estimate | None:
    """SE of ``a - b`` for the metric named by param ``metric_param``, paired over the eval
    items of both trials' ``evals/milestone_<tokens>.json`` (the evaluator's own pairing:
    clustered by document; ``mc_mean`` combines its three tasks). None when not possible."""
    from lfl_ray.eval.milestone import paired_difference as eval_paired_difference
    from lfl_ray.eval.result import EvalResult

    metric = a.params.get(metric_param)
    if not metric or metric != b.params.get(metric_param):
        return None
    results = [load_eval(sweep, t.run_id, tokens) for t in (a, b)]
    if not all(results):
        return None
    ra, rb = (EvalResult.from_json(r) for r in results)
    try:
        value, se = eval_paired_difference(ra, rb, metric)
    except (KeyError, ValueError):  # no per-item values, or different items
        return None
    n = len(ra.items.get(metric, ())) or sum(len(v) for v in ra.items.values())
    return Estimate(value, se, f"paired over {n} items")


def compare(sweep: Sweep, a: Config, b: Config, metric: str,
            tokens: int | None = None) -> tuple[Estimate, int | None]:
    """``a - b`` for ``metric`` at their largest shared milestone, with the best SE available.

    Seeds on both sides: seed spread. One seed each: paired over the eval items when both
    per-item files hold the underlying metric (``learning_metric`` / ``forgetting_metric``),
    else unpaired. Returns the estimate and the token count it was taken at.
    """
    tokens = tokens if tokens is not None else common_tokens(a, b)
    if tokens is None:
        ea, eb = a.estimate(metric), b.estimate(metric)
        return unpaired_difference(ea, eb), None
    ea, eb = a.estimate(metric, tokens), b.estimate(metric, tokens)
    if len(a.trials) >= 2 and len(b.trials) >= 2:
        diff = unpaired_difference(ea, eb)
        return Estimate(diff.value, diff.se, "seed spread"), tokens
    if metric in Metric.PRIMARY and len(a.trials) == 1 and len(b.trials) == 1:
        pair = paired(sweep, a.first, b.first, METRIC_PARAM[metric], tokens)
        if pair is not None and math.isfinite(pair.se):
            # The logged difference is exact; the items give its noise (the SE is sign-free).
            return Estimate(ea.value - eb.value, pair.se, pair.how), tokens
    return unpaired_difference(ea, eb), tokens


def best(configs: Iterable[Config], metric: str = Metric.LEARNING) -> Config | None:
    """The configuration with the highest ``metric`` among those that went furthest."""
    configs = [c for c in configs if math.isfinite(c.estimate(metric).value)]
    if not configs:
        return None
    furthest = max(c.final_tokens for c in configs)
    finalists = [c for c in configs if c.final_tokens == furthest]
    return max(finalists, key=lambda c: c.estimate(metric).value)

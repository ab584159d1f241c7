"""Learning and forgetting evaluations, paired against the base model.

Public API: ``EvalSpec`` (what to evaluate), ``EvalResult`` (metrics + per-item values),
``MilestoneEvaluator`` (base once, cached; trials in place; ``compare``) and
``paired_difference`` (two results on the same items -> mean difference and paired SE).
"""

from lfl_ray.eval.milestone import MilestoneEvaluator, paired_difference
from lfl_ray.eval.result import EvalResult
from lfl_ray.eval.spec import SUITES, EvalSpec

__all__ = ["EvalResult", "EvalSpec", "MilestoneEvaluator", "SUITES", "paired_difference"]

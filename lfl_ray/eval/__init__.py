"""Learning and forgetting evaluations, paired against the base model.

Public API: ``EvalSpec`` (what to evaluate), ``EvalResult`` (metrics + per-item values),
``MilestoneEvaluator`` (base once, cached; trials in place; ``compare``) and
``paired_difference`` (two results on the same items -> mean difference and paired SE);
``register_suite`` adds a suite (``registry``'s docstring says how).
"""

from lfl_ray.eval.milestone import MilestoneEvaluator, paired_difference
from lfl_ray.eval.result import EvalResult
from lfl_ray.eval.registry import Suite, register_suite, suite_names
from lfl_ray.eval.spec import CustomEval, EvalSpec

__all__ = ["CustomEval", "EvalResult", "EvalSpec", "MilestoneEvaluator", "Suite",
           "paired_difference", "register_suite", "suite_names"]

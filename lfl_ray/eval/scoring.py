"""What every suite's scorer shares: the per-item summary and the model behind a backend."""

from __future__ import annotations

from lfl_ray.errors import ConfigError
from lfl_ray.eval.backend import HFBackend
from lfl_ray.eval.result import EvalResult
from lfl_ray.eval.stats import mean_se

N_SAMPLES_KEPT = 3
"""Generations kept per suite in EvalResult.samples."""


def summarize(result: EvalResult, metric: str, values: list[float], groups: list[str]) -> None:
    """Record ``metric``'s per-item values, their mean and clustered SE in ``result``."""
    mean, se = mean_se(values, groups)
    result.metrics[metric] = mean
    result.metrics[f"{metric}_se"] = se
    result.items[metric] = [float(v) for v in values]
    result.groups[metric] = [str(g) for g in groups]


def hf_model(backend, suite: str):
    """The Hugging Face model behind ``backend`` (loss suites score with the model itself)."""
    backend = getattr(backend, "inner", backend)  # a ScriptedBackend scores with its model
    if not isinstance(backend, HFBackend):
        raise ConfigError("suite", suite, "loss and drift suites need the Hugging Face backend")
    return backend.model

"""Run one suite on one model: pick its fixed items, query the backend, score, summarize.

The suites themselves are registered in ``lfl_ray.eval.registry`` (their definitions live
in ``lfl_ray/eval/catalog/``); this module is what every suite shares: looking a suite up
and running it, the join of loss shards across ranks, and
the aggregates (``mc_mean``). A suite's items depend only on the spec (limit, seed) and
the data, never on the model, so the base model and every trial are scored on the same
items in the same order.
"""

from __future__ import annotations

import math

import numpy as np

from lfl_ray.eval.items import fingerprint, tensor_fingerprint
from lfl_ray.eval.result import EvalResult
from lfl_ray.eval.scoring import summarize


def load_items(suite: str, spec, *, heldout=None, general=None):
    """The fixed (seeded) subset of a suite's items: TokenBlocks for loss suites, else a list."""
    from lfl_ray.eval.registry import get_suite

    return get_suite(suite, spec).load(spec, heldout=heldout, general=general)


def run_suite(suite: str, backend, spec, items, *, drift_ref=None) -> EvalResult:
    """Evaluate one suite on ``items`` (from ``load_items``) through ``backend``."""
    from lfl_ray.eval.registry import get_suite

    return get_suite(suite, spec).run(backend, spec, items, drift_ref)


def items_fingerprint(items) -> str:
    """Hash of what a suite evaluates (for the base-result cache key)."""
    if hasattr(items, "input_ids"):
        return tensor_fingerprint(items.input_ids, items.labels, items.attention_mask)
    return fingerprint([getattr(i, "__dict__", i) for i in items])


LOSS_METRICS = ("heldout_loss", "general_loss", "drift_kl", "heldout_kl")
"""The per-block metrics the loss suites record."""


def join_loss_shards(parts: list[EvalResult]) -> EvalResult:
    """One result from the loss-suite results of every rank's contiguous shard (in rank
    order): per-block values concatenated, then mean, clustered SE and perplexity
    recomputed over all blocks, as if one rank had scored them."""
    result = EvalResult()
    for metric in LOSS_METRICS:
        if not any(metric in part.items for part in parts):
            continue
        values = [v for part in parts for v in part.items.get(metric, [])]
        groups = [g for part in parts for g in part.groups.get(metric, [])]
        summarize(result, metric, values, groups)
        if metric.endswith("_loss"):
            result.metrics[metric.replace("_loss", "_ppl")] = math.exp(result.metrics[metric])
    return result


def add_aggregates(result: EvalResult) -> None:
    """Each registered aggregate (the paper's ``mc_mean``: mean headline accuracy of the
    three MC tasks) whose parts are all in ``result``, with the SE of a mean of independent
    parts."""
    from lfl_ray.eval.registry import aggregates

    for aggregate in aggregates().values():
        names = aggregate.metrics()
        if all(n in result.metrics for n in names):
            result.metrics[aggregate.name] = float(np.mean([result.metrics[n] for n in names]))
            result.metrics[f"{aggregate.name}_se"] = float(
                math.sqrt(sum(result.metrics[f"{n}_se"] ** 2 for n in names)) / len(names))

"""Multiple-choice scoring by log-likelihood, as lm-evaluation-harness does it.

Each item offers choices as (context, continuation) pairs. ``acc`` picks the choice with
the highest summed log-probability; ``acc_norm`` divides it by the continuation's length in
UTF-8 bytes first (byte-length normalization, so scores do not depend on the tokenizer and
non-ASCII text is not favoured). ``margin`` is the continuous signal that moves long before
accuracy does: the gold choice's score minus the best other choice's score, using the same
score as the task's headline accuracy (per-byte for acc_norm tasks, raw for WinoGrande).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lfl_ray.eval.result import EvalResult
from lfl_ray.eval.stats import mean_se


@dataclass(frozen=True)
class MCItem:
    """One multiple-choice question."""

    id: str
    """Stable id (the dataset's own id or index)."""
    contexts: tuple[str, ...]
    """Context of each choice (the same for all, except WinoGrande's partial scoring)."""
    continuations: tuple[str, ...]
    """Text scored under each context (with its leading space)."""
    gold: int
    """Index of the right choice."""
    group: str
    """Source document, for clustered SEs (items from one source are not independent)."""


def choice_scores(backend, items: list[MCItem], desc: str) -> list[np.ndarray]:
    """Summed log-probability of every choice of every item."""
    requests = [(c, x) for item in items for c, x in zip(item.contexts, item.continuations)]
    flat = backend.loglikelihood(requests, desc=desc)
    out, i = [], 0
    for item in items:
        k = len(item.continuations)
        out.append(np.array(flat[i:i + k], dtype=np.float64))
        i += k
    return out


def byte_lengths(item: MCItem) -> np.ndarray:
    return np.array([max(1, len(c.encode("utf-8"))) for c in item.continuations], dtype=np.float64)


def margin(scores: np.ndarray, gold: int) -> float:
    """Gold score minus the best other score (positive: the model prefers the gold)."""
    others = np.delete(scores, gold)
    return float(scores[gold] - others.max())


def score_items(name: str, items: list[MCItem], lls: list[np.ndarray], *,
                headline: str = "acc_norm") -> EvalResult:
    """Per-item acc, acc_norm and margin, their means and clustered SEs, as an EvalResult."""
    acc, acc_norm, margins = [], [], []
    for item, ll in zip(items, lls):
        norm = ll / byte_lengths(item)
        acc.append(float(np.argmax(ll) == item.gold))
        acc_norm.append(float(np.argmax(norm) == item.gold))
        margins.append(margin(norm if headline == "acc_norm" else ll, item.gold))
    groups = [item.group for item in items]
    result = EvalResult()
    values = {"acc": acc, "margin": margins}
    if headline == "acc_norm":
        values["acc_norm"] = acc_norm
    for key, vals in values.items():
        metric = f"{name}_{key}"
        mean, se = mean_se(vals, groups)
        result.metrics[metric] = mean
        result.metrics[f"{metric}_se"] = se
        result.items[metric] = vals
        result.groups[metric] = groups
    return result

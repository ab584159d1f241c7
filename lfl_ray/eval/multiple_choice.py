"""Multiple-choice scoring by log-likelihood, equal to lm-evaluation-harness 0.4.13 per document.

Each item offers choices as (context, continuation) pairs, built as lm-eval builds its
requests (``context``, ``" " + choice``). ``acc`` picks the choice with the highest summed
log-probability; ``acc_norm`` divides each score by the number of characters of the bare
choice first (lm-eval's ``len(choice)``: no leading space, characters not bytes).
``margin`` is the continuous signal that moves long before accuracy does: the gold choice's
score minus the best other choice's score, using the same score as the task's headline
accuracy (per character for acc_norm tasks, raw for WinoGrande).

Standard errors: ``<metric>_stderr`` is lm-eval's (``std(ddof=1) / sqrt(n)`` over items),
``<metric>_se`` is the same number under the name every lfl-ray reader uses, and
``<metric>_clustered_se`` is clustered by source document (HellaSwag's items share
ActivityNet/WikiHow sources). Paired differences against the base model
(``milestone.paired_difference``) are clustered by the same documents.
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
    choices: tuple[str, ...] | None = None
    """lm-eval's ``doc_to_choice``: the bare choice texts whose characters ``acc_norm``
    divides by. None: the continuations without their leading space (lm-eval's
    ``target_delimiter``)."""

    def choice_texts(self) -> tuple[str, ...]:
        if self.choices is not None:
            return self.choices
        return tuple(c.removeprefix(" ") for c in self.continuations)


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


def char_lengths(item: MCItem) -> np.ndarray:
    """lm-eval's ``completion_len``: characters of each bare choice."""
    return np.array([float(len(c)) for c in item.choice_texts()], dtype=np.float64)


def normalized(ll: np.ndarray, item: MCItem) -> np.ndarray:
    """Scores per character of the bare choice (numpy's division, as lm-eval does it)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(ll, dtype=np.float64) / char_lengths(item)


def margin(scores: np.ndarray, gold: int) -> float:
    """Gold score minus the best other score (positive: the model prefers the gold)."""
    others = np.delete(scores, gold)
    return float(scores[gold] - others.max())


def predictions(item: MCItem, ll: np.ndarray) -> tuple[int, int]:
    """(pred, pred_norm): lm-eval's ``argmax(lls)`` and ``argmax(lls / completion_len)``."""
    return int(np.argmax(ll)), int(np.argmax(normalized(ll, item)))


def score_items(name: str, items: list[MCItem], lls: list[np.ndarray], *,
                headline: str = "acc_norm") -> EvalResult:
    """Per-item acc, acc_norm and margin, their means and SEs (plain and clustered)."""
    acc, acc_norm, margins = [], [], []
    for item, ll in zip(items, lls):
        pred, pred_norm = predictions(item, ll)
        acc.append(float(pred == item.gold))
        acc_norm.append(float(pred_norm == item.gold))
        margins.append(margin(normalized(ll, item) if headline == "acc_norm" else ll, item.gold))
    groups = [item.group for item in items]
    result = EvalResult()
    values = {"acc": acc, "margin": margins}
    if headline == "acc_norm":
        values["acc_norm"] = acc_norm
    for key, vals in values.items():
        metric = f"{name}_{key}"
        mean, stderr = mean_se(vals)
        result.metrics[metric] = mean
        result.metrics[f"{metric}_stderr"] = stderr
        result.metrics[f"{metric}_se"] = stderr
        result.metrics[f"{metric}_clustered_se"] = mean_se(vals, groups)[1]
        result.items[metric] = vals
        result.groups[metric] = groups
    return result

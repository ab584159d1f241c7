"""Capacity accounting: trainable parameters, tokens trained, and whether LoRA can fall short.

*LoRA Without Regret* (Schulman et al. 2025) finds LoRA matches full finetuning until the
data holds more than the adapter can store; only then do low ranks fall off the full-FT
curve. So a sweep can show "LoRA learns less" only where its LoRA configurations are near
or past capacity. Per trial this module gives the trainable parameters (the logged
``trainable_params``; else computed from the model's config, the rank and the targets), the
tokens trained (the ``tokens`` metric, the last training step, or the last milestone) and
their ratio, and places each LoRA configuration on a capacity axis:

    capacity use = tokens x BITS_PER_TOKEN / (trainable params x BITS_PER_PARAM)

with about 2 bits stored per parameter (Allen-Zhu & Li's knowledge-capacity estimate, which
*LoRA Without Regret* uses) and at most about 1 bit of new information per training token
(an upper-end guess: finetuning rarely lowers the loss by more than ~0.7 nats/token). It is
an order-of-magnitude axis, not a measurement: below ``FAR_BELOW`` the adapter is far from
capacity-limited and no gap to full FT is predicted; from 1 on a gap is expected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from lfl_ray.analysis.runs import Sweep, Trial, config_labels
from lfl_ray.mlflow_schema import Metric, Param

BITS_PER_PARAM = 2.0
"""Information a trained parameter stores (Allen-Zhu & Li 2024: about 2 bits)."""
BITS_PER_TOKEN = 1.0
"""New information a training token carries at most (a generous guess; see the module doc)."""
FAR_BELOW = 0.1
"""Capacity use below this: far from capacity-limited (LoRA Without Regret: no gap)."""
LIMITED = 1.0
"""Capacity use from this on: capacity-limited (a gap to full FT is expected)."""
FAR, NEAR, AT = "far from capacity-limited", "near capacity", "capacity-limited"


def lora_params(model: str, rank: int, targets: str, *, use_dora: bool = False) -> int | None:
    """Trainable parameters of a LoRA adapter from the model's config alone (None when the
    config is not available offline or the targets match nothing)."""
    from lfl_ray.errors import ConfigError
    from lfl_ray.model_config import linear_layers, load_config, preset_targets

    try:
        config = load_config(model)
        if config is None:
            return None
        shapes = linear_layers(config)
        names = (preset_targets(config, targets) if targets in ("attention", "mlp", "all")
                 else [n for n in str(targets).replace(",", "+").split("+") if n])
    except (ConfigError, OSError, ValueError, TypeError):
        return None
    layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", None)
    if not layers or any(n not in shapes for n in names):
        return None
    per_layer = sum(rank * (shapes[n][0] + shapes[n][1]) + (shapes[n][1] if use_dora else 0)
                    for n in names)
    return int(per_layer * layers)


def full_params(model: str) -> int | None:
    """Parameters of the whole model from its config (None when not available offline)."""
    from lfl_ray.model_config import load_config, parameter_count

    try:
        config = load_config(model)
        return parameter_count(config) if config is not None else None
    except Exception:  # a config transformers cannot build: the count is simply unknown
        return None


@dataclass(frozen=True)
class TrialCapacity:
    """One trial on the capacity axis."""

    trial: Trial
    label: str
    trainable_params: int | None
    params_from: str
    """``logged`` (the trial's ``trainable_params`` metric) or ``config`` (computed)."""
    tokens: int | None
    tokens_from: str
    """``tokens metric``, ``last training step``, ``last milestone`` or ``budget``."""

    @property
    def tokens_per_param(self) -> float:
        if not self.trainable_params or not self.tokens:
            return math.nan
        return self.tokens / self.trainable_params

    @property
    def capacity_use(self) -> float:
        return self.tokens_per_param * BITS_PER_TOKEN / BITS_PER_PARAM

    @property
    def state(self) -> str:
        use = self.capacity_use
        if not math.isfinite(use):
            return "unknown"
        return FAR if use < FAR_BELOW else AT if use >= LIMITED else NEAR


def _flag(text) -> bool:
    return str(text).strip().lower() in ("true", "1", "yes")


def trial_capacity(trial: Trial, label: str = "", budget_tokens: int | None = None) -> TrialCapacity:
    """A trial's trainable parameters and tokens, from what was logged or else computed."""
    logged = trial.summary.get(Metric.TRAINABLE_PARAMS)
    if logged and math.isfinite(logged) and logged > 0:
        params, params_from = int(logged), "logged"
    else:
        model = str(trial.params.get(Param.MODEL, ""))
        params = (lora_params(model, trial.rank, trial.targets or "all",
                              use_dora=_flag(trial.params.get(Param.USE_DORA)))
                  if trial.is_lora and trial.rank else full_params(model))
        params_from = "config" if params else "unknown"
    tokens = trial.trained_tokens
    tokens_from = ("tokens metric" if "tokens" in trial.summary else "last training step"
                   if Metric.TRAIN_LOSS in trial.summary else "last milestone")
    if tokens is None and budget_tokens:
        tokens, tokens_from = budget_tokens, "budget"
    return TrialCapacity(trial, label or trial.trial_id, params, params_from, tokens, tokens_from)


def budget_tokens(sweep: Sweep) -> int | None:
    """Tokens per trial from the parent's flattened spec (``budget.*``), if it says."""
    spec = sweep.spec
    for key in ("budget.total_tokens", "budget.tokens"):
        if key in spec:
            try:
                return int(float(spec[key]))
            except ValueError:
                pass
    try:
        return (int(spec["budget.steps"]) * int(spec["budget.global_batch_size"])
                * int(spec["budget.seq_len"]))
    except (KeyError, ValueError):
        return None


def sweep_capacity(sweep: Sweep) -> list[TrialCapacity]:
    """Every usable trial on the capacity axis."""
    labels = config_labels(sweep.usable)
    budget = budget_tokens(sweep)
    return [trial_capacity(t, labels[t.trial_id], budget) for t in sweep.usable]


def rows(capacities: Sequence[TrialCapacity]) -> list[tuple]:
    table = []
    for c in capacities:
        ratio = c.tokens_per_param
        table.append((c.label, c.trial.trial_id,
                      f"{c.trainable_params:,}" if c.trainable_params else "?", c.params_from,
                      f"{c.tokens:,}" if c.tokens else "?", c.tokens_from,
                      f"{ratio:.3g}" if math.isfinite(ratio) else "?",
                      f"{c.capacity_use:.3g}" if math.isfinite(c.capacity_use) else "?",
                      c.state if c.trial.is_lora else "-"))
    return table


HEADER = ("config", "trial", "trainable params", "from", "tokens trained", "from",
          "tokens / param", "capacity use", "LoRA capacity")


def placement(capacities: Sequence[TrialCapacity]) -> dict:
    """Where the sweep's LoRA trials sit on the capacity axis, and what that predicts."""
    lora = [c for c in capacities if c.trial.is_lora and math.isfinite(c.capacity_use)]
    if not lora:
        return {"lora_trials": 0, "text": "No LoRA trial with known trainable parameters and "
                "tokens: the sweep cannot be placed on the capacity axis."}
    uses = [c.capacity_use for c in lora]
    states = {s: sum(c.state == s for c in lora) for s in (FAR, NEAR, AT)}
    lo, hi = min(uses), max(uses)
    if states[AT] == 0 and states[NEAR] == 0:
        verdict = (f"every LoRA configuration is {FAR} (capacity use {lo:.2g}-{hi:.2g}, under "
                   f"{FAR_BELOW:g}): LoRA Without Regret predicts no learning gap to full FT at "
                   "this budget, so \"LoRA learns less\" cannot show here; train on more tokens "
                   "or use lower ranks to reach capacity")
    elif states[AT]:
        verdict = (f"{states[AT]} of {len(lora)} LoRA trials are {AT} (capacity use up to "
                   f"{hi:.2g}): a learning gap to full FT is expected for them")
    else:
        verdict = (f"the LoRA trials are {NEAR} at most (capacity use {lo:.2g}-{hi:.2g}): a gap "
                   "may just begin to show")
    low_rank = min(c.trial.rank or 0 for c in lora)
    lowest = max((c for c in lora if (c.trial.rank or 0) == low_rank), key=lambda c: c.capacity_use)
    return {"lora_trials": len(lora), "capacity_use_min": lo, "capacity_use_max": hi,
            "counts": states, "lowest_rank": lowest.trial.rank,
            "lowest_rank_state": lowest.state, "text": verdict[0].upper() + verdict[1:] + "."}

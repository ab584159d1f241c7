"""How a sweep picks its trials: a registry of searches, each one factory.

A search turns a validated ``SweepSpec`` into a ``SearchPlan``: Ray Tune's param space and
search algorithm, how many trials, the trials it will run when they are known in advance
(grid), and the lines ``--dry-run`` prints to say what it will do. Samplers (optuna,
pareto) draw a method, a learning rate on a log scale within the grids' range, a rank and a
target set; every sample is its own trial with its own key, MLflow run and storage.

To add a search: write ``def my_search(spec) -> SearchPlan`` and call
``register_search("name", my_search)`` (in this module, or in your own before the sweep
runs); ``search: name`` in a study file then selects it and ``--dry-run`` prints its plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from lfl_ray.errors import ConfigError
from lfl_ray.methods import Full
from lfl_ray.sweep.trials import TrialSpec, lora_trial, targets_label

OBJECTIVE = ("learning", "max")
"""What single-objective searches and ASHA optimize: the milestone's ``learning`` metric."""
TRADE_OFF = (("learning", "forgetting"), ("max", "min"))
"""What the Pareto search optimizes: learn more and forget less."""


@dataclass
class SearchPlan:
    """What Ray Tune is given, and what a reader is told about it."""

    param_space: dict
    """Ray Tune's param space: ``{"trial": grid_search([...])}`` or ``{"sample": {...}}``."""
    num_samples: int
    """Tune's num_samples (1 for a grid: the grid is the trial list)."""
    search_alg: Any = None
    """A Ray Tune Searcher, or None (variant generation: the grid)."""
    trials: list[TrialSpec] | None = None
    """The trials, when known before the sweep runs (grid); None for samplers."""
    description: list[str] = field(default_factory=list)
    """Lines printed by --dry-run and before every sweep."""
    columns: dict = field(default_factory=dict)
    """Config path -> header of the columns Tune's progress table shows for each trial."""


SEARCHES: dict[str, Callable[[Any], SearchPlan]] = {}
"""Registered searches by the name a study file uses."""


def register_search(name: str, factory: Callable[[Any], SearchPlan]) -> None:
    """Make ``search: name`` select ``factory(spec) -> SearchPlan``."""
    SEARCHES[name] = factory


def plan_search(spec) -> SearchPlan:
    if spec.search not in SEARCHES:
        raise ConfigError("search", spec.search, f"must be one of {sorted(SEARCHES)}")
    return SEARCHES[spec.search](spec)


def grid(spec) -> SearchPlan:
    """Every combination of every grid's lists, once per seed."""
    from ray import tune

    trials = spec.trials()
    return SearchPlan({"trial": tune.grid_search([t.key for t in trials]), **table_columns(trials)}, 1,
                      trials=trials, columns={name: name for name in TABLE_COLUMNS},
                      description=[f"search grid: {len(trials)} trials, every combination of the grids"])


TABLE_COLUMNS = ("method", "lr", "rank", "targets")
"""What Tune's progress table shows of each grid trial, one column each."""


def table_columns(trials: list[TrialSpec]) -> dict:
    """Derived config entries (``sample_from`` of the grid's trial key) that Tune's progress
    table shows as columns: method, lr, rank and targets instead of a truncated dict. The
    trial itself is its key (``trial_of_config`` looks it up in the spec)."""
    from ray import tune

    rows = {t.key: t.params() for t in trials}

    def column(name):
        return tune.sample_from(lambda s: rows[s.config["trial"]].get(name, "-"))

    return {name: column(name) for name in TABLE_COLUMNS}


def _log_range(lrs) -> tuple[float, float]:
    low, high = min(lrs), max(lrs)
    return low, high * 1.0001 if low == high else high  # loguniform needs low < high


def sample_space(spec) -> dict[str, Any]:
    """What the samplers draw: method x learning rate (log scale, per method) x rank x targets."""
    from ray import tune

    methods = (["full"] if spec.full else []) + (["lora"] if spec.lora else [])
    space: dict[str, Any] = {"method": tune.choice(methods), "seed": tune.choice(list(spec.seeds))}
    if spec.full:
        space["lr_full"] = tune.loguniform(*_log_range([lr for g in spec.full for lr in g.lrs]))
    if spec.lora:
        space["lr_lora"] = tune.loguniform(*_log_range([lr for g in spec.lora for lr in g.lrs]))
        space["rank"] = tune.choice(sorted({r for g in spec.lora for r in g.ranks}))
        space["targets"] = tune.choice(sorted({targets_label(t) for g in spec.lora for t in g.targets}))
    return space


def trial_of_sample(spec, sample: dict) -> TrialSpec:
    """The trial of one sample; settings the sampler does not draw come from the first grid."""
    if sample["method"] == "full":
        g = spec.full[0]
        return TrialSpec(Full(), float(sample["lr_full"]), int(sample["seed"]), g.weight_decays[0],
                         g.attention_dropouts[0], g.hidden_dropouts[0])
    targets = next(t for g in spec.lora for t in g.targets if targets_label(t) == sample["targets"])
    g = spec.lora[0]
    return lora_trial(g, sample["rank"], sample["lr_lora"], targets, g.dropouts[0], g.use_dora[0],
                      g.loraplus_ratios[0], g.weight_decays[0], g.hiddenkey[0], sample["seed"])


def _describe_space(spec) -> list[str]:
    lines = []
    if spec.full:
        low, high = min(lr for g in spec.full for lr in g.lrs), max(lr for g in spec.full for lr in g.lrs)
        lines.append(f"  full FT: lr log-uniform in [{low:.3g}, {high:.3g}]")
    if spec.lora:
        low, high = min(lr for g in spec.lora for lr in g.lrs), max(lr for g in spec.lora for lr in g.lrs)
        ranks = sorted({r for g in spec.lora for r in g.ranks})
        targets = sorted({targets_label(t) for g in spec.lora for t in g.targets})
        lines.append(f"  LoRA: lr log-uniform in [{low:.3g}, {high:.3g}], rank in {ranks}, targets in {targets}")
    lines.append(f"  seeds {list(spec.seeds)}; other settings from the first grid of each method")
    return lines


def _sampler(spec, *, multi: bool) -> SearchPlan:
    from ray.tune.search.optuna import OptunaSearch

    from lfl_ray.sweep.milestone_searcher import MilestoneResults

    if multi:
        metric, mode = list(TRADE_OFF[0]), list(TRADE_OFF[1])
        goal = "the Pareto front of learning (max) and forgetting (min) from each trial's final milestone"
    else:
        (metric, mode) = OBJECTIVE
        goal = "learning (max), told every milestone's result"
    searcher = MilestoneResults(OptunaSearch(metric=metric, mode=mode, seed=spec.seeds[0]))
    description = [f"search {spec.search}: Optuna TPE draws {spec.num_samples} trials, each its own run; "
                   f"it optimizes {goal}"] + _describe_space(spec)
    columns = {f"sample/{key}": key.replace("_", " ") for key in sample_space(spec) if key != "seed"}
    return SearchPlan({"sample": sample_space(spec)}, spec.num_samples, searcher, description=description,
                      columns=columns)


def optuna(spec) -> SearchPlan:
    """Optuna TPE on the learning metric."""
    return _sampler(spec, multi=False)


def pareto(spec) -> SearchPlan:
    """Optuna multi-objective (TPE) on learning and forgetting."""
    return _sampler(spec, multi=True)


register_search("grid", grid)
register_search("optuna", optuna)
register_search("pareto", pareto)


def trial_of_config(spec, config: dict) -> TrialSpec:
    """The trial a Tune config describes (a grid trial's key or a sampler's draw)."""
    if isinstance(config.get("trial"), dict):  # a sweep started before trials were keys
        return TrialSpec.from_dict(config["trial"])
    if "trial" in config:
        by_key = {t.key: t for t in spec.trials()}
        if config["trial"] not in by_key:
            raise ConfigError("trial", config["trial"], "is not a trial of this study (was the study "
                              "changed since the sweep started? --resume needs the same study)")
        return by_key[config["trial"]]
    return trial_of_sample(spec, config["sample"])

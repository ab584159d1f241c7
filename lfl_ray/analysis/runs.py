"""Reading one sweep's MLflow experiment into plain records (the parent run and its trials).

The layout (written by the sweep runner; ``tests/analysis/synthetic_sweep.py`` writes the same
thing and is its executable reference):
- one experiment per sweep; a parent run tagged ``lfl.role=sweep`` with the base model's eval
  metrics as ``base/<metric>`` and ``evals/base.json``;
- one child run per trial tagged ``lfl.role=trial``, ``lfl.trial_id``, ``lfl.family``,
  ``lfl.regime``, ``lfl.status`` and ``lfl.checkpoint``; its params describe the method; its
  metrics are logged with ``step`` = tokens seen (``lfl.trial_key`` is read when
  ``lfl.trial_id`` is absent); at each eval milestone ``learning``,
  ``learning_se``, ``forgetting``, ``forgetting_se`` and every eval metric, and the per-item
  EvalResult JSON as ``evals/milestone_<tokens>.json``.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Mapping

from lfl_ray.errors import ConfigError
from lfl_ray.tracking import default_tracking_uri

# Metrics logged along training, not at eval milestones.
TRAINING_METRICS = ("train_loss", "lr", "tokens_per_s", "milestone")
# Params that describe a configuration, in the order labels show them.
CONFIG_PARAMS = ("lr", "rank", "alpha", "targets", "weight_decay", "hidden_dropout",
                 "attention_dropout", "lora_dropout", "use_rslora", "use_dora",
                 "loraplus_lr_ratio", "hiddenkey", "optimizer")
# Params that say how a trial was measured or seeded, not what was trained.
NON_CONFIG_PARAMS = ("seed", "model", "learning_metric", "forgetting_metric")


@dataclass(frozen=True)
class Milestone:
    """One eval of one trial: the primary pair and every metric logged at that step."""

    tokens: int
    """Training tokens seen (the MLflow step)."""
    learning: float
    """Higher = learned more (signed)."""
    learning_se: float
    """Standard error of ``learning`` over eval items (nan if not logged)."""
    forgetting: float
    """Higher = forgot more (signed: negative means the general score improved)."""
    forgetting_se: float
    """Standard error of ``forgetting`` (nan if not logged)."""
    metrics: Mapping[str, float] = field(default_factory=dict)
    """Every metric logged at this step (``heldout_loss``, ``mc_mean_delta``, ...)."""


def _number(text, kind=float):
    if text is None or str(text).strip().lower() in ("", "none", "null", "nan"):
        return None
    try:
        return kind(float(text)) if kind is int else kind(text)
    except ValueError:
        return None


def _flag(text) -> bool:
    return str(text).strip().lower() in ("true", "1", "yes")


@dataclass(frozen=True)
class Trial:
    """One trial (child run) with its eval curve."""

    run_id: str
    trial_id: str
    family: str
    """``full``, ``full+wd``, ``lora-r16-all``... (tag ``lfl.family``)."""
    regime: str
    status: str
    """``lfl.status``: FINISHED, FAILED or EARLY_STOPPED."""
    params: Mapping[str, str]
    milestones: tuple[Milestone, ...]
    """Sorted by tokens."""
    checkpoint: str | None = None
    """Last checkpoint folder (peft adapter or HF model), if any."""

    @property
    def method(self) -> str:
        return str(self.params.get("method", "full")).lower()

    @property
    def is_lora(self) -> bool:
        return self.method == "lora"

    @property
    def lr(self) -> float | None:
        return _number(self.params.get("lr"))

    @property
    def rank(self) -> int | None:
        rank = _number(self.params.get("rank"), int) if self.is_lora else None
        return rank or None

    @property
    def alpha(self) -> float | None:
        return _number(self.params.get("alpha")) if self.is_lora else None

    @property
    def targets(self) -> str | None:
        return str(self.params.get("targets")) if self.is_lora and self.params.get("targets") else None

    @property
    def seed(self) -> str:
        return str(self.params.get("seed", ""))

    @property
    def hiddenkey(self) -> bool:
        return _flag(self.params.get("hiddenkey", "false"))

    @property
    def config_key(self) -> tuple:
        """Everything that defines the configuration: seeds of one config share this key."""
        items = {k: v for k, v in self.params.items() if k not in NON_CONFIG_PARAMS}
        return (self.family, tuple(sorted(items.items())))

    @property
    def final(self) -> Milestone | None:
        return self.milestones[-1] if self.milestones else None

    def at(self, tokens: int) -> Milestone | None:
        """The milestone at exactly ``tokens``, or None."""
        for milestone in self.milestones:
            if milestone.tokens == tokens:
                return milestone
        return None


@dataclass(frozen=True)
class Sweep:
    """A sweep's parent run, base metrics and trials."""

    name: str
    experiment_id: str
    parent_run_id: str | None
    tracking_uri: str
    spec: Mapping[str, str]
    """The parent run's params (the flattened sweep spec)."""
    base_metrics: Mapping[str, float]
    """The base model's eval metrics (``base/<m>`` without the prefix)."""
    trials: tuple[Trial, ...]

    @property
    def usable(self) -> tuple[Trial, ...]:
        """Trials that did not fail and reached at least one eval milestone."""
        return tuple(t for t in self.trials if t.status != "FAILED" and t.milestones)

    def metric_names(self) -> list[str]:
        names = set()
        for trial in self.usable:
            for milestone in trial.milestones:
                names.update(milestone.metrics)
        return sorted(names)


def _client(tracking_uri: str):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=tracking_uri)


def _all_runs(client, experiment_id: str, filter_string: str) -> list:
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string=filter_string,
                                  max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _milestones(client, run) -> tuple[Milestone, ...]:
    run_id = run.info.run_id
    steps = sorted({m.step for m in client.get_metric_history(run_id, "learning")})
    if not steps:
        return ()
    by_step: dict[int, dict[str, float]] = {step: {} for step in steps}
    for key in run.data.metrics:
        if key in TRAINING_METRICS:
            continue
        for metric in client.get_metric_history(run_id, key):
            if metric.step in by_step:
                by_step[metric.step][key] = float(metric.value)
    nan = float("nan")
    return tuple(
        Milestone(tokens=int(step), learning=values.get("learning", nan),
                  learning_se=values.get("learning_se", nan),
                  forgetting=values.get("forgetting", nan),
                  forgetting_se=values.get("forgetting_se", nan), metrics=values)
        for step, values in sorted(by_step.items())
    )


def load_sweep(experiment: str, tracking_uri: str | None = None) -> Sweep:
    """Read a sweep's experiment: parent run, base metrics and every trial's eval curve."""
    tracking_uri = tracking_uri or default_tracking_uri()
    client = _client(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        names = [e.name for e in client.search_experiments()]
        raise ConfigError("experiment", experiment,
                          f"must be an experiment in {tracking_uri}: {sorted(names)}")
    experiment_id = found.experiment_id
    parents = _all_runs(client, experiment_id, "tags.`lfl.role` = 'sweep'")
    parent = max(parents, key=lambda r: r.info.start_time or 0) if parents else None
    trial_filter = "tags.`lfl.role` = 'trial'"
    if parent is not None:
        trial_filter += f" and tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
    trials = []
    for run in sorted(_all_runs(client, experiment_id, trial_filter),
                      key=lambda r: (r.data.tags.get("lfl.trial_id", ""), r.info.run_id)):
        tags = run.data.tags
        status = tags.get("lfl.status") or {"FINISHED": "FINISHED", "KILLED": "EARLY_STOPPED"}.get(
            run.info.status, "FAILED")
        trials.append(Trial(
            run_id=run.info.run_id,
            trial_id=(tags.get("lfl.trial_id") or tags.get("lfl.trial_key")
                      or run.info.run_name or run.info.run_id[:8]),
            family=tags.get("lfl.family", run.data.params.get("method", "?")),
            regime=tags.get("lfl.regime", ""), status=status, params=dict(run.data.params),
            milestones=_milestones(client, run), checkpoint=tags.get("lfl.checkpoint") or None))
    base = {}
    if parent is not None:
        base = {k[len("base/"):]: float(v) for k, v in parent.data.metrics.items()
                if k.startswith("base/")}
    return Sweep(name=experiment, experiment_id=experiment_id,
                 parent_run_id=parent.info.run_id if parent else None, tracking_uri=tracking_uri,
                 spec=dict(parent.data.params) if parent else {}, base_metrics=base,
                 trials=tuple(trials))


@lru_cache(maxsize=256)
def _eval_json(tracking_uri: str, run_id: str, artifact: str) -> str | None:
    client = _client(tracking_uri)
    root = client.get_run(run_id).info.artifact_uri
    if root.startswith("/") or root.startswith("file:"):
        local = Path(root.removeprefix("file://").removeprefix("file:")) / artifact
        return local.read_text() if local.is_file() else None
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, artifact, tmp)
        except Exception:  # absent artifact: the caller falls back to unpaired SEs
            return None
        return Path(path).read_text()


def load_eval(sweep: Sweep, run_id: str, tokens: int | None = None) -> dict | None:
    """The EvalResult JSON of a trial at ``tokens`` (or the parent's ``evals/base.json``)."""
    artifact = "evals/base.json" if tokens is None else f"evals/milestone_{int(tokens)}.json"
    text = _eval_json(sweep.tracking_uri, run_id, artifact)
    return json.loads(text) if text else None


def config_labels(trials) -> dict[str, str]:
    """A short readable label per trial id: family plus the params that vary within it."""
    trials = list(trials)
    by_family: dict[str, list[Trial]] = {}
    for trial in trials:
        by_family.setdefault(trial.family, []).append(trial)
    labels = {}
    for family, members in by_family.items():
        varying = [k for k in CONFIG_PARAMS
                   if len({str(t.params.get(k)) for t in members}) > 1]
        if "lr" not in varying and any(t.lr for t in members):
            varying.insert(0, "lr")
        for trial in members:
            parts = [family]
            for key in varying:
                value = trial.params.get(key)
                number = _number(value)
                shown = f"{number:.0e}" if key == "lr" and number else (
                    f"{number:g}" if number is not None and key != "targets" else str(value))
                parts.append(f"{key}={shown}")
            labels[trial.trial_id] = " ".join(parts)
    return labels


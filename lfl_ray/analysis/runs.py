"""Reading one sweep's MLflow experiment into plain records (the parent run and its trials).

The layout, and every tag, param, metric and artifact name read here, belong to
``lfl_ray.mlflow_schema``, whose writer the sweep uses (and the analysis tests' synthetic
sweeps, so that a layout this reader does not follow fails a test).
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
from lfl_ray.mlflow_schema import (STATUS_FROM_MLFLOW, Artifact, Method, Metric, Param, Status, Tag,
                                   base_metrics, learning_history, metric_name, metrics_by_name, parent_filter,
                                   search_all, step_tokens, trial_filter)
from lfl_ray.tracking import default_tracking_uri

# Params that describe a configuration, in the order labels show them.
CONFIG_PARAMS = (Param.LR, Param.RANK, Param.ALPHA, Param.TARGETS, Param.WEIGHT_DECAY,
                 Param.HIDDEN_DROPOUT, Param.ATTENTION_DROPOUT, Param.LORA_DROPOUT, Param.USE_RSLORA,
                 Param.USE_DORA, Param.LORAPLUS_LR_RATIO, Param.HIDDENKEY, Param.OPTIMIZER)
# Params that say how a trial was measured or seeded, not what was trained.
NON_CONFIG_PARAMS = (Param.SEED, Param.MODEL, Param.LEARNING_METRIC, Param.FORGETTING_METRIC)


@dataclass(frozen=True)
class Milestone:
    """One eval of one trial: the primary pair and every metric logged at that step."""

    tokens: int
    """Training tokens seen (the ``tokens`` metric at the MLflow step; older stores: the step)."""
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
    step: int | None = None
    """The optimizer step (the MLflow step; in older stores, where steps were tokens, the same
    as ``tokens``)."""


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
    """The trial's key (tag ``lfl.trial_key``; the run name when the tag is missing)."""
    family: str
    """``full``, ``full+wd``, ``lora-r16-all``... (tag ``lfl.family``)."""
    regime: str
    status: str
    """``lfl.status``: FINISHED, FAILED, EARLY_STOPPED, INTERRUPTED or RUNNING."""
    params: Mapping[str, str]
    milestones: tuple[Milestone, ...]
    """Sorted by tokens."""
    checkpoint: str | None = None
    """Last checkpoint folder (peft adapter or HF model), if any."""
    error: str | None = None
    """The end of the error text of a FAILED trial (tag ``lfl.error``)."""
    summary: Mapping[str, float] = field(default_factory=dict)
    """The run's latest value of every metric, training ones included (``trainable_params``...)."""
    trained_tokens: int | None = None
    """Training tokens the trial saw: the ``tokens`` metric where logged, else the last step of
    ``train_loss`` (a store from before the ``tokens`` metric, whose steps are tokens), else the
    last milestone."""

    @property
    def method(self) -> str:
        return str(self.params.get(Param.METHOD, Method.FULL)).lower()

    @property
    def is_lora(self) -> bool:
        return self.method == Method.LORA

    @property
    def lr(self) -> float | None:
        return _number(self.params.get(Param.LR))

    @property
    def rank(self) -> int | None:
        rank = _number(self.params.get(Param.RANK), int) if self.is_lora else None
        return rank or None

    @property
    def alpha(self) -> float | None:
        return _number(self.params.get(Param.ALPHA)) if self.is_lora else None

    @property
    def targets(self) -> str | None:
        targets = self.params.get(Param.TARGETS)
        return str(targets) if self.is_lora and targets else None

    @property
    def target_modules(self) -> tuple[str, ...]:
        """The modules this LoRA trial adapted (what ``targets`` means on its architecture)."""
        modules = self.params.get(Param.TARGET_MODULES) if self.is_lora else None
        return tuple(str(modules).split("+")) if modules else ()

    @property
    def seed(self) -> str:
        return str(self.params.get(Param.SEED, ""))

    @property
    def hiddenkey(self) -> bool:
        return _flag(self.params.get(Param.HIDDENKEY, "false"))

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
    """The base model's eval metrics by name (the parent's ``<m>_base``: ``mlflow_schema.base_metrics``)."""
    trials: tuple[Trial, ...]

    @property
    def usable(self) -> tuple[Trial, ...]:
        """Trials that did not fail and reached at least one eval milestone."""
        return tuple(t for t in self.trials if t.status != Status.FAILED and t.milestones)

    def metric_names(self) -> list[str]:
        names = set()
        for trial in self.usable:
            for milestone in trial.milestones:
                names.update(milestone.metrics)
        return sorted(names)


def _client(tracking_uri: str):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=tracking_uri)


def _milestones(client, run) -> tuple[Milestone, ...]:
    """The run's eval milestones: the steps at which ``learning`` was logged, each with its
    training tokens (``step_tokens``). Metrics are keyed by name (``metric_name``: a store's
    ``Headline/learning`` and an older one's ``learning`` read alike)."""
    run_id = run.info.run_id
    steps = sorted({m.step for m in learning_history(client, run_id)})
    if not steps:
        return ()
    tokens_at = step_tokens(client, run_id)
    by_step: dict[int, dict[str, float]] = {step: {} for step in steps}
    for key in run.data.metrics:
        if key in Metric.TRAINING or key.startswith(Metric.SYSTEM_PREFIX):
            continue
        for metric in client.get_metric_history(run_id, key):
            if metric.step in by_step:
                by_step[metric.step][metric_name(key)] = float(metric.value)
    nan = float("nan")
    return tuple(
        Milestone(tokens=tokens_at(step), step=int(step), learning=values.get(Metric.LEARNING, nan),
                  learning_se=values.get(Metric.LEARNING_SE, nan),
                  forgetting=values.get(Metric.FORGETTING, nan),
                  forgetting_se=values.get(Metric.FORGETTING_SE, nan), metrics=values)
        for step, values in sorted(by_step.items())
    )


def _trained_tokens(client, run, milestones) -> int | None:
    metrics = run.data.metrics
    if metrics.get(Metric.TOKENS):
        return int(metrics[Metric.TOKENS])
    if Metric.TRAIN_LOSS in metrics:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, Metric.TRAIN_LOSS)]
        if steps:
            return int(max(steps))
    return milestones[-1].tokens if milestones else None


def _trial(client, run) -> Trial:
    tags, params = run.data.tags, run.data.params
    status = tags.get(Tag.STATUS) or STATUS_FROM_MLFLOW.get(run.info.status, Status.FAILED)
    milestones = _milestones(client, run)
    return Trial(
        run_id=run.info.run_id,
        trial_id=tags.get(Tag.TRIAL_KEY) or run.info.run_name or run.info.run_id[:8],
        family=tags.get(Tag.FAMILY, params.get(Param.METHOD, "?")),
        regime=tags.get(Tag.REGIME, ""), status=status, params=dict(params),
        milestones=milestones, checkpoint=tags.get(Tag.CHECKPOINT) or None,
        error=tags.get(Tag.ERROR) or None,
        summary=metrics_by_name(run.data.metrics),
        trained_tokens=_trained_tokens(client, run, milestones))


def load_sweep(experiment: str, tracking_uri: str | None = None) -> Sweep:
    """Read a sweep's experiment: parent run, base metrics and every trial's eval curve.

    With several parent runs (the experiment's name reused), the latest one and its trials."""
    tracking_uri = tracking_uri or default_tracking_uri()
    client = _client(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        names = [e.name for e in client.search_experiments()]
        raise ConfigError("experiment", experiment,
                          f"must be an experiment in {tracking_uri}: {sorted(names)}")
    experiment_id = found.experiment_id
    parents = search_all(client, experiment_id, parent_filter())
    parent = max(parents, key=lambda r: r.info.start_time or 0) if parents else None
    runs = search_all(client, experiment_id, trial_filter(parent.info.run_id if parent else None))
    trials = sorted((_trial(client, run) for run in runs), key=lambda t: (t.trial_id, t.run_id))
    base = base_metrics(parent.data.metrics) if parent is not None else {}
    return Sweep(name=experiment, experiment_id=experiment_id,
                 parent_run_id=parent.info.run_id if parent else None, tracking_uri=tracking_uri,
                 spec=dict(parent.data.params) if parent else {}, base_metrics=base,
                 trials=tuple(trials))


@lru_cache(maxsize=256)
def _artifact_text(tracking_uri: str, run_id: str, artifact: str) -> str | None:
    client = _client(tracking_uri)
    root = client.get_run(run_id).info.artifact_uri
    if root.startswith("/") or root.startswith("file:"):
        local = Path(root.removeprefix("file://").removeprefix("file:")) / artifact
        return local.read_text() if local.is_file() else None
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, artifact, tmp)
        except Exception:  # absent artifact (no per-item evals: the caller falls back to unpaired SEs)
            return None
        return Path(path).read_text()


def load_eval(sweep: Sweep, run_id: str, tokens: int | None = None) -> dict | None:
    """The EvalResult JSON of a trial at ``tokens`` (or the parent's base eval when None)."""
    artifact = Artifact.BASE_EVAL if tokens is None else Artifact.milestone_eval(tokens)
    text = _artifact_text(sweep.tracking_uri, run_id, artifact)
    return json.loads(text) if text else None


def load_spec_json(sweep: Sweep) -> dict | None:
    """The sweep spec as the parent run logged it (``sweep_spec.json``), or None."""
    if sweep.parent_run_id is None:
        return None
    text = _artifact_text(sweep.tracking_uri, sweep.parent_run_id, Artifact.SWEEP_SPEC)
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
        if Param.LR not in varying and any(t.lr for t in members):
            varying.insert(0, Param.LR)
        for trial in members:
            parts = [family]
            for key in varying:
                value = trial.params.get(key)
                number = _number(value)
                shown = f"{number:.0e}" if key == Param.LR and number else (
                    f"{number:g}" if number is not None and key != Param.TARGETS else str(value))
                parts.append(f"{key}={shown}")
            labels[trial.trial_id] = " ".join(parts)
    return labels


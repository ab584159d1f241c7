"""The Ray Tune trainable of a sweep: one trial = one Ray Train job + one MLflow child run.

Runs inside a Tune trial actor. It finds or creates the trial's MLflow run (by key, so a
retried or resumed trial keeps one run), launches a TorchTrainer that reports to Tune
through TuneReportCallback, and ends the run FINISHED. A
trial that ASHA stops, or that fails, is closed by ``TrialStatusCallback`` (KILLED/EARLY_STOPPED, or FAILED
with the error text recorded here).
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Any

from lfl_ray import mlflow_schema as schema
from lfl_ray.mlflow_schema import Status
from lfl_ray.sweep.search import trial_of_config
from lfl_ray.sweep.spec import SweepSpec
from lfl_ray.sweep.trials import TrialSpec
from lfl_ray.tracking import RunLogger
from lfl_ray.train.config import FaultInjection, TrialConfig


@dataclass
class SweepContext:
    """What every trial of a sweep shares (shipped once through the object store)."""

    spec: SweepSpec
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    data: Any
    """DataSpec (built and cached by the driver) or TokenBlocks."""
    train_storage: str
    """Where each trial's Ray Train run keeps its checkpoints (resume looks there)."""
    evaluator: Any = None
    base: Any = None
    faults: dict[str, FaultInjection] = field(default_factory=dict)
    """Test-only faults by trial key."""
    datasets: tuple = ()
    """The DatasetFacts each trial's run logs as its inputs (``lfl_ray.sweep.datasets``)."""


def stop_key(parent_run_id: str, trial_key: str) -> str:
    """The name under which the scheduler asks a trial to stop (``lfl_ray.train.stop.request_stop``)."""
    return f"{parent_run_id}:{trial_key}"


def trial_params(spec: SweepSpec, trial: TrialSpec) -> dict:
    """A trial run's MLflow params: the trial's own fields, then what the sweep trains and measures it with."""
    params = trial.params()
    params.update({"model": spec.model, "regime": spec.regime, "optimizer": spec.optimizer,
                   "budget_tokens": spec.budget.total_tokens, "budget_steps": spec.budget.steps,
                   "learning_metric": getattr(spec.eval, "learning_metric", "heldout_loss"),
                   "forgetting_metric": getattr(spec.eval, "forgetting_metric", "general_loss")})
    if params.get("targets") is not None:  # what the preset means on this architecture
        from lfl_ray.model_config import target_modules

        modules = target_modules(spec.model, trial.method.targets)
        if modules:
            params[schema.Param.TARGET_MODULES] = "+".join(modules)
    return params


def trial_config(spec: SweepSpec, trial: TrialSpec, fault: FaultInjection | None = None) -> TrialConfig:
    """The TrialConfig that Ray Train's workers run for one trial of ``spec``."""
    return TrialConfig(
        model=spec.model, method=trial.method, lr=trial.lr, optimizer=spec.optimizer,
        weight_decay=trial.weight_decay, budget=spec.budget, resources=spec.resources,
        report_every=max(1, min(5, spec.budget.steps // 4)), seed=trial.seed,
        attention_dropout=trial.attention_dropout, hidden_dropout=trial.hidden_dropout,
        hiddenkey=trial.hiddenkey, fault=fault,
    ).validate()


def run_trial_in_tune(config: dict, context: SweepContext) -> None:
    """Tune function trainable (bound with tune.with_parameters)."""
    from ray.tune.integration.ray_train import TuneReportCallback

    from lfl_ray.train.stop import stop_requested
    from lfl_ray.train.trial import build_trainer

    spec = context.spec
    trial = trial_of_config(spec, config)
    stop_name = stop_key(context.parent_run_id, trial.key)
    run_id = schema.child_run(context.tracking_uri, context.experiment_id, context.parent_run_id,
                              key=trial.key, family=trial.family, regime=spec.regime,
                              params=trial_params(spec, trial))
    try:
        schema.log_datasets(context.tracking_uri, run_id, context.datasets)
        cfg = trial_config(spec, trial, fault=context.faults.get(trial.key))
        trainer = build_trainer(
            cfg, context.data, name=trial.key, storage_path=context.train_storage,
            evaluator=context.evaluator, base=context.base,
            logger=RunLogger(context.tracking_uri, run_id), callbacks=[TuneReportCallback()],
            max_failures=spec.resources.max_failures, stop_key=stop_name)
        result = trainer.fit()
        if result.error is not None:
            raise result.error
    except BaseException as exc:
        # Record the error now; the status (FAILED, or EARLY_STOPPED when the scheduler's stop
        # is what broke the run) is set by TrialStatusCallback, which knows why the trial ended.
        # A scheduler stop tears the trial's workers down and may surface here after the
        # callback already closed the run as EARLY_STOPPED: that is no error of the trial.
        if not stop_requested(stop_name):
            from lfl_ray.sweep.outcome import describe_error

            text = "".join(traceback.format_exception(exc))
            schema.record_error(context.tracking_uri, run_id, f"{text}\n{describe_error(exc)}")
        raise
    if stop_requested(stop_name):  # stopped early by the scheduler: the callback closes the run
        return
    schema.end_run(context.tracking_uri, run_id, Status.FINISHED)

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

from lfl_ray.sweep import mlflow_runs
from lfl_ray.sweep.space import point_from_sample, point_params, trial_config
from lfl_ray.sweep.spec import SweepSpec
from lfl_ray.tracking import RunLogger
from lfl_ray.train.config import FaultInjection


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


def stop_key(parent_run_id: str, trial_key: str) -> str:
    """The name under which the scheduler asks a trial to stop (``lfl_ray.train.loop.request_stop``)."""
    return f"{parent_run_id}:{trial_key}"


def point_of(spec: SweepSpec, config: dict) -> dict:
    return config["point"] if "point" in config else point_from_sample(spec, config)


def run_trial_in_tune(config: dict, context: SweepContext) -> None:
    """Tune function trainable (bound with tune.with_parameters)."""
    from ray.tune.integration.ray_train import TuneReportCallback

    from lfl_ray.train.trial import build_trainer

    spec = context.spec
    point = point_of(spec, config)
    stop_name = stop_key(context.parent_run_id, point["key"])
    run_id = mlflow_runs.child_run(context.tracking_uri, context.experiment_id, context.parent_run_id,
                                   point, point_params(point, spec), spec.regime)
    try:
        cfg = trial_config(spec, point, fault=context.faults.get(point["key"]))
        trainer = build_trainer(
            cfg, context.data, name=point["key"], storage_path=context.train_storage,
            evaluator=context.evaluator, base=context.base,
            logger=RunLogger(context.tracking_uri, run_id), callbacks=[TuneReportCallback()],
            max_failures=spec.resources.max_failures, stop_key=stop_name)
        result = trainer.fit()
        if result.error is not None:
            raise result.error
    except BaseException as exc:
        # Record the error now; the status (FAILED, or EARLY_STOPPED when the scheduler's stop
        # is what broke the run) is set by TrialStatusCallback, which knows why the trial ended.
        from lfl_ray.train.stop import stop_requested

        # A scheduler stop tears the trial's workers down and may surface here after the
        # callback already closed the run as EARLY_STOPPED: that is no error of the trial.
        if not stop_requested(stop_name):
            text = "".join(traceback.format_exception(exc))
            mlflow_runs.client(context.tracking_uri).set_tag(run_id, "lfl.error", text[-5000:])
        raise
    from lfl_ray.train.stop import stop_requested

    if stop_requested(stop_name):  # stopped early by the scheduler: the callback closes the run
        return
    mlflow_runs.end_run(context.tracking_uri, run_id, "FINISHED")

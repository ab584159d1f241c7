"""Final MLflow statuses of trials, as Ray Tune saw them end.

The trainable ends its own run when it finishes or raises; a trial stopped by ASHA (or a
killed trial actor) cannot, so this callback and the end-of-sweep reconciliation close
those runs: KILLED with ``lfl.status=EARLY_STOPPED`` when the scheduler stopped it early,
KILLED with ``lfl.status=INTERRUPTED`` when the user stopped the sweep (Ctrl-C; ``--resume``
continues it), FAILED with the error otherwise. No run is left RUNNING.
"""

from __future__ import annotations

from ray.tune import Callback

from lfl_ray import mlflow_schema as schema
from lfl_ray.mlflow_schema import Status, Tag
from lfl_ray.sweep.search import trial_of_config
from lfl_ray.sweep.spec import SweepSpec


def _close(spec: SweepSpec, tracking_uri: str, experiment_id: str, parent_id: str, key: str,
           last: dict | None, error: str | None, *, interrupted: bool = False) -> str:
    runs = schema.find_trial_runs(tracking_uri, experiment_id, parent_id, key)
    complete = bool(last) and last.get("step") == spec.budget.steps
    status = Status.FAILED if error else (Status.FINISHED if complete else
                                          Status.INTERRUPTED if interrupted else Status.EARLY_STOPPED)
    checkpoint = (last or {}).get("checkpoint_path")  # added by TuneReportCallback at milestones
    for run in runs:
        if checkpoint and run.data.tags.get(Tag.CHECKPOINT) != checkpoint:
            schema.set_checkpoint(tracking_uri, run.info.run_id, checkpoint)
        if run.info.status == "RUNNING":
            recorded = run.data.tags.get(Tag.ERROR)
            if status in (Status.EARLY_STOPPED, Status.INTERRUPTED) and recorded:
                # A scheduler stop or Ctrl-C tore down the run's workers: not a failure of the trial.
                schema.clear_error(tracking_uri, run.info.run_id)
            schema.end_run(tracking_uri, run.info.run_id, status,
                           error=None if recorded and status == Status.FAILED else error)
        else:
            status = run.data.tags.get(Tag.STATUS, status)
    return status


class TrialStatusCallback(Callback):
    """Closes a trial's MLflow run as soon as Tune reports the trial over."""

    def __init__(self, spec: SweepSpec, tracking_uri: str, experiment_id: str, parent_id: str):
        self.spec, self.tracking_uri, self.experiment_id, self.parent_id = spec, tracking_uri, experiment_id, parent_id

    def _key(self, trial) -> str:
        return trial_of_config(self.spec, trial.config).key

    def on_trial_complete(self, iteration, trials, trial, **info):
        last = trial.last_result or {}
        if last.get("step") != self.spec.budget.steps:
            from lfl_ray.sweep.trainable import stop_key
            from lfl_ray.train.stop import request_stop

            request_stop(stop_key(self.parent_id, self._key(trial)))  # let its Ray Train run end and free its workers
        _close(self.spec, self.tracking_uri, self.experiment_id, self.parent_id, self._key(trial),
               trial.last_result, None)

    def on_trial_error(self, iteration, trials, trial, **info):
        error = f"trial {trial.trial_id} errored; see {trial.local_path}"
        _close(self.spec, self.tracking_uri, self.experiment_id, self.parent_id, self._key(trial),
               trial.last_result, error)


def reconcile(results, spec: SweepSpec, tracking_uri: str, experiment_id: str,
              parent_id: str) -> tuple[dict[str, str], dict[str, str]]:
    """Final status of every trial in ``results`` and the error of each failed one; closes
    any run still RUNNING.

    A trial that ended short of its budget without an error and without a scheduler stop
    was cut off by the user (Ctrl-C): INTERRUPTED, which ``--resume`` continues."""
    from lfl_ray.sweep.outcome import describe_error
    from lfl_ray.sweep.trainable import stop_key
    from lfl_ray.train.stop import stop_requested

    statuses: dict[str, str] = {}
    errors: dict[str, str] = {}
    for result in results:
        key = trial_of_config(spec, result.config).key
        error = None if result.error is None else describe_error(result.error)[-5000:]
        interrupted = error is None and not stop_requested(stop_key(parent_id, key))
        statuses[key] = _close(spec, tracking_uri, experiment_id, parent_id, key, result.metrics, error,
                               interrupted=interrupted)
        if statuses[key] == Status.FAILED:
            errors[key] = error or _recorded_error(tracking_uri, experiment_id, parent_id, key)
    for run in schema.running_trials(tracking_uri, experiment_id, parent_id):
        schema.end_run(tracking_uri, run.info.run_id, Status.EARLY_STOPPED)
    return statuses, errors


def _recorded_error(tracking_uri: str, experiment_id: str, parent_id: str, key: str) -> str:
    runs = schema.find_trial_runs(tracking_uri, experiment_id, parent_id, key)
    return runs[0].data.tags.get(Tag.ERROR, "") if runs else ""

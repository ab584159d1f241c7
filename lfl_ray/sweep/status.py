"""Final MLflow statuses of trials, as Ray Tune saw them end.

The trainable ends its own run when it finishes or raises; a trial stopped by ASHA (or a
killed trial actor) cannot, so this callback and the end-of-sweep reconciliation close
those runs: KILLED with ``lfl.status=EARLY_STOPPED`` when the scheduler stopped it early,
KILLED with ``lfl.status=INTERRUPTED`` when the user stopped the sweep (Ctrl-C; ``--resume``
continues it), FAILED with the error otherwise. No run is left RUNNING.
"""

from __future__ import annotations

from ray.tune import Callback

from lfl_ray.sweep import mlflow_runs
from lfl_ray.sweep.spec import SweepSpec


def _close(spec: SweepSpec, tracking_uri: str, experiment_id: str, parent_id: str, key: str,
           last: dict | None, error: str | None, *, interrupted: bool = False) -> str:
    runs = mlflow_runs.find_runs(tracking_uri, experiment_id,
                                 f"tags.`lfl.trial_key` = '{key}' and tags.`mlflow.parentRunId` = '{parent_id}'")
    complete = bool(last) and last.get("step") == spec.budget.steps
    status = "FAILED" if error else ("FINISHED" if complete else
                                     "INTERRUPTED" if interrupted else "EARLY_STOPPED")
    checkpoint = (last or {}).get("checkpoint_path")  # added by TuneReportCallback at milestones
    for run in runs:
        if checkpoint and run.data.tags.get("lfl.checkpoint") != checkpoint:
            mlflow_runs.client(tracking_uri).set_tag(run.info.run_id, "lfl.checkpoint", checkpoint)
        if run.info.status == "RUNNING":
            mlflow_status = {"FAILED": "FAILED", "FINISHED": "FINISHED", "EARLY_STOPPED": "KILLED",
                             "INTERRUPTED": "KILLED"}[status]
            recorded = run.data.tags.get("lfl.error")
            if status in ("EARLY_STOPPED", "INTERRUPTED") and recorded:
                # A scheduler stop or Ctrl-C tore down the run's workers: not a failure of the trial.
                mlflow_runs.client(tracking_uri).delete_tag(run.info.run_id, "lfl.error")
            mlflow_runs.end_run(tracking_uri, run.info.run_id, mlflow_status,
                                error=None if recorded and status == "FAILED" else error, lfl_status=status)
        else:
            status = run.data.tags.get(mlflow_runs.STATUS_TAG, status)
    return status


class TrialStatusCallback(Callback):
    """Closes a trial's MLflow run as soon as Tune reports the trial over."""

    def __init__(self, spec: SweepSpec, tracking_uri: str, experiment_id: str, parent_id: str):
        self.spec, self.tracking_uri, self.experiment_id, self.parent_id = spec, tracking_uri, experiment_id, parent_id

    def _key(self, trial) -> str:
        from lfl_ray.sweep.trainable import point_of

        return point_of(self.spec, trial.config)["key"]

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


def reconcile(results, spec: SweepSpec, tracking_uri: str, experiment_id: str, parent_id: str) -> dict[str, str]:
    """Final status of every trial in ``results``; closes any run still RUNNING.

    A trial that ended short of its budget without an error and without a scheduler stop
    was cut off by the user (Ctrl-C): INTERRUPTED, which ``--resume`` continues."""
    from lfl_ray.sweep.trainable import point_of, stop_key
    from lfl_ray.train.stop import stop_requested

    statuses: dict[str, str] = {}
    for result in results:
        key = point_of(spec, result.config)["key"]
        error = None if result.error is None else f"{type(result.error).__name__}: {result.error}"[-5000:]
        interrupted = error is None and not stop_requested(stop_key(parent_id, key))
        statuses[key] = _close(spec, tracking_uri, experiment_id, parent_id, key, result.metrics, error,
                               interrupted=interrupted)
    for run in mlflow_runs.find_runs(tracking_uri, experiment_id,
                                     f"tags.`mlflow.parentRunId` = '{parent_id}' and attributes.status = 'RUNNING'"):
        mlflow_runs.end_run(tracking_uri, run.info.run_id, "KILLED", lfl_status="EARLY_STOPPED")
    return statuses

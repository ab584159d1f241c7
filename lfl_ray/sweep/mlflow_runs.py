"""The sweep's MLflow writer, by its old name: everything here is ``lfl_ray.mlflow_schema``.

Kept so that ``sweep/`` keeps working while it moves to ``from lfl_ray import mlflow_schema``;
delete this module once nothing imports it.
"""

from __future__ import annotations

from lfl_ray.mlflow_schema import (  # noqa: F401 - re-exported
    SECRET_MARKERS,
    _check_writable,
    artifact_root_for,
    check_tracking_uri,
    check_writable,
    child_run,
    clear_error,
    client,
    end_run,
    ensure_experiment,
    find_runs,
    find_trial_runs,
    flatten,
    log_base,
    record_error,
    running_trials,
    scrub,
    scrub_nested,
    set_checkpoint,
    start_parent,
    Tag,
)

STATUS_TAG = Tag.STATUS

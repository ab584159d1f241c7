"""The MLflow writer: statuses, pre-flight checks, and the old call forms sweep/ still uses.

That a written sweep reads back field for field is tested with the reader, in
tests/analysis/test_runs.py.
"""

from dataclasses import dataclass, field

import pytest

from lfl_ray import mlflow_schema as schema
from lfl_ray.errors import ConfigError
from lfl_ray.mlflow_schema import MlflowStatus, Role, Status, Tag


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("schema")
    uri = f"sqlite:///{root}/mlflow.db"
    return uri, schema.ensure_experiment(uri, "writer")


def _run(uri, run_id):
    return schema.client(uri).get_run(run_id)


@pytest.mark.parametrize("status, mlflow_status", [(Status.FINISHED, "FINISHED"), (Status.FAILED, "FAILED"),
                                                   (Status.EARLY_STOPPED, "KILLED"),
                                                   (Status.INTERRUPTED, "KILLED")])
def test_end_run_sets_both_statuses(store, status, mlflow_status):
    uri, experiment_id = store
    parent = schema.start_parent(uri, experiment_id, name="p", regime="code_ift", params={}, spec_json={},
                                 resume=False)
    run_id = schema.child_run(uri, experiment_id, parent, key=f"t-{status}", family="full",
                              regime="code_ift", params={"method": "full", "rank": None})
    run = _run(uri, run_id)
    assert run.data.tags[Tag.STATUS] == Status.RUNNING and run.data.tags[Tag.PARENT] == parent
    assert run.data.tags[Tag.ROLE] == Role.TRIAL and run.info.run_name == f"t-{status}"
    assert run.data.params == {"method": "full"}  # None values are not logged
    schema.end_run(uri, run_id, status, error="boom" if status == Status.FAILED else None)
    run = _run(uri, run_id)
    assert (run.info.status, run.data.tags[Tag.STATUS]) == (mlflow_status, status)
    assert (Tag.ERROR in run.data.tags) == (status == Status.FAILED)


def test_errors_keep_their_end_and_can_be_cleared(store):
    uri, experiment_id = store
    parent = schema.start_parent(uri, experiment_id, name="p", regime="code_ift", params={}, spec_json=None,
                                 resume=False)
    run_id = schema.child_run(uri, experiment_id, parent, key="err", family="full", regime="code_ift",
                              params={})
    schema.record_error(uri, run_id, "x" * 10 + "y" * schema.ERROR_CHARS)
    assert _run(uri, run_id).data.tags[Tag.ERROR] == "y" * schema.ERROR_CHARS
    schema.clear_error(uri, run_id)
    assert Tag.ERROR not in _run(uri, run_id).data.tags
    assert [r.info.run_id for r in schema.running_trials(uri, experiment_id, parent)] == [run_id]
    assert [r.info.run_id for r in schema.find_trial_runs(uri, experiment_id, parent, "err")] == [run_id]
    with pytest.raises(ValueError, match="status"):
        schema.end_run(uri, run_id, "DONE")


@dataclass
class _Spec:
    name: str = "old-form"
    regime: str = "code_cpt"
    budget: dict = field(default_factory=lambda: {"steps": 3})
    hf_token: str = "hf_secret_value"


def test_old_call_forms_still_work(store):
    """What runner.py, trainable.py and status.py call today (until they switch)."""
    from lfl_ray.sweep import mlflow_runs

    uri, experiment_id = store
    parent = mlflow_runs.start_parent(uri, experiment_id, _Spec(), resume=False)
    run = _run(uri, parent)
    assert run.info.run_name == "old-form" and run.data.tags[Tag.REGIME] == "code_cpt"
    assert run.data.params == {"name": "old-form", "regime": "code_cpt", "budget.steps": "3"}
    assert mlflow_runs.start_parent(uri, experiment_id, _Spec(), resume=True) == parent  # the newest parent
    point = {"key": "old-trial", "family": "lora-r4-all"}
    run_id = mlflow_runs.child_run(uri, experiment_id, parent, point, {"lr": 1e-3}, "code_cpt")
    run = _run(uri, run_id)
    assert (run.data.tags[Tag.TRIAL_KEY], run.data.tags[Tag.FAMILY], run.data.params) == (
        "old-trial", "lora-r4-all", {"lr": "0.001"})
    mlflow_runs.end_run(uri, run_id, "KILLED", lfl_status="EARLY_STOPPED")
    run = _run(uri, run_id)
    assert (run.info.status, run.data.tags[mlflow_runs.STATUS_TAG]) == (MlflowStatus.KILLED, Status.EARLY_STOPPED)
    assert mlflow_runs._check_writable is schema.check_writable


def test_check_writable_names_the_field(tmp_path):
    schema.check_writable("--storage-path", "x", tmp_path / "not" / "yet")
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="--storage-path"):
        schema.check_writable("--storage-path", "x", tmp_path / "file" / "below")
    with pytest.raises(ConfigError, match="--tracking-uri"):
        schema.check_tracking_uri("ftp://host/store")


def test_metric_names():
    assert schema.base_metric("mc_mean") == "base/mc_mean"
    assert schema.delta_metric("mc_mean") == "mc_mean_delta"
    assert schema.change_se_metric("mc_mean") == "mc_mean_delta_se"
    assert schema.change_se_metric(schema.Metric.LEARNING) == "learning_se"
    assert schema.is_derived_metric("mc_mean_delta") and not schema.is_derived_metric("mc_mean")
    assert schema.Artifact.milestone_eval(4096) == "evals/milestone_4096.json"

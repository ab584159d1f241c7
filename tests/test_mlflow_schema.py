"""The MLflow writer: statuses and the checks made before anything is written.

That a written sweep reads back field for field is tested with the reader, in
tests/analysis/test_runs.py.
"""


import pytest

from lfl_ray import mlflow_schema as schema
from lfl_ray.errors import ConfigError
from lfl_ray.mlflow_schema import Role, Status, Tag


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("schema")
    uri = f"sqlite:///{root}/mlflow.db"
    return uri, schema.ensure_experiment(uri, "writer")


def _run(uri, run_id):
    return schema.client(uri).get_run(run_id)


@pytest.mark.parametrize("status, mlflow_status", [(Status.FINISHED, "FINISHED"), (Status.FAILED, "FAILED"),
                                                   (Status.EARLY_STOPPED, "FINISHED"),
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

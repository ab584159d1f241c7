"""The MLflow writer: statuses and the checks made before anything is written.

That a written sweep reads back field for field is tested with the reader, in
tests/analysis/test_runs.py.
"""

import json

import pytest
import torch

from lfl_ray import mlflow_schema as schema
from lfl_ray.errors import ConfigError
from lfl_ray.mlflow_schema import Role, Status, Tag
from lfl_ray.tracking import RunLogger


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
    assert schema.base_metric("mc_mean") == "mc_mean_base"  # no "/": the UI makes a section of a prefix
    assert schema.base_metrics({"mc_mean_base": 0.5, "drift_kl_se_base": 0.0}) == {"mc_mean": 0.5, "drift_kl_se": 0.0}
    assert schema.base_metrics({"base/mc_mean": 0.5}) == {"mc_mean": 0.5}  # a store of earlier lfl-ray
    assert schema.delta_metric("mc_mean") == "mc_mean_delta"
    assert schema.change_se_metric("mc_mean") == "mc_mean_delta_se"
    assert schema.change_se_metric(schema.Metric.LEARNING) == "learning_se"
    assert schema.is_derived_metric("mc_mean_delta") and not schema.is_derived_metric("mc_mean")
    assert schema.Artifact.milestone_eval(4096) == "evals/milestone_4096.json"


def test_datasets_are_logged_once_with_their_facts(store):
    uri, experiment_id = store
    parent = schema.start_parent(uri, experiment_id, name="p", regime="custom", params={}, spec_json=None,
                                 resume=False)
    run_id = schema.child_run(uri, experiment_id, parent, key="inputs", family="lora-r4-all", regime="custom",
                              params={})
    facts = [schema.DatasetFacts("qa-train", "a" * 16, "/data/qa.jsonl", "local", 17, 1854, 367,
                                 schema.DatasetContext.TRAINING, documents=34),
             schema.DatasetFacts("qa-heldout", "b" * 16, "/data/qa.jsonl", "local", 6, 328, 65,
                                 schema.DatasetContext.HELDOUT),
             schema.DatasetFacts("general-text", "c" * 16, "org/text", "hugging_face", 4, 512, 512,
                                 schema.DatasetContext.GENERAL)]
    schema.log_datasets(uri, run_id, facts)
    schema.log_datasets(uri, run_id, facts)  # a resumed trial logs them again: no duplicate
    inputs = {i.dataset.name: i for i in _run(uri, run_id).inputs.dataset_inputs}
    assert sorted(inputs) == ["general-text", "qa-heldout", "qa-train"]
    train = inputs["qa-train"]
    assert (train.dataset.digest, train.dataset.source_type) == ("a" * 16, "local")
    assert json.loads(train.dataset.source) == {"uri": "/data/qa.jsonl"}
    assert json.loads(train.dataset.profile) == {"num_rows": 17, "num_tokens": 1854, "num_loss_tokens": 367,
                                                 "num_documents": 34}
    assert json.loads(inputs["general-text"].dataset.source) == {"path": "org/text"}  # the UI links hub ids
    assert {i.tags[0].value for i in inputs.values()} == {"training", "heldout", "general"}


def test_adapter_and_eval_rows_are_artifacts(store, tmp_path):
    from lfl_ray.data.blocks import TokenBlocks

    uri, experiment_id = store
    parent = schema.start_parent(uri, experiment_id, name="p", regime="custom", params={}, spec_json=None,
                                 resume=False)
    run_id = schema.child_run(uri, experiment_id, parent, key="adapter", family="lora-r4-all", regime="custom",
                              params={})
    mlflow_client = schema.client(uri)
    for version in ("first", "latest"):  # each milestone's adapter replaces the one before
        (tmp_path / version).mkdir()
        (tmp_path / version / "adapter_config.json").write_text(json.dumps({"version": version}))
        schema.log_adapter(uri, run_id, tmp_path / version)
    local = mlflow_client.download_artifacts(run_id, f"{schema.Artifact.ADAPTER}/adapter_config.json", str(tmp_path))
    assert json.loads(open(local).read()) == {"version": "latest"}
    blocks = TokenBlocks.from_stream(torch.arange(64), 16)
    schema.log_eval_data(uri, parent, blocks, None)
    assert [a.path for a in mlflow_client.list_artifacts(parent, "data")] == [schema.Artifact.HELDOUT_DATA]
    back = TokenBlocks.load(mlflow_client.download_artifacts(parent, schema.Artifact.HELDOUT_DATA, str(tmp_path)))
    assert torch.equal(back.input_ids, blocks.input_ids) and back.doc_ids == blocks.doc_ids


def test_the_experiment_description_says_what_the_runs_mean():
    from lfl_ray.sweep.study import load_study

    spec = load_study("code_ift", preset="smoke", name="described").spec()
    text = schema.experiment_description(spec, "Does LoRA forget less on code?")
    first, rest = text.split("\n", 1)  # the UI shows the first line until unfolded
    assert first.startswith("**LoRA vs full finetuning** of") and "`Headline/learning` and `Headline/forgetting`" in first
    assert "Does LoRA forget less on code?" in rest
    for words in (spec.model, f"{spec.budget.total_tokens:,} tokens", "**`Headline/learning`**", "**`Headline/forgetting`**",
                  "EARLY_STOPPED", "`tokens`", "`adapter/`", "lfl-ray eval --adapter", "system/"):
        assert words in text, words
    assert "learning" in text and "higher = learned more" in text


def test_training_reports_log_tokens_as_a_metric(store):
    uri, experiment_id = store
    parent = schema.start_parent(uri, experiment_id, name="p", regime="code_ift", params={}, spec_json=None,
                                 resume=False)
    run_id = schema.child_run(uri, experiment_id, parent, key="tokens", family="full", regime="code_ift",
                              params={"lr": 1e-4})
    logger = RunLogger(uri, run_id)
    schema.log_trainable_params(logger, 1000, 0.5)
    schema.log_training(logger, step=4, tokens=2048, train_loss=1.5, lr=1e-4, tokens_per_s=100.0)
    schema.log_training(logger, step=8, tokens=4096, train_loss=1.4, lr=1e-4, tokens_per_s=100.0)  # as the loop does
    schema.log_milestone(logger, step=8, tokens=4096, metrics={"heldout_loss": 2.0, "learning": 0.1},
                         eval_json={"metrics": {}})
    mlflow_client = schema.client(uri)
    steps = lambda name: [(m.step, m.value) for m in mlflow_client.get_metric_history(run_id, name)]  # noqa: E731
    # Every metric's step is the optimizer step; tokens are a metric at each of those steps,
    # once (a second value at a step breaks the UI's charts by tokens).
    assert steps(schema.Metric.TOKENS) == [(0, 0.0), (4, 2048.0), (8, 4096.0)]
    assert steps(schema.Metric.TRAINABLE_PARAMS) == [(0, 1000.0)]
    assert steps(schema.Metric.TRAIN_LOSS) == [(4, 1.5), (8, 1.4)]
    assert steps("Headline/learning") == [(8, 0.1)] and steps(schema.Metric.LEARNING) == []
    keys = list(_run(uri, run_id).data.metrics)  # sqlite lists them as first logged: the run page's order
    assert keys.index("Headline/learning") < keys.index("heldout_loss")
    assert [m.step for m in schema.learning_history(mlflow_client, run_id)] == [8]
    # Per-item evals are still named by tokens.
    assert [a.path for a in mlflow_client.list_artifacts(run_id, "evals")] == ["evals/milestone_4096.json"]
    tokens_at = schema.step_tokens(mlflow_client, run_id)
    assert (tokens_at(4), tokens_at(8), tokens_at(6)) == (2048, 4096, 3072)  # 6: not logged, 512 per step
    assert schema.Metric.TOKENS in schema.Metric.TRAINING  # the reader leaves it out of eval milestones


def test_steps_of_a_run_without_tokens_are_tokens(store):
    """Stores written before the ``tokens`` metric logged step = tokens: a step reads as its tokens."""
    uri, experiment_id = store
    run_id = schema.client(uri).create_run(experiment_id).info.run_id
    RunLogger(uri, run_id).log_metrics({"learning": 0.1}, step=4096)
    assert schema.step_tokens(schema.client(uri), run_id)(4096) == 4096

import pytest

from lfl_ray.analysis.runs import config_labels, default_tracking_uri, load_eval, load_sweep
from lfl_ray.errors import ConfigError


def test_load_sweep_reads_parent_trials_and_milestones(store):
    uri, parents = store
    sweep = load_sweep("paper", uri)
    assert sweep.parent_run_id == parents["paper"]
    assert sweep.base_metrics["heldout_loss"] == pytest.approx(2.3)
    assert sweep.spec["regime"] == "code_ift"
    assert len(sweep.trials) == 14
    statuses = {t.trial_id: t.status for t in sweep.trials}
    assert statuses["full-failed"] == "FAILED" and statuses["lora-r16-all-stopped"] == "EARLY_STOPPED"
    assert "full-failed" not in {t.trial_id for t in sweep.usable}
    trial = next(t for t in sweep.trials if t.trial_id == "lora-r64-all")
    assert [m.tokens for m in trial.milestones] == [1000, 2000, 4000]
    assert trial.final.learning == pytest.approx(0.40)
    assert trial.final.metrics["heldout_loss"] == pytest.approx(2.3 - 0.40)
    assert 0 < trial.final.learning_se < 0.05
    assert (trial.method, trial.rank, trial.alpha, trial.targets, trial.lr) == (
        "lora", 64, 128.0, "all", 1e-4)
    full = next(t for t in sweep.trials if t.trial_id == "full-a")
    assert full.rank is None and full.targets is None and not full.is_lora


def test_load_eval_returns_per_item_json(store):
    uri, parents = store
    sweep = load_sweep("paper", uri)
    trial = next(t for t in sweep.trials if t.trial_id == "full-a")
    result = load_eval(sweep, trial.run_id, 4000)
    assert len(result["items"]["heldout_loss"]) == 40
    assert sum(result["items"]["heldout_loss"]) / 40 == pytest.approx(trial.final.metrics["heldout_loss"])
    assert load_eval(sweep, parents["paper"])["metrics"]["general_loss"] == pytest.approx(3.9)
    assert load_eval(sweep, trial.run_id, 123) is None


def test_unknown_experiment_names_the_known_ones(store):
    uri, _ = store
    with pytest.raises(ConfigError, match="paper"):
        load_sweep("no-such-sweep", uri)


def test_labels_show_what_varies_within_a_family(store):
    sweep = load_sweep("paper", store[0])
    labels = config_labels(sweep.usable)
    assert labels["full-a"] == "full lr=1e-05"
    assert labels["lora-r16-all-alpha-r"] != labels["lora-r16-all"]
    assert "alpha=16" in labels["lora-r16-all-alpha-r"]


def test_default_tracking_uri_is_absolute_sqlite(tmp_path):
    assert default_tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlruns/mlflow.db"


TOKENS_PER_STEP = 50
"""The round-trip sweep's tokens per optimizer step: steps and tokens differ, so a reader that
takes one for the other fails."""


def test_a_sweep_written_by_the_writer_reads_back_field_for_field(tmp_path):
    """The sweep's writer and analysis's reader agree on every field of the layout."""
    from lfl_ray import mlflow_schema as schema
    from dataclasses import replace

    from lfl_ray.analysis.runs import Milestone, Trial, load_spec_json
    from lfl_ray.mlflow_schema import Status
    from lfl_ray.tracking import RunLogger

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    experiment_id = schema.ensure_experiment(uri, "round-trip")
    assert schema.ensure_experiment(uri, "round-trip") == experiment_id
    spec_json = {"name": "round-trip", "regime": "math_ift", "budget": {"steps": 4, "milestones": [2, 4]},
                 "hub": {"token": "hf_never_logged"}}
    parent = schema.start_parent(uri, experiment_id, name="round-trip", regime="math_ift",
                                 params=schema.flatten(spec_json), spec_json=spec_json, resume=False)
    base_json = {"metrics": {"heldout_loss": 2.0, "general_loss": 3.0}, "items": {"heldout_loss": [1.5, 2.5]},
                 "groups": {"heldout_loss": ["a", "b"]}, "samples": []}
    schema.log_base(uri, parent, base_json["metrics"], base_json)

    written = {
        "full-done": dict(family="full", params={"method": "full", "lr": 1e-5, "seed": 0},
                          status=Status.FINISHED, tokens=[100, 200], checkpoint="/ckpt/full"),
        "lora-failed": dict(family="lora-r8-all", params={"method": "lora", "lr": 1e-4, "rank": 8,
                                                          "alpha": 16.0, "targets": "all", "seed": 1},
                            status=Status.FAILED, tokens=[100], error="RuntimeError: boom"),
        "lora-stopped": dict(family="lora-r8-all", params={"method": "lora", "lr": 1e-3, "rank": 8,
                                                           "alpha": 16.0, "targets": "attention"},
                             status=Status.EARLY_STOPPED, tokens=[100]),
        "lora-cut": dict(family="lora-r8-all", params={"method": "lora", "lr": 2e-4, "rank": 8,
                                                       "alpha": 16.0, "targets": "mlp"},
                         status=Status.INTERRUPTED, tokens=[]),
        "lora-live": dict(family="lora-r8-all", params={"method": "lora", "lr": 3e-4, "rank": 8,
                                                        "alpha": 16.0, "targets": "all", "hiddenkey": None},
                          status=Status.RUNNING, tokens=[100]),
    }
    run_ids, evals = {}, {}
    for key, t in written.items():
        run_id = schema.child_run(uri, experiment_id, parent, key=key, family=t["family"],
                                  regime="math_ift", params=t["params"])
        assert schema.child_run(uri, experiment_id, parent, key=key, family=t["family"],
                                regime="math_ift", params=t["params"]) == run_id  # found again by key
        run_ids[key] = run_id
        logger = RunLogger(uri, run_id)
        schema.log_trainable_params(logger, 1234, 0.5)
        for index, tokens in enumerate(t["tokens"]):
            step = tokens // TOKENS_PER_STEP
            schema.log_training(logger, step=step, tokens=tokens, train_loss=3.0 - index, lr=1e-4, tokens_per_s=9e3)
            metrics = {"learning": 0.1 * (index + 1), "learning_se": 0.01, "forgetting": -0.02,
                       "forgetting_se": 0.005, "heldout_loss": 1.9, "heldout_loss_delta": -0.1,
                       "heldout_loss_delta_se": 0.01, "diversity_unique": 0.7, "eval_seconds": 1.5}
            evals[key, tokens] = {"metrics": metrics, "items": {"heldout_loss": [1.4, 2.4]},
                                  "groups": {"heldout_loss": ["a", "b"]}, "samples": [{"completion": "x"}]}
            schema.log_milestone(logger, step=step, tokens=tokens, metrics=metrics, eval_json=evals[key, tokens])
        if t.get("checkpoint"):
            schema.set_checkpoint(uri, run_id, t["checkpoint"])
        if t["status"] != Status.RUNNING:
            schema.end_run(uri, run_id, t["status"], error=t.get("error"))
    schema.end_run(uri, parent, Status.FINISHED)

    sweep = load_sweep("round-trip", uri)
    assert (sweep.name, sweep.experiment_id, sweep.parent_run_id, sweep.tracking_uri) == (
        "round-trip", experiment_id, parent, uri)
    assert sweep.spec == {"name": "round-trip", "regime": "math_ift", "budget.steps": "4",
                          "budget.milestones": "[2, 4]"}  # the token-like key is never logged
    assert load_spec_json(sweep) == {k: v for k, v in spec_json.items() if k != "hub"} | {"hub": {}}
    assert sweep.base_metrics == {"heldout_loss": 2.0, "general_loss": 3.0}
    assert load_eval(sweep, parent) == base_json
    assert [t.trial_id for t in sweep.trials] == sorted(written)
    for trial in sweep.trials:
        t = written[trial.trial_id]
        expected_milestones = tuple(
            Milestone(tokens=tokens, step=tokens // TOKENS_PER_STEP, learning=0.1 * (i + 1), learning_se=0.01,
                      forgetting=-0.02, forgetting_se=0.005, metrics=evals[trial.trial_id, tokens]["metrics"])
            for i, tokens in enumerate(t["tokens"]))
        assert trial.trained_tokens == (t["tokens"][-1] if t["tokens"] else None)
        assert trial.summary.get("trainable_params") == 1234
        assert replace(trial, summary={}, trained_tokens=None) == Trial(
            run_id=run_ids[trial.trial_id], trial_id=trial.trial_id, family=t["family"], regime="math_ift",
            status=t["status"], params={k: str(v) for k, v in t["params"].items() if v is not None},
            milestones=expected_milestones, checkpoint=t.get("checkpoint"), error=t.get("error"))
        for tokens in t["tokens"]:
            assert load_eval(sweep, trial.run_id, tokens) == evals[trial.trial_id, tokens]
    assert {t.trial_id for t in sweep.usable} == {"full-done", "lora-stopped", "lora-live"}
    by_key = {t.trial_id: t for t in sweep.trials}
    assert by_key["lora-failed"].is_lora and by_key["lora-failed"].rank == 8
    assert not by_key["full-done"].is_lora and by_key["full-done"].lr == 1e-5


@pytest.mark.parametrize("tokens_metric", [False, True])
def test_an_older_store_whose_steps_are_tokens_still_reads_right(tmp_path, tokens_metric):
    """Stores written by earlier lfl-ray logged every trial metric at step = tokens (and the primary
    pair as plain ``learning``, ``forgetting``), first without
    a ``tokens`` metric, then with one equal to its step: milestones read the same tokens."""
    from lfl_ray import mlflow_schema as schema
    from lfl_ray.mlflow_schema import Status
    from lfl_ray.tracking import RunLogger

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    experiment_id = schema.ensure_experiment(uri, "old")
    parent = schema.start_parent(uri, experiment_id, name="old", regime="code_ift", params={}, spec_json=None,
                                 resume=False)
    run_id = schema.child_run(uri, experiment_id, parent, key="full-old", family="full", regime="code_ift",
                              params={"method": "full", "lr": 1e-4})
    RunLogger(uri, parent).log_metrics({"base/heldout_loss": 2.3}, step=0)  # the old name of heldout_loss_base
    logger = RunLogger(uri, run_id)  # the old writer, call for call
    logger.log_metrics({"trainable_params": 1234, "trainable_fraction": 1.0}, step=0)
    for tokens in (2048, 4096):
        training = {"train_loss": 2.0, "learning_rate": 1e-4, "tokens_per_s": 150.0}
        logger.log_metrics(training | ({"tokens": tokens} if tokens_metric else {}), step=tokens)
        metrics = {"learning": tokens / 1e5, "learning_se": 0.01, "forgetting": -0.01, "forgetting_se": 0.005,
                   "heldout_loss": 2.0 - tokens / 1e5}
        logger.log_metrics(metrics | ({"tokens": tokens} if tokens_metric else {}), step=tokens)
        logger.log_json({"metrics": metrics, "items": {}, "groups": {}, "samples": []},
                        f"evals/milestone_{tokens}.json")
    schema.end_run(uri, run_id, Status.FINISHED)
    schema.end_run(uri, parent, Status.FINISHED)

    sweep = load_sweep("old", uri)
    assert sweep.base_metrics == {"heldout_loss": 2.3}
    (trial,) = sweep.trials
    assert [(m.tokens, m.step) for m in trial.milestones] == [(2048, 2048), (4096, 4096)]
    assert trial.final.learning == pytest.approx(0.04096)
    assert trial.trained_tokens == 4096
    assert load_eval(load_sweep("old", uri), run_id, trial.final.tokens)["metrics"]["learning"] == pytest.approx(0.04096)

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

"""The smoke sweep end to end: real Ray Tune + Ray Train, real sqlite MLflow store."""

from __future__ import annotations

import json
from pathlib import Path

from mlflow import MlflowClient

from lfl_ray.sweep.study import load_study


def _runs(outcome):
    client = MlflowClient(outcome.tracking_uri)
    runs = client.search_runs([outcome.experiment_id], max_results=1000)
    parent = [r for r in runs if r.data.tags.get("lfl.role") == "sweep"]
    children = [r for r in runs if r.data.tags.get("lfl.role") == "trial"]
    return client, parent, children


def test_smoke_sweep_leaves_one_nested_run_per_trial(smoke_sweep):
    spec = load_study("code_ift", preset="smoke").spec()
    client, parents, children = _runs(smoke_sweep)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    expected = {t.key for t in spec.trials()}
    assert {c.data.tags["lfl.trial_key"] for c in children} == expected  # one run per trial, no duplicates
    assert len(children) == len(expected) == 3
    assert all(c.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for c in children)
    assert {c.data.params["method"] for c in children} == {"full", "lora"}
    assert not [c for c in children if c.info.status == "RUNNING"]
    # Base-model metrics and spec on the parent.
    assert "heldout_loss_base" in parents[0].data.metrics and "general_loss_base" in parents[0].data.metrics
    artifacts = {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    assert "sweep_spec.json" in artifacts


def test_statuses_include_an_asha_stop(smoke_sweep):
    _client, _parents, children = _runs(smoke_sweep)
    by_key = {c.data.tags["lfl.trial_key"]: c for c in children}
    full = next(c for k, c in by_key.items() if k.startswith("full"))
    useless = next(c for k, c in by_key.items() if "lr1e-07" in k)
    assert full.info.status == "FINISHED" and full.data.tags["lfl.status"] == "FINISHED"
    assert useless.info.status == "FINISHED" and useless.data.tags["lfl.status"] == "EARLY_STOPPED"
    assert "lfl.error" not in useless.data.tags
    assert smoke_sweep.statuses[full.data.tags["lfl.trial_key"]] == "FINISHED"
    assert smoke_sweep.statuses[useless.data.tags["lfl.trial_key"]] == "EARLY_STOPPED"


def test_metrics_at_every_milestone(smoke_sweep):
    spec = load_study("code_ift", preset="smoke").spec()
    client, _parents, children = _runs(smoke_sweep)
    milestones = list(spec.budget.milestones)
    milestone_tokens = [m * spec.budget.tokens_per_step for m in milestones]
    for child in children:
        done = len(milestones) if child.data.tags["lfl.status"] == "FINISHED" else 1
        for name in ("Headline/learning", "Headline/learning_se", "Headline/forgetting", "Headline/forgetting_se",
                     "heldout_loss_delta", "drift_kl"):
            steps = [m.step for m in client.get_metric_history(child.info.run_id, name)]
            assert steps[:done] == milestones[:done], (child.info.run_name, name, steps)  # optimizer steps
        # tokens is a metric at every step that has metrics: trainable_params' 0, reports, milestones.
        history = client.get_metric_history(child.info.run_id, "tokens")
        tokens = {m.step: m.value for m in history}
        assert len(tokens) == len(history)  # once a step: the UI's charts by tokens pair x and y by position
        assert tokens[0] == 0 and all(tokens[s] == s * spec.budget.tokens_per_step for s in tokens)
        assert [tokens[s] for s in milestones[:done]] == milestone_tokens[:done]
        losses = client.get_metric_history(child.info.run_id, "train_loss")
        assert losses and all(0 < m.step <= spec.budget.steps and m.step in tokens for m in losses)
    from lfl_ray.analysis.runs import load_sweep

    for trial in load_sweep(smoke_sweep.name, smoke_sweep.tracking_uri).usable:  # the reader: steps -> tokens
        assert [(m.step, m.tokens) for m in trial.milestones] == list(zip(milestones, milestone_tokens))[
            :len(trial.milestones)]
        if trial.status == "FINISHED":
            assert trial.trained_tokens == spec.budget.total_tokens
        artifacts = {a.path for a in client.list_artifacts(child.info.run_id, "evals")}
        assert f"evals/milestone_{milestone_tokens[0]}.json" in artifacts
    finished = [c for c in children if c.data.tags["lfl.status"] == "FINISHED"]
    for child in finished:
        checkpoint = Path(child.data.tags["lfl.checkpoint"])
        assert json.loads((checkpoint / "trainer_state.json").read_text())["step"] == spec.budget.steps
        assert (checkpoint / "model").is_dir()


def test_hub_token_never_logged(smoke_sweep, hub_secret):
    client, parents, children = _runs(smoke_sweep)
    for run in parents + children:
        for value in list(run.data.params.values()) + list(run.data.tags.values()):
            assert hub_secret not in value
    store = Path(smoke_sweep.tracking_uri[len("sqlite:///"):]).parent
    roots = [store, Path(smoke_sweep.storage_path)]
    scanned = 0
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and path.stat().st_size < 50_000_000:
                assert hub_secret.encode() not in path.read_bytes(), path
                scanned += 1
    assert scanned > 10  # the store, the artifacts and Tune's results were all read


def test_report_renders_from_the_real_smoke_sweep(smoke_sweep, tmp_path):
    import re

    from lfl_ray.analysis.report import build_report
    from lfl_ray.analysis.runs import load_sweep

    sweep = load_sweep(smoke_sweep.name, smoke_sweep.tracking_uri)
    path = build_report(sweep, tmp_path / "report")
    html = Path(path).read_text()
    assert "Recommendations" in html or "recommendations" in html
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(images) >= 3
    for name in re.findall(r'([\w-]+\.png)', html):
        assert (tmp_path / "report" / name).exists(), name
    assert "rank" in html.lower()  # weight-change spectra of the real checkpoints
    client, parents, _ = _runs(smoke_sweep)
    logged = {a.path for a in client.list_artifacts(parents[0].info.run_id, "analysis")}
    assert any(p.endswith("report.html") for p in logged)


def test_intruder_mitigation_of_the_best_lora_trial_then_the_report(smoke_sweep, tmp_path, capsys):
    """`analyse intruder-mitigation --mitigation-trials best` evaluates only the LoRA trial that
    learned most (1 + strengths evals), and the report's intruder finding quotes it."""
    import json

    from lfl_ray.analysis.cli import main as analyse

    out = tmp_path / "report"
    common = ["--experiment", smoke_sweep.name, "--tracking-uri", smoke_sweep.tracking_uri, "--out", str(out)]
    assert analyse(["intruder-mitigation", *common, "--strengths", "0.5", "--mitigation-trials", "best"]) == 0
    summary = json.loads((out / "intruder_mitigation.json").read_text())
    assert len(summary["trials"]) == 1 and summary["evaluations"] == 2
    assert any("learned most" in s["why"] for s in summary["skipped"])
    assert analyse(["report", *common, "--no-weights"]) == 0
    found = {f["id"]: f for f in json.loads((out / "findings.json").read_text())["findings"]}
    assert found["intruders"]["verdict"] != "not tested"
    assert found["intruders"]["numbers"]["trial"] == summary["trials"][0]["trial_id"]

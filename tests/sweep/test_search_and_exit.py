"""Searches beyond the grid, user-written studies and the exit status, on real tiny sweeps."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from lfl_ray.sweep.cli import EXIT_NONE_FINISHED, EXIT_SOME_FAILED, main

TINY = """\
regime: code_ift
model: tiny-llama
max_train_blocks: 64
heldout_blocks: 4
general_blocks: 4
budget: {steps: 2, seq_len: 256, micro_batch_size: 2, global_batch_size: 2, milestones: [2], warmup_steps: 0}
eval: {suites: [heldout_loss, general_loss], batch_size: 4}
resources: {num_workers: 1, cpus_per_worker: 1.0, max_failures: 0}
"""


def _sweep(tmp_path: Path, name: str, body: str, *extra: str) -> tuple[int, str]:
    study = tmp_path / f"{name}.yaml"
    study.write_text(TINY + body)
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    code = main([str(study), "--tracking-uri", uri, "--storage-path", str(tmp_path / "rr"), *extra])
    return code, uri


def _trials(uri: str, name: str):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id], max_results=100)
    return [r for r in runs if r.data.tags.get("lfl.role") == "trial"], runs


def test_user_study_runs_for_real(ray_local, tmp_path, capsys):
    code, uri = _sweep(tmp_path, "mine", "full: [{lrs: [2e-4]}]\nlora: [{ranks: [4], lrs: [2e-4, 1e-3]}]\n")
    assert code == 0, capsys.readouterr().err
    trials, runs = _trials(uri, "mine")
    assert sorted(float(t.data.params["lr"]) for t in trials if t.data.params["method"] == "lora") == [2e-4, 1e-3]
    assert all(t.info.status == "FINISHED" for t in trials) and len(trials) == 3
    full = next(t for t in trials if t.data.params["method"] == "full")
    assert not {"rank", "alpha", "targets"} & set(full.data.params)  # a full-FT run has no LoRA fields
    assert not [r for r in runs if r.info.status == "RUNNING"]


@pytest.mark.parametrize("search", ["optuna", "pareto"])
def test_samplers_run_every_sample_as_its_own_trial(ray_local, tmp_path, capsys, search):
    body = (f"search: {search}\nnum_samples: 3\nscheduler: none\nfull: []\n"
            "lora: [{ranks: [4, 8], lrs: [1e-3, 5e-3], targets: [all]}]\n")
    code, uri = _sweep(tmp_path, f"s-{search}", body)
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]
    trials, runs = _trials(uri, f"s-{search}")
    assert len(trials) == 3 and len({t.data.tags["lfl.trial_key"] for t in trials}) == 3
    assert all(t.info.status == "FINISHED" and "Headline/learning" in t.data.metrics for t in trials)
    lrs = [float(t.data.params["lr"]) for t in trials]
    assert len(set(lrs)) == 3 and all(1e-3 <= lr <= 5e-3 for lr in lrs)  # log-uniform within the range
    checkpoints = {t.data.tags.get("lfl.checkpoint") for t in trials}
    assert len(checkpoints) == 3  # its own storage each
    assert not [r for r in runs if r.info.status == "RUNNING"]


def test_errors_keep_type_and_message_through_ray_and_some_failed_exits_3(ray_local, tmp_path, capsys,
                                                                         monkeypatch):
    # Trials 0-2 raise lfl-ray's error types and a plain one inside the training loop; 3 is clean.
    monkeypatch.setenv("LFL_RAY_FAULTS", "0:config@1,1:asset@1,2:raise@1")
    body = "scheduler: none\nlora: []\nfull: [{lrs: [1e-3, 2e-3, 3e-3, 4e-3]}]\n"
    code, uri = _sweep(tmp_path, "errs", body)
    out = capsys.readouterr().out
    assert code == EXIT_SOME_FAILED, out[-3000:]
    trials, runs = _trials(uri, "errs")
    by_lr = {float(t.data.params["lr"]): t for t in trials}
    assert "ConfigError: injected.field: got 1; must survive the trip through Ray" in by_lr[1e-3].data.tags["lfl.error"]
    assert "AssetMissingError: injected asset is not available" in by_lr[2e-3].data.tags["lfl.error"]
    assert "RuntimeError: injected fault" in by_lr[3e-3].data.tags["lfl.error"]
    assert "TypeError" not in by_lr[1e-3].data.tags["lfl.error"]
    assert by_lr[4e-3].info.status == "FINISHED"
    for lr in (1e-3, 2e-3, 3e-3):
        key = by_lr[lr].data.tags["lfl.trial_key"]
        assert f"[sweep] FAILED {key}:" in out
    assert "FAILED" in out and "ConfigError" in out
    assert not [r for r in runs if r.info.status == "RUNNING"]


def test_a_sweep_whose_trials_all_fail_exits_4(ray_local, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LFL_RAY_FAULTS", "0:raise@1")
    code, uri = _sweep(tmp_path, "allfail", "scheduler: none\nlora: []\nfull: [{lrs: [1e-3]}]\n")
    assert code == EXIT_NONE_FINISHED
    trials, runs = _trials(uri, "allfail")
    parent = next(r for r in runs if r.data.tags.get("lfl.role") == "sweep")
    assert parent.info.status == "FAILED" and trials[0].info.status == "FAILED"
    assert not [r for r in runs if r.info.status == "RUNNING"]


def test_replaying_a_sweep_from_its_logged_spec_gives_the_same_trials(ray_local, tmp_path, capsys):
    from lfl_ray.sweep.study import load_study

    code, uri = _sweep(tmp_path, "orig", "scheduler: none\nfull: [{lrs: [2e-3]}]\nlora: [{ranks: [4], lrs: [1e-3]}]\n")
    assert code == 0
    _trials_, runs = _trials(uri, "orig")
    parent = next(r for r in runs if r.data.tags.get("lfl.role") == "sweep")
    path = MlflowClient(uri).download_artifacts(parent.info.run_id, "sweep_spec.json", str(tmp_path))
    replayed = load_study(path).spec().validate()
    original = load_study(str(tmp_path / "orig.yaml")).spec()
    assert replayed == original
    assert [t.key for t in replayed.trials()] == [t.key for t in original.trials()]
    assert main([path, "--dry-run"]) == 0

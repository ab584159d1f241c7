"""Faults injected for real: a raising trial, a NaN loss, a killed worker, a killed driver."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from mlflow import MlflowClient

from lfl_ray.sweep import FullGrid, LoraGrid
from lfl_ray.sweep.study import load_study
from lfl_ray.sweep.runner import run_sweep
from lfl_ray.tracking import RunLogger
from lfl_ray.train.config import Budget, Resources, FaultInjection, TrialConfig
from lfl_ray.methods import Full
from lfl_ray.train.trial import build_trainer

REPO = Path(__file__).resolve().parents[2]


def _children(uri, name):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(name)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    return {r.data.tags["lfl.trial_key"]: r for r in runs if r.data.tags.get("lfl.role") == "trial"}, runs


@pytest.mark.slow
def test_failing_trials_do_not_take_the_sweep_down(ray_local, tmp_path, monkeypatch):
    spec = replace(load_study("code_ift", preset="smoke", name="faults").spec(), scheduler="none",
                   full=(FullGrid(lrs=(2e-3,)),), lora=(LoraGrid(ranks=(8,), lrs=(5e-3, 1e-3, 2e-3)),),
                   resources=Resources(num_workers=1, cpus_per_worker=1.0, max_failures=1))
    # trial 0 raises once after its first checkpoint (retried from it), trial 1 goes NaN, trial 2 is
    # clean, trial 3 runs out of memory at step 3 on every attempt (retried once, then FAILED).
    monkeypatch.setenv("LFL_RAY_FAULTS", "0:raise@6,1:nan@3,3:oom@3")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    outcome = run_sweep(spec, tracking_uri=uri, storage_path=str(tmp_path / "rr"))
    children, runs = _children(uri, "faults")
    assert len(children) == 4
    retried = next(r for k, r in children.items() if k.startswith("full"))
    nan_trial = next(r for k, r in children.items() if "lr0.005-" in k)
    clean = next(r for k, r in children.items() if "lr0.001-" in k)
    oom = next(r for k, r in children.items() if "lr0.002-" in k and k.startswith("lora"))
    assert oom.info.status == "FAILED" and "can't allocate memory" in oom.data.tags["lfl.error"]
    assert retried.info.status == "FINISHED"  # resumed from its step-4 checkpoint
    assert nan_trial.info.status == "FAILED" and "loss became nan" in nan_trial.data.tags["lfl.error"]
    assert "train_loss" in nan_trial.data.metrics  # its last metrics are kept
    assert clean.info.status == "FINISHED"
    assert outcome.statuses[nan_trial.data.tags["lfl.trial_key"]] == "FAILED"
    assert not [r for r in runs if r.info.status == "RUNNING"]


@pytest.mark.slow
def test_killed_worker_restarts_from_checkpoint(ray_local, pattern_blocks, tmp_path):
    cfg = TrialConfig(method=Full(), lr=1e-3, report_every=2,
                      budget=Budget(steps=12, milestones=(4,), micro_batch_size=2, global_batch_size=4),
                      resources=Resources(num_workers=2, cpus_per_worker=0.99),
                      fault=FaultInjection(kill_worker_at_step=7))
    result = build_trainer(cfg, pattern_blocks, name="killed-worker", storage_path=str(tmp_path),
                           max_failures=1).fit()
    assert result.error is None
    assert result.metrics["step"] == 12
    # The restarted group resumed from the step-4 checkpoint: two checkpoints kept, the last at 12.
    assert (Path(result.checkpoint.path) / "trainer_state.json").read_text().count('"step": 12') == 1


def test_logging_errors_are_retried_then_reported(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    logger = RunLogger(f"sqlite:///{blocker}/sub/mlflow.db", "0" * 32)
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match="failed after 4 tries"):
        logger.log_metrics({"loss": 1.0}, step=1)
    assert time.perf_counter() - start >= 3.0  # backoff 0.5 + 1 + 2 s: it did retry


@pytest.mark.slow
def test_killed_driver_resumes_without_duplicates(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text("scheduler: none\nbudget: {steps: 12, milestones: [4, 8, 12], warmup_steps: 1}\n")
    cmd = [sys.executable, str(REPO / "sweeps/code_ift.py"), "--preset", "smoke", "--name", "killed",
           "--tracking-uri", uri, "--storage-path", str(tmp_path / "rr"), "--spec-file", str(spec_file)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    first = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             start_new_session=True, text=True)
    finished_before = {}
    deadline = time.time() + 600
    while time.time() < deadline:
        time.sleep(3)
        if not (tmp_path / "mlruns" / "mlflow.db").exists():
            continue
        try:
            children, _ = _children(uri, "killed")
        except Exception:  # noqa: BLE001 - store still being created
            continue
        finished_before = {k: r.info.run_id for k, r in children.items() if r.info.status == "FINISHED"}
        running = [r for r in children.values() if r.info.status == "RUNNING"]
        client = MlflowClient(uri)
        if finished_before and running and client.get_metric_history(running[0].info.run_id, "Headline/learning"):
            break  # one trial done, the next past its first checkpoint
    assert finished_before, "the sweep did not get far enough to kill it"
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    time.sleep(2)
    second = subprocess.run(cmd + ["--resume"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    children, runs = _children(uri, "killed")
    assert len(children) == 3 and len([r for r in runs if r.data.tags.get("lfl.role") == "sweep"]) == 1
    assert all(r.info.status in ("FINISHED", "KILLED") for r in runs), [(r.info.run_name, r.info.status) for r in runs]
    assert not [r for r in runs if r.info.status == "RUNNING"]
    for key, run_id in finished_before.items():
        assert children[key].info.run_id == run_id  # the same run: not re-run, no duplicate
        history = MlflowClient(uri).get_metric_history(run_id, "Headline/learning")
        assert len(history) == 3  # milestones logged once each


@pytest.mark.slow
def test_ctrl_c_marks_the_sweep_interrupted_and_resume_finishes_it(tmp_path):
    """Ctrl-C is neither a failure nor an early stop: runs end KILLED/INTERRUPTED, --resume finishes."""
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text("scheduler: none\nlora: []\nfull: [{lrs: [0.002, 0.001]}]\n"
                         "budget: {steps: 12, milestones: [4, 8, 12], warmup_steps: 1}\n")
    cmd = [sys.executable, str(REPO / "sweeps/code_ift.py"), "--preset", "smoke", "--name", "ctrlc",
           "--tracking-uri", uri, "--storage-path", str(tmp_path / "rr"), "--spec-file", str(spec_file)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    first = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             start_new_session=True, text=True)
    deadline, cut = time.time() + 600, None
    while time.time() < deadline and cut is None:
        time.sleep(2)
        try:
            children, _ = _children(uri, "ctrlc")
        except Exception:  # noqa: BLE001 - store still being created
            continue
        for run in children.values():
            if run.info.status == "RUNNING" and MlflowClient(uri).get_metric_history(run.info.run_id, "Headline/learning"):
                cut = run.data.tags["lfl.trial_key"]
    assert cut, "the sweep did not reach a first milestone"
    os.kill(first.pid, signal.SIGINT)
    out, _ = first.communicate(timeout=300)
    assert "interrupted: run the same command with --resume" in out, out[-3000:]
    children, runs = _children(uri, "ctrlc")
    assert children[cut].info.status == "KILLED" and children[cut].data.tags["lfl.status"] == "INTERRUPTED"
    parent = next(r for r in runs if r.data.tags.get("lfl.role") == "sweep")
    assert parent.info.status == "KILLED" and parent.data.tags["lfl.status"] == "INTERRUPTED"

    second = subprocess.run(cmd + ["--resume"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    children, runs = _children(uri, "ctrlc")
    assert len(children) == 2 and all(r.info.status == "FINISHED" for r in runs), \
        [(r.info.run_name, r.info.status) for r in runs]
    steps = {m.step for m in MlflowClient(uri).get_metric_history(children[cut].info.run_id, "Headline/learning")}
    assert len(steps) == 3  # its milestones, continued from the checkpoint


def test_a_new_sweep_of_a_reused_name_trains_from_scratch(ray_local, tmp_path):
    """Re-running a finished sweep without --resume trains again: old checkpoints in the same
    storage folder are not taken as the new trials' progress."""
    spec = replace(load_study("code_ift", preset="smoke", name="again").spec(), scheduler="none", lora=(),
                   full=(FullGrid(lrs=(2e-3,)),), budget=replace(load_study("code_ift", preset="smoke").spec().budget,
                                                                 steps=4, milestones=(4,)))
    runs = []
    for attempt in range(2):
        uri = f"sqlite:///{tmp_path}/store{attempt}/mlflow.db"
        outcome = run_sweep(spec, tracking_uri=uri, storage_path=str(tmp_path / "rr"))
        assert list(outcome.statuses.values()) == ["FINISHED"]
        children, _ = _children(uri, "again")
        (run,) = children.values()
        runs.append(run)
        history = MlflowClient(uri).get_metric_history(run.info.run_id, "Headline/learning")
        assert [m.step for m in history] == [4]  # trained to its milestone (step 4) and evaluated, again
    assert runs[0].data.tags["lfl.checkpoint"] != runs[1].data.tags["lfl.checkpoint"]

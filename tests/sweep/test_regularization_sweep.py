"""sweeps/regularization.py: every family runs end to end and is logged as its own family."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from lfl_ray.sweep.study import load_study
from lfl_ray.sweep.runner import run_sweep


@pytest.mark.slow
def test_regularization_smoke_logs_every_family(ray_local, tmp_path):
    spec = load_study("regularization", preset="smoke", name="reg-smoke").spec()
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    outcome = run_sweep(spec, tracking_uri=uri, storage_path=str(tmp_path / "rr"))
    client = MlflowClient(uri)
    runs = client.search_runs([outcome.experiment_id])
    trials = [r for r in runs if r.data.tags.get("lfl.role") == "trial"]
    families = {r.data.tags["lfl.family"] for r in trials}
    assert families == {"full", "full+wd", "full+dropout", "lora-r8-all", "lora-r8-all+hiddenkey"}
    assert all(r.info.status == "FINISHED" for r in trials), [(r.info.run_name, r.info.status) for r in trials]
    by_family = {r.data.tags["lfl.family"]: r for r in trials}
    assert by_family["full+wd"].data.params["weight_decay"] == "0.1"
    assert by_family["full+dropout"].data.params["hidden_dropout"] == "0.1"
    assert by_family["lora-r8-all+hiddenkey"].data.params["hiddenkey"] == "True"
    assert by_family["lora-r8-all+hiddenkey"].data.params["hiddenkey_kl_weight"] == "1.0"
    for run in trials:
        assert "Headline/learning" in run.data.metrics and "Headline/forgetting" in run.data.metrics

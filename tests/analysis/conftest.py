"""One real sqlite MLflow store for the analysis tests (MLflow migrates it on first open,
which takes seconds, so it is made once), holding synthetic sweeps written by the sweep's own MLflow writer."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from synthetic_sweep import FakeTrial, paper_like, write_sweep  # noqa: E402


def noise_trials() -> list[FakeTrial]:
    """Full FT and LoRA that differ by far less than their noise."""
    return [FakeTrial("full", "full", {"method": "full", "lr": 1e-5}, [0.1, 0.2, 0.300],
                      [0.1, 0.1, 0.100], item_noise=0.3),
            FakeTrial("lora", "lora-r16-all", {"method": "lora", "lr": 1e-4, "rank": 16},
                      [0.1, 0.2, 0.302], [0.1, 0.1, 0.101], item_noise=0.3)]


def seeded_trials() -> list[FakeTrial]:
    """Three seeds each of full FT and LoRA (learning 0.50/0.52/0.48 vs 0.30/0.31/0.29)."""
    trials = []
    for seed, (full, lora) in enumerate([(0.50, 0.30), (0.52, 0.31), (0.48, 0.29)]):
        trials.append(FakeTrial(f"full-s{seed}", "full", {"method": "full", "lr": 1e-5, "seed": seed},
                                [full / 2, full], [0.2, 0.3], tokens=[1000, 2000]))
        trials.append(FakeTrial(f"lora-s{seed}", "lora-r16-all",
                                {"method": "lora", "lr": 1e-4, "rank": 16, "seed": seed},
                                [lora / 2, lora], [0.05, 0.1], tokens=[1000, 2000]))
    return trials


@pytest.fixture(scope="session")
def store(tmp_path_factory):
    """``(tracking_uri, parent ids)`` of a store with sweeps ``paper``, ``flip``, ``noise``, ``seeds``, ``empty``."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root}/mlflow.db"
    parents = {"paper": write_sweep(uri, "paper", paper_like(False)),
               "flip": write_sweep(uri, "flip", paper_like(True)),
               "noise": write_sweep(uri, "noise", noise_trials()),
               "seeds": write_sweep(uri, "seeds", seeded_trials()),
               "empty": write_sweep(uri, "empty", [])}
    return uri, parents

"""Shared fixtures: one local Ray cluster per test session, small real data."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
SMOKE_SECRET = "hf_lflSecretTokenThatMustNeverBeLogged123"


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray cluster (2 CPUs, dashboard on 127.0.0.1), shared by the session."""
    import ray

    from lfl_ray.ray_runtime import init_ray

    init_ray(num_cpus=2)
    yield ray
    ray.shutdown()


@pytest.fixture
def no_ray_work(monkeypatch):
    """Fail the test if the code under test starts or joins a Ray cluster (``init_ray`` or
    ``ray.init``), whether or not another test of this session already started one."""
    import ray

    import lfl_ray.ray_runtime

    def refuse(*args, **kwargs):
        raise AssertionError("Ray work started where none may start")

    monkeypatch.setattr(lfl_ray.ray_runtime, "init_ray", refuse)
    monkeypatch.setattr(ray, "init", refuse)


@pytest.fixture(scope="session")
def pattern_blocks():
    """A learnable token stream (a repeated random 50-token pattern) in 64-token blocks."""
    from lfl_ray.data.blocks import TokenBlocks

    gen = torch.Generator().manual_seed(0)
    pattern = torch.randint(0, 49152, (50,), generator=gen)
    return TokenBlocks.from_stream(pattern.repeat(400), 64)


@pytest.fixture(scope="session")
def hub_secret() -> str:
    """The fake hub token the smoke sweep runs with (it must appear in no log or store)."""
    return SMOKE_SECRET


@pytest.fixture(scope="session")
def smoke_sweep(ray_local, tmp_path_factory):
    """The smoke preset of code_ift run for real once per session (tiny model, ~2-3 min):
    a real local Ray, a real sqlite MLflow store. Returns the SweepOutcome."""
    from lfl_ray.sweep.runner import run_sweep
    from lfl_ray.sweep.study import load_study

    root = tmp_path_factory.mktemp("smoke_sweep")
    # A hub token in the environment, as a user on a cluster has one: it must never be logged.
    os.environ["HF_TOKEN"] = SMOKE_SECRET
    spec = load_study("code_ift", preset="smoke", name="smoke-test").spec()
    return run_sweep(spec, tracking_uri=f"sqlite:///{root}/mlruns/mlflow.db", storage_path=str(root / "ray_results"))

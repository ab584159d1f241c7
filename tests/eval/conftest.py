"""Shared fixtures: a private eval cache (real models and assets linked in) and the tiny model."""

from __future__ import annotations

import pytest

from lfl_ray.cache import cache_dir


@pytest.fixture
def eval_cache(tmp_path, monkeypatch):
    """A fresh cache root whose models/ and assets/ are the real ones, so base results land
    in a temporary evals/ folder."""
    real = cache_dir()
    root = tmp_path / "cache"
    root.mkdir()
    for name in ("models", "assets"):
        if (real / name).exists():
            (root / name).symlink_to(real / name)
    monkeypatch.setenv("LFL_RAY_CACHE", str(root))
    return root


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from lfl_ray.models import load_tokenizer

    return load_tokenizer("tiny-llama")


@pytest.fixture
def tiny_model():
    from lfl_ray.models import load_model

    return load_model("tiny-llama")



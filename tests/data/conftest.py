"""Data fixtures: a temporary data cache for the session (assets and the tokenizer stay in
the main cache), the real SmolLM2 tokenizer, and regimes built once at small caps."""

from __future__ import annotations

import os

import pytest

SMALL = dict(max_train_blocks=24, heldout_blocks=16, seq_len=256)
"""Caps of the regimes the tests build (seconds each)."""


@pytest.fixture(scope="session", autouse=True)
def data_cache(tmp_path_factory):
    """LFL_RAY_DATA_CACHE -> a fresh folder, so tests build for real and leave nothing behind."""
    folder = tmp_path_factory.mktemp("data-cache")
    before = os.environ.get("LFL_RAY_DATA_CACHE")
    os.environ["LFL_RAY_DATA_CACHE"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("LFL_RAY_DATA_CACHE", None)
    else:
        os.environ["LFL_RAY_DATA_CACHE"] = before


@pytest.fixture(scope="session")
def tokenizer():
    from lfl_ray.data.build import _tokenizer

    return _tokenizer("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def built(data_cache):
    """regime -> RegimeData built (once per session) with the SMALL caps."""
    from lfl_ray.data import DataSpec, load_regime

    cache: dict = {}

    def get(regime: str, **overrides):
        key = (regime, tuple(sorted(overrides.items())))
        if key not in cache:
            cache[key] = load_regime(DataSpec(regime, **{**SMALL, **overrides}), log=lambda *_: None)
        return cache[key]

    return get

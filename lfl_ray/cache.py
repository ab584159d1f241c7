"""Where lfl-ray keeps converted models, extracted and built data and base-model eval results."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The cache root: ``$LFL_RAY_CACHE`` or ``~/.cache/lfl_ray``."""
    root = os.environ.get("LFL_RAY_CACHE") or Path.home() / ".cache" / "lfl_ray"
    return Path(root).expanduser().resolve()


def cache_path(*parts: str) -> Path:
    """A path under the cache root (not created)."""
    return cache_dir().joinpath(*parts)


def data_cache_root() -> Path:
    """Where built regimes and mined sources are cached: ``$LFL_RAY_DATA_CACHE`` or
    ``<cache>/data`` (separately overridable: the assets and the tokenizer stay in the main cache)."""
    root = os.environ.get("LFL_RAY_DATA_CACHE")
    return Path(root).expanduser().resolve() if root else cache_path("data")

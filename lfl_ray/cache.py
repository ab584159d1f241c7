"""Where lfl-ray keeps converted models, extracted data and base-model eval results."""

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

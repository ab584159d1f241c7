"""Base-model results on disk: computed once per (model, suite, items, settings), then reused.

Every trial of a sweep compares against the same base result, so the driver computes it
once; files live under ``cache_path("evals", <model>, ...)`` and are written atomically
(temp file + rename), so concurrent sweeps never read a torn file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

import torch

from lfl_ray.cache import cache_path
from lfl_ray.eval.result import EvalResult

FORMAT_VERSION = 1
"""Bump when scoring changes so old cached base results are not reused."""


def entry_path(model: str, suite: str, key: dict) -> Path:
    """The JSON file of one base result; ``key`` holds everything that changes the numbers."""
    digest = hashlib.sha256(json.dumps(dict(key, version=FORMAT_VERSION), sort_keys=True,
                                       default=str).encode()).hexdigest()[:20]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", model).strip("_")[-80:] or "model"
    return cache_path("evals", slug, f"{suite}-{digest}.json")


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save(path: Path, result: EvalResult, extra: dict | None = None) -> None:
    """Write ``result`` (and tensors in ``extra``, beside it as .pt) atomically."""
    if extra is not None:
        _atomic_write(path.with_suffix(".pt"), lambda f: torch.save(extra, f))
    payload = json.dumps(result.to_json()).encode()
    _atomic_write(path, lambda f: f.write(payload))


def load(path: Path, *, with_extra: bool = False):
    """The cached result (None if absent), plus its tensors if asked."""
    if not path.exists() or (with_extra and not path.with_suffix(".pt").exists()):
        return (None, None) if with_extra else None
    result = EvalResult.from_json(json.loads(path.read_text()))
    if not with_extra:
        return result
    return result, torch.load(path.with_suffix(".pt"), weights_only=True)

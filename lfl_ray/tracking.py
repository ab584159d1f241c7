"""MLflow logging for trials: retried, never silently dropped.

Training workers log through ``RunLogger`` (a run id + a tracking URI, so it pickles to
Ray workers). Every call is retried a few times with backoff; when it still fails the
error is raised, so a broken tracking store stops the trial loudly instead of losing data.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

RETRIES = 4


def default_tracking_uri(cwd: str | os.PathLike | None = None) -> str:
    """The default store of sweeps and analysis: ``sqlite:///<cwd>/mlruns/mlflow.db``
    (artifacts beside it under ``mlruns/artifacts``)."""
    return f"sqlite:///{Path(cwd or os.getcwd()).resolve() / 'mlruns' / 'mlflow.db'}"


def with_retries(call: Callable[[], Any], what: str, retries: int = RETRIES):
    """Run ``call``; on failure retry with backoff (0.5, 1, 2 s), then raise with context."""
    delay = 0.5
    for attempt in range(retries):
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - any store error is retried, then surfaced
            if attempt == retries - 1:
                raise RuntimeError(f"MLflow {what} failed after {retries} tries: {exc}") from exc
            time.sleep(delay)
            delay *= 2


@dataclass(frozen=True)
class RunLogger:
    """Logs metrics, params, tags and artifacts to one existing MLflow run."""

    tracking_uri: str
    run_id: str

    def _client(self):
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, int(step)) for k, v in metrics.items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))]
        for start in range(0, len(batch), 500):
            chunk = batch[start:start + 500]
            with_retries(lambda: self._client().log_batch(self.run_id, metrics=chunk), "log_batch")

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, str(v)) for k, v in tags.items()]
        with_retries(lambda: self._client().log_batch(self.run_id, tags=items), "set_tags")

    def log_json(self, obj: Any, artifact_path: str) -> None:
        """Write ``obj`` as JSON to ``artifact_path`` (folder/name.json) in the run."""
        folder, name = os.path.split(artifact_path)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            path.write_text(json.dumps(obj, indent=1, default=str))
            with_retries(lambda: self._client().log_artifact(self.run_id, str(path), folder or None),
                         f"log_artifact {artifact_path}")

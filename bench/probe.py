"""A stand-in for the trial's MLflow RunLogger that records what a Ray Train worker sees.

The training loop calls ``logger.log_metrics`` on rank 0 once when training starts (step 0,
after the model, method, data and DDP are ready) and at every report. ``ProbeLogger``
appends, per call, the wall-clock time, the metrics, the worker's torch thread count,
OMP_NUM_THREADS and its peak RSS to a JSON-lines file the driver reads afterwards, so the
benchmark measures the real ``train_loop_per_worker`` without changing it.
"""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path


class ProbeLogger:
    """Duck-types lfl_ray.tracking.RunLogger (log_metrics, log_json, set_tags)."""

    def __init__(self, path: str):
        self.path = str(path)

    def log_metrics(self, metrics: dict, step: int) -> None:
        import torch

        record = {"t": time.time(), "step": step, "metrics": {k: float(v) for k, v in metrics.items()},
                  "torch_threads": torch.get_num_threads(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "pid": os.getpid()}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def log_json(self, obj, artifact_path: str) -> None:
        pass

    def set_tags(self, tags: dict) -> None:
        pass

    def records(self) -> list[dict]:
        path = Path(self.path)
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def ship_by_value() -> None:
    """Let cloudpickle send this module's classes to Ray workers (bench/ is not on their path)."""
    import sys

    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def fit_with_probe(cfg, data, *, name: str, storage: str) -> tuple[float, float, list[dict]]:
    """Run one trial on Ray Train with a ProbeLogger; returns (start, end, probe records)."""
    import tempfile

    from lfl_ray.train.trial import build_trainer

    probe = ProbeLogger(tempfile.mktemp(prefix="lfl-probe-", suffix=".jsonl"))
    trainer = build_trainer(cfg, data, name=name, storage_path=storage, logger=probe)
    start = time.time()
    result = trainer.fit()
    end = time.time()
    if result.error is not None:
        raise result.error
    return start, end, probe.records()

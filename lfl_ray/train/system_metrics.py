"""System metrics on a trial's MLflow run while it trains: CPU %, memory, disk and network,
and GPU utilisation and memory where ``nvidia-ml-py`` sees a GPU (the ``gpu`` extra).

MLflow's own ``SystemMetricsMonitor`` does the sampling; trial runs are created with
``MlflowClient``, not ``mlflow.start_run``, so the monitor is attached to the run by its id.
It runs in the trial's rank-0 training worker: the machine that trains, and on a GPU node
the GPUs it trains on. It samples every ``SAMPLING_S`` seconds
(``LFL_RAY_SYSTEM_METRICS_S``; 0 turns it off) and stops when the trial ends, or by itself
once the run is no longer RUNNING. It only reads and logs metrics: it never sets a run's
status, and a monitor that fails says so once and leaves the trial training.
"""

from __future__ import annotations

import logging
import os
import sys

SAMPLING_S = 10.0
"""Seconds between samples (each sample is logged as one step of ``system/*``)."""
INTERVAL_ENV = "LFL_RAY_SYSTEM_METRICS_S"


def sampling_interval() -> float:
    """``LFL_RAY_SYSTEM_METRICS_S`` when set (0: off), else ``SAMPLING_S``."""
    text = os.environ.get(INTERVAL_ENV, "").strip()
    try:
        return max(0.0, float(text)) if text else SAMPLING_S
    except ValueError:
        return SAMPLING_S


class SystemMetrics:
    """A started monitor; ``stop()`` ends it (never raises)."""

    def __init__(self, monitor, warn):
        self._monitor, self._warn = monitor, warn

    def stop(self) -> None:
        if self._monitor is None:
            return
        monitor, self._monitor = self._monitor, None
        try:
            monitor.finish()
        except Exception as exc:  # noqa: BLE001 - metrics about the machine never fail a trial
            self._warn(f"system metrics: could not stop the monitor ({exc!r})")


def start_system_metrics(tracking_uri: str, run_id: str, *, resume: bool = False,
                         interval: float | None = None, warn=None) -> SystemMetrics:
    """Start sampling onto run ``run_id``; ``resume`` continues the steps of an earlier
    attempt of the same run. Returns a handle whose ``stop()`` ends it; when the monitor
    cannot start, says why once through ``warn`` and returns a handle that does nothing."""
    warn = warn or (lambda message: print(message, file=sys.stderr, flush=True))
    interval = sampling_interval() if interval is None else interval
    if interval <= 0:
        return SystemMetrics(None, warn)
    # MLflow says "Started monitoring", "Skip logging GPU metrics" at INFO in every worker; its
    # warnings (a sample it could not log) still show, once: the monitor stops after one.
    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)
    try:
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        monitor = SystemMetricsMonitor(run_id, sampling_interval=interval, samples_before_logging=1,
                                       resume_logging=resume, tracking_uri=tracking_uri)
        monitor.start()
    except Exception as exc:  # noqa: BLE001
        warn(f"system metrics: not logged for run {run_id} ({exc!r})")
        return SystemMetrics(None, warn)
    return SystemMetrics(monitor, warn)

"""System metrics on a trial's run: MLflow's monitor attached by run id, stopped by the trial,
never able to fail it or to end its run."""

from __future__ import annotations

import time

from lfl_ray import mlflow_schema as schema
from lfl_ray.train.system_metrics import sampling_interval, start_system_metrics


def test_samples_land_on_the_run_and_leave_it_running(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    experiment_id = schema.ensure_experiment(uri, "system")
    run_id = schema.client(uri).create_run(experiment_id).info.run_id
    monitor = start_system_metrics(uri, run_id, interval=0.2)
    time.sleep(1.5)
    monitor.stop()
    monitor.stop()  # twice is fine
    run = schema.client(uri).get_run(run_id)
    assert run.info.status == "RUNNING"  # it only logs; the trial ends its run
    for name in ("cpu_utilization_percentage", "system_memory_usage_megabytes", "system_memory_usage_percentage"):
        assert f"{schema.Metric.SYSTEM_PREFIX}{name}" in run.data.metrics
    steps = [m.step for m in schema.client(uri).get_metric_history(run_id, "system/cpu_utilization_percentage")]
    resumed = start_system_metrics(uri, run_id, interval=0.2, resume=True)  # a restarted trial goes on counting
    time.sleep(0.7)
    resumed.stop()
    later = [m.step for m in schema.client(uri).get_metric_history(run_id, "system/cpu_utilization_percentage")]
    assert min(later[len(steps):]) > max(steps)


def test_a_failing_monitor_warns_once_and_never_raises(monkeypatch):
    import mlflow.system_metrics.system_metrics_monitor as mlflow_monitor

    class Broken:
        def __init__(self, *args, **kwargs):
            if kwargs.get("resume_logging"):
                raise RuntimeError("store unreachable")

        def start(self):
            pass

        def finish(self):
            raise RuntimeError("flush failed")

    monkeypatch.setattr(mlflow_monitor, "SystemMetricsMonitor", Broken)
    warnings = []
    start_system_metrics("sqlite:///unused.db", "0" * 32, resume=True, interval=1, warn=warnings.append).stop()
    assert len(warnings) == 1 and "store unreachable" in warnings[0]
    monitor = start_system_metrics("sqlite:///unused.db", "0" * 32, interval=1, warn=warnings.append)
    monitor.stop()
    monitor.stop()
    assert len(warnings) == 2 and "flush failed" in warnings[1]


def test_the_interval_env(monkeypatch):
    monkeypatch.setenv("LFL_RAY_SYSTEM_METRICS_S", "0")
    assert sampling_interval() == 0.0
    assert start_system_metrics("sqlite:///unused.db", "0" * 32)._monitor is None
    monkeypatch.setenv("LFL_RAY_SYSTEM_METRICS_S", "oops")
    assert sampling_interval() == 10.0

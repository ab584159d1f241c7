"""The sweep's MLflow layout: one experiment, a parent run, one nested child run per trial.

Parent: tag ``lfl.role=sweep``, the spec as params and ``sweep_spec.json``, base-model
metrics as ``base/<metric>`` and ``evals/base.json``. Child: tags ``mlflow.parentRunId``,
``lfl.role=trial``, ``lfl.trial_key``, ``lfl.family``, ``lfl.regime``, ``lfl.status``;
params of the point; metrics by step = tokens seen. A trial's run is found again by its
key, so a resumed sweep never makes a duplicate; ``reconcile`` leaves no run RUNNING.
"""

from __future__ import annotations

import json
import os
import socket
import urllib.parse
import urllib.request
from dataclasses import asdict, is_dataclass
from pathlib import Path

from lfl_ray.errors import ConfigError
from lfl_ray.tracking import with_retries

STATUS_TAG = "lfl.status"
SECRET_MARKERS = ("token", "secret", "password", "api_key", "apikey")


def artifact_root_for(tracking_uri: str) -> str | None:
    """Absolute artifact folder beside a sqlite store (None for servers: they decide)."""
    if tracking_uri.startswith("sqlite:///"):
        return str(Path(tracking_uri[len("sqlite:///"):]).parent / "artifacts")
    return None


def check_tracking_uri(uri: str, timeout: float = 5.0) -> None:
    """Fail early (ConfigError on --tracking-uri) when the store cannot be written or reached."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme == "sqlite":
        folder = Path(uri[len("sqlite:///"):]).parent
        _check_writable("--tracking-uri", uri, folder)
    elif parsed.scheme in ("http", "https"):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as resp:
                if resp.status != 200:
                    raise OSError(f"HTTP {resp.status}")
        except (OSError, socket.timeout) as exc:
            raise ConfigError("--tracking-uri", uri, "must be a reachable MLflow server "
                              f"(GET /health failed: {exc})") from exc
    elif parsed.scheme in ("", "file"):
        _check_writable("--tracking-uri", uri, Path(parsed.path or uri))
    elif parsed.scheme not in ("databricks", "postgresql", "mysql"):
        raise ConfigError("--tracking-uri", uri, "must be sqlite:///abs/path.db, http(s)://host:port, "
                          "a folder, or a database URI")


def _check_writable(field: str, value: str, folder: Path) -> None:
    """``folder`` exists as a writable folder or can be made (checked without making it)."""
    probe = Path(folder).expanduser().absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(field, value, f"must be a writable location ({probe} is not a folder)")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(field, value, f"must be a writable location ({probe} is not writable)")


def scrub(params: dict) -> dict:
    """Drop anything that looks like a credential, and values equal to secret env vars."""
    secrets = {v for k, v in os.environ.items() if any(m in k.lower() for m in SECRET_MARKERS) and len(v) >= 8}
    clean = {}
    for key, value in params.items():
        if any(m in key.lower() for m in SECRET_MARKERS):
            continue
        text = str(value)
        for secret in secrets:
            text = text.replace(secret, "***")
        clean[key] = text
    return clean


def flatten(obj, prefix: str = "") -> dict:
    """Nested dataclasses/dicts as dotted keys (for MLflow params)."""
    if is_dataclass(obj):
        obj = asdict(obj)
    out: dict = {}
    if isinstance(obj, dict):
        for key, value in obj.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    out[prefix.rstrip(".")] = obj
    return out


def client(tracking_uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def ensure_experiment(tracking_uri: str, name: str) -> str:
    """The experiment id for ``name`` (created with an absolute artifact location)."""
    mlflow_client = client(tracking_uri)
    found = mlflow_client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    root = artifact_root_for(tracking_uri)
    location = str(Path(root) / name) if root else None
    return mlflow_client.create_experiment(name, artifact_location=location)


def find_runs(tracking_uri: str, experiment_id: str, filter_string: str) -> list:
    return client(tracking_uri).search_runs([experiment_id], filter_string=filter_string, max_results=10000)


def start_parent(tracking_uri: str, experiment_id: str, spec, *, resume: bool) -> str:
    """The sweep's parent run (reused on resume), with the spec logged."""
    mlflow_client = client(tracking_uri)
    if resume:
        existing = find_runs(tracking_uri, experiment_id, "tags.`lfl.role` = 'sweep'")
        if existing:
            run_id = existing[0].info.run_id
            mlflow_client.update_run(run_id, status="RUNNING")
            return run_id
    run = mlflow_client.create_run(experiment_id, run_name=spec.name, tags={"lfl.role": "sweep",
                                                                          "lfl.regime": spec.regime})
    run_id = run.info.run_id
    params = scrub(flatten(spec))
    from mlflow.entities import Param

    items = [Param(k[:250], v[:6000]) for k, v in params.items()]
    for start in range(0, len(items), 100):
        with_retries(lambda: mlflow_client.log_batch(run_id, params=items[start:start + 100]), "log spec")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sweep_spec.json"
        path.write_text(json.dumps(scrub_nested(asdict(spec)), indent=1, default=str))
        with_retries(lambda: mlflow_client.log_artifact(run_id, str(path)), "log sweep_spec.json")
    return run_id


def scrub_nested(obj):
    if isinstance(obj, dict):
        return {k: scrub_nested(v) for k, v in obj.items() if not any(m in str(k).lower() for m in SECRET_MARKERS)}
    if isinstance(obj, (list, tuple)):
        return [scrub_nested(v) for v in obj]
    return obj


def child_run(tracking_uri: str, experiment_id: str, parent_id: str, point: dict, params: dict,
              regime: str) -> str:
    """The trial's run: found by its key (resume/retry) or created nested under the parent."""
    mlflow_client = client(tracking_uri)
    existing = find_runs(tracking_uri, experiment_id,
                         f"tags.`lfl.trial_key` = '{point['key']}' and tags.`mlflow.parentRunId` = '{parent_id}'")
    if existing:
        run_id = existing[0].info.run_id
        mlflow_client.update_run(run_id, status="RUNNING")
        mlflow_client.set_tag(run_id, STATUS_TAG, "RUNNING")
        return run_id
    tags = {"mlflow.parentRunId": parent_id, "lfl.role": "trial", "lfl.trial_key": point["key"],
            "lfl.family": point["family"], "lfl.regime": regime, STATUS_TAG: "RUNNING"}
    run = mlflow_client.create_run(experiment_id, run_name=point["key"], tags=tags)
    from mlflow.entities import Param

    items = [Param(k, v) for k, v in scrub(params).items()]
    with_retries(lambda: mlflow_client.log_batch(run.info.run_id, params=items), "log trial params")
    return run.info.run_id


def end_run(tracking_uri: str, run_id: str, status: str, *, error: str | None = None,
            lfl_status: str | None = None) -> None:
    """End a run as FINISHED, FAILED or KILLED, with the error text when there is one."""
    mlflow_client = client(tracking_uri)
    if error:
        mlflow_client.set_tag(run_id, "lfl.error", error[-5000:])
    mlflow_client.set_tag(run_id, STATUS_TAG, lfl_status or status)
    mlflow_client.set_terminated(run_id, status=status)

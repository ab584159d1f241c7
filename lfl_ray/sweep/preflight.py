"""Checks a sweep makes before Ray or MLflow starts: the model, the machine, the stores.

Each check raises a ``ConfigError`` naming the field, the value and what is allowed, so a
user learns in a second what a trial would otherwise fail on minutes later inside Ray:
a data file or field that is not there, LoRA targets the model does not have, a rank
larger than the layer it adapts, a sequence longer than the model's positions, more CPUs or
GPUs than the machine has, a tracking store that is not a database, a storage folder that
cannot be written.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import urllib.parse
from pathlib import Path

from lfl_ray.errors import ConfigError


def check_model(spec, log=print) -> None:
    """LoRA targets, ranks and seq_len against the model's config (read without weights)."""
    from lfl_ray.model_config import layout, load_config, max_positions
    from lfl_ray.models import resolve_model

    resolve_model(spec.model)  # a folder that is not there, or an asset not fetched, fails here
    config = load_config(spec.model)
    if config is None:
        log(f"[check] {spec.model}: config not available offline; targets, ranks and seq_len are "
            "checked when the trial loads the model")
        return
    positions = max_positions(config)
    if positions is not None and spec.budget.seq_len > positions:
        raise ConfigError("budget.seq_len", spec.budget.seq_len,
                          f"must be <= the model's {positions} positions (max_position_embeddings)")
    model = layout(config)  # presets resolve to this architecture's own modules (model_config)
    for i, grid in enumerate(spec.lora):
        for targets in grid.targets:
            chosen = model.select(targets, field=f"lora[{i}].targets")
            names = list(dict.fromkeys(m.leaf for m in chosen))
            if isinstance(targets, str):
                log(f"[check] lora[{i}].targets {targets!r} on this {model.model_type} model: {', '.join(names)}")
            smallest = min(min(m.in_features, m.out_features) for m in chosen)
            for rank in grid.ranks:
                if rank > smallest:
                    raise ConfigError(f"lora[{i}].ranks", rank,
                                      f"must be <= {smallest}, the smallest dimension of the layers it adapts "
                                      f"({', '.join(names)})")


def check_data(spec, log=print) -> None:
    """A study's own data (``data:``): read, mapped, decontaminated and tokenized now (and cached
    for the sweep), so a missing file or field fails before Ray starts; logs its stats."""
    if spec.data is None:
        return
    from lfl_ray.data.build import load_regime
    from lfl_ray.data.facts import stats_text

    log(stats_text(load_regime(spec.data_spec(), log=log).stats))


def check_resources(spec, address: str | None) -> None:
    """A local cluster must hold one trial: CPUs and GPUs against what the trial asks for."""
    if address:
        return  # a cluster's size is checked against the cluster once the driver has joined it
    r = spec.resources
    cpus = os.cpu_count() or 1
    asked = r.num_workers * r.cpus_per_worker + 0.01  # the Tune trial actor takes 0.01 CPU
    if asked > cpus + 1e-9:
        raise ConfigError("resources.cpus_per_worker", r.cpus_per_worker,
                          f"num_workers x cpus_per_worker + 0.01 must fit the {cpus} CPUs of this machine "
                          f"(asked {asked:.2f}); a trial that cannot be placed would wait forever")
    if r.use_gpu:
        import torch

        gpus = torch.cuda.device_count()
        if r.num_workers > gpus:
            raise ConfigError("resources.use_gpu", True,
                              f"needs {r.num_workers} GPUs (one per worker); this machine has {gpus}")


def check_cluster_resources(spec) -> None:
    """After joining a cluster: it must be able to hold one trial."""
    import ray

    total = ray.cluster_resources()
    r = spec.resources
    if r.num_workers * r.cpus_per_worker + 0.01 > total.get("CPU", 0) + 1e-9:
        raise ConfigError("resources.cpus_per_worker", r.cpus_per_worker,
                          f"num_workers x cpus_per_worker must fit the cluster's {total.get('CPU', 0):g} CPUs")
    if r.use_gpu and r.num_workers > total.get("GPU", 0):
        raise ConfigError("resources.num_workers", r.num_workers,
                          f"needs one GPU per worker; the cluster has {total.get('GPU', 0):g}")


def check_sqlite_uri(uri: str) -> None:
    """sqlite URIs must be absolute (``sqlite:////abs/path.db``) and name a database or nothing yet."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme != "sqlite":
        return
    if not uri.startswith("sqlite:////"):
        raise ConfigError("--tracking-uri", uri, "a sqlite store must be an absolute path: sqlite:////abs/path.db "
                          "(four slashes)")
    path = Path(uri[len("sqlite:///"):])
    if path.exists():
        if not path.is_file():
            raise ConfigError("--tracking-uri", uri, "must name a sqlite database file (this is a folder)")
        with open(path, "rb") as f:
            head = f.read(16)
        if head and head != b"SQLite format 3\x00":
            raise ConfigError("--tracking-uri", uri, "must name a sqlite database (this file is not one)")


def prepare_store(uri: str) -> None:
    """Create and migrate a sqlite store once, under a file lock, before anything logs to it.

    Two processes creating a fresh store at once race in MLflow's schema migration
    (``table _alembic_tmp_latest_metrics already exists``); the lock makes the second wait
    and then find the store made."""
    if not uri.startswith("sqlite:////"):
        return
    from filelock import FileLock

    path = Path(uri[len("sqlite:///"):])
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock", timeout=300):
        from mlflow import MlflowClient

        MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
    try:
        sqlite3.connect(f"file:{path}?mode=ro", uri=True).close()
    except sqlite3.Error as exc:
        raise ConfigError("--tracking-uri", uri, f"must open as a sqlite database ({exc})") from exc


def check_storage(field: str, value: str, folder: Path) -> None:
    """Make ``folder`` and write a probe file in it (root passes ``os.access`` on /proc)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".lfl-probe-"):
            pass
    except OSError as exc:
        raise ConfigError(field, value, f"must be a writable folder ({exc.strerror or exc})") from exc

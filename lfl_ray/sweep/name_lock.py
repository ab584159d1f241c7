"""One sweep of a name at a time on this machine: lock files held for as long as the sweep runs.

Refusing a name whose parent run is RUNNING (``runner._check_name_free``) leaves a window: two
sweeps of one name started together both find no parent yet, then share one Tune folder
(``tuner.pkl``) and one MLflow experiment, and the report shows only the newer parent. A lock
taken before that check and held until the sweep ends closes the window. The locks are flocks
beside what the two sweeps would share, the sqlite store and the local Tune folder, so they
hold across every process on this machine and the kernel drops them when a process dies (a
killed sweep leaves no stale lock). A remote store and remote storage have nothing to lock
here; the RUNNING check is all there is then.
"""

from __future__ import annotations

from pathlib import Path

from lfl_ray.errors import ConfigError


def lock_paths(tracking_uri: str, name: str, experiment_path: str) -> list[Path]:
    """The lock files of sweep ``name``: beside a sqlite store, beside a local Tune folder."""
    paths = []
    if tracking_uri.startswith("sqlite:////"):
        store = Path(tracking_uri[len("sqlite:///"):])
        paths.append(store.parent / f".{store.name}.{name}.sweep.lock")
    if "://" not in experiment_path:
        folder = Path(experiment_path)
        paths.append(folder.parent / f".{folder.name}.sweep.lock")
    return paths


class NameClaim:
    """The held locks of one sweep's name; ``release()`` when the sweep ends (or the process exits)."""

    def __init__(self, locks):
        self._locks = locks

    def release(self) -> None:
        for lock in reversed(self._locks):
            lock.release(force=True)
        self._locks = []


def claim(tracking_uri: str, name: str, experiment_path: str) -> NameClaim:
    """Take every lock of ``name`` at once, or raise ConfigError naming --name (nothing waits)."""
    from filelock import FileLock, Timeout

    # thread_local=False: the sweep's driver threads share the claim; is_singleton=False: a second
    # claim in this process is refused like one from another process (a sweep of that name runs).
    locks = []
    try:
        for path in lock_paths(tracking_uri, name, experiment_path):
            path.parent.mkdir(parents=True, exist_ok=True)
            lock = FileLock(str(path), thread_local=False, is_singleton=False)
            lock.acquire(timeout=0)
            locks.append(lock)
    except Timeout as exc:
        NameClaim(locks).release()
        raise ConfigError("--name", name, "is the name of a sweep running now on this machine (it holds "
                          f"{exc.lock_file}); pick another --name, or wait for it to end and --resume it") from None
    return NameClaim(locks)

"""Stopping a trial from outside: a flag in Ray's internal key-value store, read at each report.

Tune's scheduler (ASHA) stops a trial by ending its function trainable, but the Ray Train
run that the trainable started keeps its workers; the sweep's status callback sets the
flag and the training loop ends at its next report. Ray's internal KV is private API: it
is the one store that the driver, the trial actor and every training worker of a cluster
reach without extra set-up.
"""

from __future__ import annotations

STOP_PREFIX = "lfl_ray:stop:"


def request_stop(name: str) -> None:
    """Ask the running trial ``name`` to end at its next report (Tune stopped it early).

    A Tune trial whose Ray Train run keeps training after ASHA stopped it would hold its
    workers' resources, and on a small cluster the next trial could never start.
    """
    from ray.experimental.internal_kv import _internal_kv_put

    _internal_kv_put(STOP_PREFIX + name, b"1", overwrite=True)


def stop_requested(name: str | None) -> bool:
    """Whether ``request_stop(name)`` was called; False for no name (a standalone trial)."""
    if not name:
        return False
    from ray.experimental.internal_kv import _internal_kv_get

    return _internal_kv_get(STOP_PREFIX + name) is not None

"""The Ray Train settings init_ray gives a local cluster and keeps off a shared one."""

from __future__ import annotations

from lfl_ray.ray_runtime import train_env

WATCHER = "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"


def test_only_a_local_cluster_turns_the_preemption_watcher_off(monkeypatch):
    monkeypatch.delenv(WATCHER, raising=False)
    assert train_env(False, local=True)[WATCHER] == "0"
    assert WATCHER not in train_env(False, local=False)
    monkeypatch.setenv(WATCHER, "1")  # the user's choice stands
    assert WATCHER not in train_env(False, local=True)

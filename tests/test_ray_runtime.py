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


def test_a_local_cluster_keeps_to_loopback_and_pins_its_workers(ray_local):
    """Node IP 127.0.0.1, every listening socket of the cluster on loopback, the agent off 52365,
    and RAY_ADDRESS = this cluster's GCS in workers, also in an actor with env_vars of its own
    that starts a detached one (the shape of Train's controller and placement-group cleaner)."""
    import os

    import psutil

    from lfl_ray.ray_runtime import placement_groups_left

    ray = ray_local
    gcs = ray.get_runtime_context().gcs_address
    assert gcs.startswith("127.0.0.1:")

    @ray.remote(num_cpus=0)
    class Cleaner:
        def address(self):
            return os.environ.get("RAY_ADDRESS")

    @ray.remote(num_cpus=0)
    class Controller:
        def addresses(self):
            cleaner = Cleaner.options(lifetime="detached").remote()
            try:
                return os.environ.get("RAY_ADDRESS"), ray.get(cleaner.address.remote())
            finally:
                ray.kill(cleaner)

    controller = Controller.options(runtime_env={"env_vars": {"LFL_PROBE": "1"}}).remote()
    assert ray.get(controller.addresses.remote()) == (gcs, gcs)
    ray.kill(controller)
    assert placement_groups_left(timeout_s=0) == []
    listening = set()
    for proc in psutil.Process().children(recursive=True):
        try:  # a short-lived worker may exit between the listing and the look at its sockets
            listening |= {(proc.name(), c.laddr.ip, c.laddr.port) for c in proc.net_connections("inet")
                          if c.status == psutil.CONN_LISTEN}
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    assert {name for name, _ip, _port in listening} >= {"gcs_server", "raylet", "ray::DashboardAgent"}
    assert not [s for s in listening if s[1] not in ("127.0.0.1", "::ffff:127.0.0.1")]
    assert 52365 not in {port for name, _ip, port in listening if name == "ray::DashboardAgent"}

"""Starting or joining Ray with the settings lfl-ray's trials need.

- Ray Train reports block for the controller's health-check interval (2 s by default);
  0.1 s makes reporting cheap (field notes: 38 s -> 2 s over a 20-step loop).
- A local Ray starts with the dashboard (Train's cleanup after an early stop needs it) bound
  to 127.0.0.1; binding elsewhere needs an explicit host and prints a warning.
- A local Ray gets a temp root of its own, so two sweeps on one machine never mix clusters.
- A local Ray listens on loopback only, every port of it (node IP 127.0.0.1); its dashboard
  agent takes a port the kernel gives it instead of Ray's fixed 52365, which a second
  cluster's agent would find taken ("address already in use"). Not Ray's: the training
  workers' torch process group (c10d store, gloo) is kept on loopback by
  ``lfl_ray.train.process_group`` when every worker's node IP is loopback.
- Every worker process of a sweep (Tune trial actors, Train controllers, Train's placement-group
  cleaner, training workers) has RAY_ADDRESS set to the GCS of the cluster it runs in: Ray's
  state API, called by Train without an address, otherwise scans the machine for GCS processes
  and, with two clusters, "connects to the latest cluster".
- A local Ray runs Ray Train without its preemption watcher: no node of a one-machine cluster
  is ever drained, and the watcher is one more actor process per trial starting while the
  training workers import torch (2 workers on 2 cores: first step 13.7 -> 12.5 s, paired
  medians of 8, bench/trial_start.py). A cluster keeps Ray's default; a value set is kept.
"""

from __future__ import annotations

import contextlib
import os
import warnings

from lfl_ray.errors import ConfigError

TRAIN_ENV = {
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.1",
    "DS_ACCELERATOR": "cpu",  # overridden on GPU workers by the training loop
    "TOKENIZERS_PARALLELISM": "false",
    "RAY_TRAIN_V2_ENABLED": "1",
    # An early-stopped trial frees its workers at its next report; give the next trial time.
    "RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S": "900",
}


# Only for a local cluster: on a cluster, spot nodes are drained and the watcher is wanted.
LOCAL_TRAIN_ENV = {"RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0"}


def train_env(use_gpu: bool, local: bool = False) -> dict[str, str]:
    env = dict(TRAIN_ENV)
    if use_gpu:
        env.pop("DS_ACCELERATOR")
    if local:
        env.update({k: v for k, v in LOCAL_TRAIN_ENV.items() if k not in os.environ})
    for key in ("LFL_RAY_CACHE", "LFL_RAY_DATA_CACHE", "LFL_RAY_THREADS", "LFL_RAY_MMAP_THRESHOLD",
                "HF_HUB_OFFLINE"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def check_dashboard_host(host) -> str:
    """``host`` if it is an IP address or ``localhost``; ConfigError otherwise (before Ray starts)."""
    import ipaddress

    try:
        if host != "localhost":
            ipaddress.ip_address(host)
    except (TypeError, ValueError):
        raise ConfigError("--dashboard-host", host, "must be an IP address to bind the local Ray "
                          "dashboard to: 127.0.0.1 (default, loopback only) or e.g. 0.0.0.0 "
                          "(every interface; prints a warning)") from None
    return host


def init_ray(*, address: str | None = None, num_cpus: int | None = None, use_gpu: bool = False,
             dashboard_host: str = "127.0.0.1", log=print) -> None:
    """Join the cluster in RAY_ADDRESS/``address`` (``ray job submit``) or start a local one."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    env = train_env(use_gpu, local=not address)
    os.environ.update(env)  # a local cluster's workers inherit the driver's environment
    check_dashboard_host(dashboard_host)
    if not address and not is_loopback(dashboard_host):
        message = (f"Ray dashboard bound to {dashboard_host}: it is reachable from the network and "
                   "runs jobs for whoever reaches it; prefer 127.0.0.1 with SSH or `ray dashboard` "
                   "port forwarding")
        warnings.warn(message, stacklevel=2)
        log(f"[ray] WARNING: {message}")
    worker_env = dict(env)
    if not address and not use_gpu:
        from lfl_ray.allocator import worker_env as allocator_env

        # Worker processes only (runtime_env), not this driver nor Ray's daemons.
        worker_env.update(allocator_env(log))
    kwargs = dict(runtime_env={"env_vars": worker_env, "worker_process_setup_hook": PIN_HOOK},
                  log_to_driver=True)
    if address:
        ray.init(address=address, **kwargs)
        log(f"[ray] joined cluster at {address}")
    else:
        # address="local": a new cluster of our own, never some other Ray that happens to run here.
        temp_root = _private_temp_root()
        with _loopback_node():
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=True, dashboard_host=dashboard_host,
                     **kwargs)
        _claim_current_cluster(ray.get_runtime_context().gcs_address)
        log(f"[ray] started a local cluster ({ray.cluster_resources().get('CPU', 0):.0f} CPUs); "
            f"its logs: {temp_root}/ray/session_latest/logs")


LOCAL_NODE_IP = "127.0.0.1"
PIN_HOOK = "lfl_ray.ray_runtime.pin_worker_to_its_cluster"


def pin_worker_to_its_cluster() -> None:
    """Set RAY_ADDRESS in a Ray worker process to the GCS it is connected to (a setup hook).

    Ray Train's placement-group cleaner and state actor call Ray's state API without an
    address; without RAY_ADDRESS that lists the machine's GCS processes and, with two
    clusters on one machine, logs "Found multiple active Ray instances" and uses whichever
    wrote ``ray_current_cluster`` last. A placement group of an early-stopped trial was then
    never released and the next trial waited forever.

    Why a ``worker_process_setup_hook`` and not ``env_vars``: the job's runtime_env is fixed
    before the cluster exists, so its GCS port is not known yet, and a worker inherits the
    environment of the raylet (started before the driver could set anything), not the
    driver's. The hook runs in every worker of the job once it is connected, and Ray passes
    the job's runtime_env on to the actors those workers create (Train's controller merges
    its own ``env_vars`` into it), so every worker process of a sweep gets it. Subprocesses
    a worker starts inherit it too.
    """
    import ray

    os.environ["RAY_ADDRESS"] = ray.get_runtime_context().gcs_address


@contextlib.contextmanager
def _loopback_node():
    """While ``ray.init`` starts a local cluster: node IP 127.0.0.1, dashboard agent on a port of its own.

    ``ray.init(_node_ip_address="127.0.0.1")`` does not keep a cluster on loopback: it
    resolves a loopback address to the machine's reachable one (``resolve_ip_for_localhost``;
    ``ray start --node-ip-address=127.0.0.1`` does the same), and gcs_server, raylet, the
    workers' gRPC servers and the dashboard agent then listen on every interface. Ray's
    servers listen on loopback only when the node IP is literally 127.0.0.1.

    ``ray.init`` has no ``dashboard_agent_listen_port`` argument either, and ``RayParams``
    defaults it to the fixed 52365: a second cluster on the machine (another sweep, a
    `ray start`) finds it taken and its agent serves no HTTP (no job submission, no state API
    for Train's cleanup). None makes ``Node`` use 0, as it does for the agent's gRPC, metrics
    and runtime-env ports: the agent binds a port the kernel picks, persists it and the raylet
    reports it to the GCS (Ray's ``cluster_utils.Cluster`` does the same for extra nodes).
    Port 0 rather than a free port found beforehand with a socket bound to 127.0.0.1:0: such a
    port is free when found but not reserved, and two sweeps starting at once could pick the
    same one; the kernel gives a bound port to one socket only.

    ``ray._private.worker.init`` looks up ``ray._private.parameter.RayParams`` when it is
    called, so a subclass set there for the length of that call sets both: no copy of Ray's
    startup code, nothing changed once ``ray.init`` returns. If a Ray upgrade renames the class
    or its arguments this fails loudly at ``ray.init``; tests/sweep/test_concurrency.py checks
    the listening sockets themselves.
    """
    from ray._private import parameter

    original = parameter.RayParams

    class LocalRayParams(original):
        def __init__(self, *args, **kwargs):
            kwargs.setdefault("dashboard_agent_listen_port", None)
            kwargs["node_ip_address"] = LOCAL_NODE_IP
            super().__init__(*args, **kwargs)

    parameter.RayParams = LocalRayParams
    try:
        yield
    finally:
        parameter.RayParams = original


def placement_groups_left(timeout_s: float = 30.0, poll_s: float = 0.5) -> list[str]:
    """The ids of this cluster's placement groups not removed within ``timeout_s`` (for a local cluster).

    Ray Train removes a trial's placement group when its controller ends, and its
    placement-group cleaner does so asynchronously for a trial the scheduler stopped: a
    group still held after that is a leak that would keep the next trial waiting for CPUs.
    On a shared cluster the table also holds other jobs' groups, so ask only of a local one.
    """
    import time

    from ray.util import placement_group_table

    deadline = time.monotonic() + timeout_s
    while True:
        left = [pg for pg, info in placement_group_table().items() if info["state"] != "REMOVED"]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(poll_s)


def _private_temp_root() -> str:
    """Give this process's local cluster a Ray temp root of its own (RAY_TMPDIR).

    Processes inside a cluster find its GCS through ``<temp root>/ray/ray_current_cluster``;
    with the shared /tmp/ray, two sweeps on one machine (or a sweep and a `ray start`
    cluster) would overwrite each other's pointer and query the wrong cluster. A RAY_TMPDIR
    the user set is kept; one inherited from another lfl-ray process is replaced.
    """
    import tempfile

    owner = os.environ.get("LFL_RAY_TMPDIR_OWNER")
    if "RAY_TMPDIR" in os.environ and owner in (None, str(os.getpid())):
        return os.environ["RAY_TMPDIR"]
    # Short: Ray's unix sockets live below it and their paths are limited to 107 bytes.
    root = tempfile.mkdtemp(prefix="lfl-ray-", dir="/tmp" if os.path.isdir("/tmp") else None)
    os.environ["RAY_TMPDIR"] = root
    os.environ["LFL_RAY_TMPDIR_OWNER"] = str(os.getpid())
    return root


def _claim_current_cluster(gcs_address: str) -> None:
    """Point Ray's "current cluster" file (under the temp root) at our local cluster while it lives.

    Ray Train's placement-group cleaner and state queries inside the cluster find the GCS
    through that file. In the private temp root nothing else writes it; when the user chose
    a shared RAY_TMPDIR, another Ray may have written it last, and the previous pointer is
    restored when this process exits.
    """
    import atexit

    from ray._private.utils import get_ray_address_file, read_ray_address, write_ray_address

    previous = read_ray_address()
    write_ray_address(gcs_address)

    def restore() -> None:  # at exit: plain file writes (logging may already be shut down)
        if read_ray_address() != gcs_address:
            return
        try:
            if previous:
                with open(get_ray_address_file(None), "w") as handle:
                    handle.write(previous)
            else:
                os.remove(get_ray_address_file(None))
        except OSError:
            pass

    atexit.register(restore)

"""The training workers' torch process group, kept on loopback when the cluster is.

Ray Train's ``TorchConfig`` has rank 0 start torch's c10d TCPStore at ``MASTER_ADDR:MASTER_PORT``
(env:// rendezvous). Whatever ``MASTER_ADDR`` says, torch 2.13's store server binds every
interface (``::``, libuv backend and the classic one alike), so on a laptop sweep whose Ray
listens on 127.0.0.1 only, the store was the one port open to the network while a trial trained.
Gloo and NCCL open listening sockets of their own too, on the interface the host name resolves to
(gloo) or the first non-loopback one (NCCL's bootstrap), unless ``GLOO_SOCKET_IFNAME`` /
``NCCL_SOCKET_IFNAME`` name another.

``trial_torch_config`` is ``TorchConfig`` with one change, made when every training worker is on a
node whose IP is loopback (a local lfl-ray cluster: ``ray_runtime`` starts it with node IP
127.0.0.1; on a cluster joined through RAY_ADDRESS, workers of other nodes must reach the store,
and Ray's own setup runs unchanged):

- rank 0 binds a socket to 127.0.0.1 (port from the kernel) and hands its descriptor to the
  ``TCPStore`` it serves (``master_listen_fd``: the server listens on that socket instead of
  binding its own); the other ranks connect to 127.0.0.1 at that port;
- ``init_process_group(store=...)`` on that store, with Ray's rank, world size, backend and
  timeout, and Ray's NCCL error-handling default;
- ``GLOO_SOCKET_IFNAME`` / ``NCCL_SOCKET_IFNAME`` name the loopback interface unless set.

``MASTER_ADDR``/``MASTER_PORT`` are set as Ray sets them (127.0.0.1 and the store's port), and
the rest (environment for ranks, shutdown, CUDA devices) is Ray's ``_TorchBackend``.
DeepSpeed (``deepspeed.initialize(dist_init_required=False)``) uses this process group as is.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import timedelta

import ray
from ray.train._internal.worker_group import WorkerGroup as V1WorkerGroup
from ray.train.torch.config import TorchConfig, _set_torch_distributed_env_vars, _TorchBackend

from lfl_ray.ray_runtime import is_loopback

LOOPBACK = "127.0.0.1"
IFNAME_VARS = ("GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME")
NCCL_ERROR_VARS = ("TORCH_NCCL_ASYNC_ERROR_HANDLING", "TORCH_NCCL_BLOCKING_WAIT")

# Rank 0's bound socket between binding it (its port goes to every rank) and serving the store.
_bound: socket.socket | None = None


def trial_torch_config(use_gpu: bool, timeout_s: int = 3600) -> TorchConfig:
    """The TorchConfig of a trial: NCCL on GPUs, gloo on CPUs; on loopback where the cluster is."""
    return LoopbackTorchConfig(backend="nccl" if use_gpu else "gloo", timeout_s=timeout_s)


def keeps_to_loopback(node_ips) -> bool:
    """Whether a worker group on these nodes can (and so should) keep its process group on loopback."""
    node_ips = list(node_ips)
    return bool(node_ips) and all(is_loopback(ip) for ip in node_ips)


@dataclass
class LoopbackTorchConfig(TorchConfig):
    """Ray's TorchConfig; its backend keeps the process group on loopback on a loopback cluster."""

    @property
    def backend_cls(self):
        return _LoopbackTorchBackend


class _LoopbackTorchBackend(_TorchBackend):
    def on_start(self, worker_group, backend_config: TorchConfig):
        if not keeps_to_loopback(worker_group.execute(ray.util.get_node_ip_address)):
            return super().on_start(worker_group, backend_config)
        port = worker_group.execute_single(0, bind_loopback_port)
        worker_group.execute(point_at_loopback, port=port)
        if not isinstance(worker_group, V1WorkerGroup):  # as Ray does: V1 sets them at training start
            worker_group.execute(_set_torch_distributed_env_vars)
        size = len(worker_group)
        ray.get([worker_group.execute_single_async(rank, join_process_group, backend=backend_config.backend,
                                                   world_rank=rank, world_size=size, port=port,
                                                   timeout_s=backend_config.timeout_s)
                 for rank in range(size)])


def bind_loopback_port() -> int:
    """On rank 0: bind and listen on 127.0.0.1 (a port the kernel picks); the store serves this socket."""
    global _bound
    if _bound is not None:
        _bound.close()
    _bound = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    _bound.bind((LOOPBACK, 0))
    _bound.listen(1024)
    return _bound.getsockname()[1]


def loopback_interface() -> str:
    """The name of the interface that holds 127.0.0.1 (``lo`` on Linux, ``lo0`` on macOS)."""
    import psutil

    for name, addresses in psutil.net_if_addrs().items():
        if any(a.family == socket.AF_INET and a.address == LOOPBACK for a in addresses):
            return name
    return "lo"


def point_at_loopback(port: int) -> None:
    """On every rank: MASTER_ADDR/PORT at the store, gloo and NCCL on the loopback interface (unless set)."""
    os.environ["MASTER_ADDR"] = LOOPBACK
    os.environ["MASTER_PORT"] = str(port)
    interface = loopback_interface()
    for var in IFNAME_VARS:
        os.environ.setdefault(var, interface)


def join_process_group(backend: str, world_rank: int, world_size: int, port: int, timeout_s: int) -> None:
    """``init_process_group`` on a TCPStore served (rank 0) or reached (the others) on 127.0.0.1:``port``."""
    global _bound
    import torch.distributed as dist

    timeout = timedelta(seconds=timeout_s)
    if backend == "nccl" and not any(var in os.environ for var in NCCL_ERROR_VARS):
        os.environ["TORCH_NCCL_ASYNC_ERROR_HANDLING"] = "1"  # as Ray sets it: fail on a collective's timeout
    if world_rank == 0:
        listen_fd, _bound = _bound.detach(), None  # the store's server owns (and closes) the socket now
        store = dist.TCPStore(LOOPBACK, port, world_size, True, timeout, master_listen_fd=listen_fd)
    else:
        store = dist.TCPStore(LOOPBACK, port, world_size, False, timeout)
    dist.init_process_group(backend=backend, store=store, rank=world_rank, world_size=world_size, timeout=timeout)

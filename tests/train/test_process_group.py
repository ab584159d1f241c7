"""A trial's torch process group keeps to loopback on a local cluster, and is Ray's own elsewhere."""

from __future__ import annotations

import json

import pytest

from lfl_ray.train import process_group
from lfl_ray.train.process_group import keeps_to_loopback, point_at_loopback, trial_torch_config

LOOPBACK_IPS = ("127.0.0.1", "::ffff:127.0.0.1", "::1")


@pytest.mark.parametrize("node_ips,expected", [
    (["127.0.0.1"], True), (["127.0.0.1", "127.0.0.1"], True),  # a local lfl-ray cluster
    (["10.0.0.4"], False), (["10.0.0.4", "10.0.0.5"], False),    # joined through RAY_ADDRESS
    (["127.0.0.1", "10.0.0.5"], False), ([], False)])
def test_only_a_loopback_cluster_keeps_the_process_group_on_loopback(node_ips, expected):
    assert keeps_to_loopback(node_ips) is expected


class _Group:
    """A worker group on two nodes of a real cluster; records what the backend runs on it."""

    def __init__(self, ips):
        self.ips, self.ran = ips, []

    def execute(self, fn, **kwargs):
        self.ran.append(fn.__name__)
        return list(self.ips)

    def __len__(self):
        return len(self.ips)


@pytest.mark.parametrize("use_gpu,backend", [(False, "gloo"), (True, "nccl")])
def test_on_a_multi_node_cluster_rays_own_setup_runs(monkeypatch, use_gpu, backend):
    """On a cluster joined through RAY_ADDRESS (GPU/DeepSpeed included) Ray's TorchConfig setup runs unchanged."""
    from ray.train.torch.config import _TorchBackend

    config = trial_torch_config(use_gpu)
    assert config.backend == backend and config.timeout_s == 3600
    calls = []
    monkeypatch.setattr(_TorchBackend, "on_start", lambda self, group, cfg: calls.append((group, cfg)))
    group = _Group(["10.0.0.4", "10.0.0.5"])
    config.backend_cls().on_start(group, config)
    assert calls == [(group, config)] and group.ran == ["get_node_ip_address"]


def test_workers_point_at_loopback_and_keep_the_users_interfaces(monkeypatch):
    monkeypatch.delenv("GLOO_SOCKET_IFNAME", raising=False)
    monkeypatch.setenv("NCCL_SOCKET_IFNAME", "ib0")  # the user's choice stands
    for var in ("MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    point_at_loopback(port=29511)
    import os

    assert (os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"]) == ("127.0.0.1", "29511")
    assert os.environ["GLOO_SOCKET_IFNAME"] == process_group.loopback_interface() == "lo"
    assert os.environ["NCCL_SOCKET_IFNAME"] == "ib0"


def test_a_local_trials_training_workers_listen_on_loopback_only(ray_local, tmp_path):
    """Two gloo workers on the local cluster: the process group works (all_reduce) and no socket of
    either worker listens beyond loopback, the store's (rank 0, MASTER_PORT) included."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    out = str(tmp_path)

    def probe(_config):
        import os

        import psutil
        import torch
        import torch.distributed as dist

        total = torch.ones(1)
        dist.all_reduce(total)
        listening = [(c.laddr.ip, c.laddr.port) for c in psutil.Process().net_connections("inet")
                     if c.status == psutil.CONN_LISTEN]
        with open(f"{out}/rank{dist.get_rank()}.json", "w") as handle:
            json.dump({"sum": total.item(), "master": [os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"]],
                       "listening": listening}, handle)

    TorchTrainer(probe, torch_config=trial_torch_config(False),
                 scaling_config=ScalingConfig(num_workers=2, resources_per_worker={"CPU": 0.99}),
                 run_config=RunConfig(name="loopback-probe", storage_path=str(tmp_path / "store"))).fit()
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["sum"] for r in ranks] == [2.0, 2.0]
    master = ranks[0]["master"]
    assert master[0] == "127.0.0.1" and all(r["master"] == master for r in ranks)
    assert ["127.0.0.1", int(master[1])] in ranks[0]["listening"]  # the store, served by rank 0
    exposed = [(rank, ip, port) for rank, r in enumerate(ranks) for ip, port in r["listening"]
               if ip not in LOOPBACK_IPS]
    assert not exposed, exposed

"""Sweeps beside each other on one machine: clusters that never mix, one sweep per name, loopback only.

One run serves every test here: three `lfl-ray sweep` processes started at once, as users
would start them from three terminals (4-7 min on 2 cores, so marked slow):
- ``conc-a`` twice, on one fresh sqlite store: one of them must be refused (exit 2 naming
  --name), never crash in MLflow's schema migration or share the other's Tune state;
- ``conc-b`` on a store of its own: with the winner, two local Ray clusters on one machine at once.
Each sweep is the smoke preset cut to two LoRA trials of 4 steps under ASHA, so the second is
stopped at its first milestone and Ray Train's placement-group cleaner has a group to remove
(the step that, pointed at the wrong cluster, left the group held and the next trial hanging).
While they run, the listening sockets of every process of each sweep (its descendants:
gcs_server, raylet, dashboard, agents, workers) are collected: all on loopback, the training
workers' too (torch's c10d store and gloo's sockets; ``lfl_ray/train/process_group.py``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from mlflow import MlflowClient

BIN = Path(sys.executable).parent
SHRINK = ["--preset", "smoke", "--set", "full=[]", "--set", "budget.steps=4", "--set", "budget.milestones=[2, 4]"]
MIXED = "Found multiple active Ray instances"

pytestmark = pytest.mark.slow


def _sockets(pid: int) -> set[tuple[str, str, int]]:
    """(process name, ip, port) of every listening inet socket of ``pid`` and its descendants."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return set()
    found = set()
    for proc in procs:
        try:
            name = proc.name()
            found |= {(name, c.laddr.ip, c.laddr.port) for c in proc.net_connections("inet")
                      if c.status == psutil.CONN_LISTEN}
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found


def _has_gcs(pid: int) -> bool:
    try:
        return any(p.name() == "gcs_server" for p in psutil.Process(pid).children(recursive=True))
    except psutil.NoSuchProcess:
        return False


@pytest.fixture(scope="module")
def three_sweeps(tmp_path_factory):
    root = tmp_path_factory.mktemp("concurrency")
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_TMPDIR", "LFL_RAY_TMPDIR_OWNER")}
    runs = {"a1": ("conc-a", "a"), "a2": ("conc-a", "a"), "b": ("conc-b", "b")}
    procs, logs = {}, {}
    for key, (name, store) in runs.items():
        logs[key] = root / f"{key}.log"
        cmd = [str(BIN / "lfl-ray"), "sweep", "code_ift", *SHRINK, "--name", name,
               "--tracking-uri", f"sqlite:///{root}/{store}.db", "--storage-path", str(root / f"ray_{store}")]
        procs[key] = subprocess.Popen(cmd, cwd=root, env=env, stdout=open(logs[key], "w"), stderr=subprocess.STDOUT)
    sockets = {key: set() for key in procs}
    both_clusters_up = False
    start = time.perf_counter()
    deadline = start + 900
    while any(p.poll() is None for p in procs.values()) and time.perf_counter() < deadline:
        for key, proc in procs.items():
            if proc.poll() is None:
                sockets[key] |= _sockets(proc.pid)
        up = [key for key, proc in procs.items() if proc.poll() is None and _has_gcs(proc.pid)]
        both_clusters_up |= len(up) >= 2
        time.sleep(1)
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
    seconds = time.perf_counter() - start
    print(f"three sweeps at once: {seconds:.0f} s")
    outputs = {key: logs[key].read_text() for key in procs}
    temp_roots = {key: m.group(1) for key, text in outputs.items()
                  if (m := re.search(r"its logs: (\S+)/ray/session_latest/logs", text))}
    ray_logs = {}
    for key, temp_root in temp_roots.items():
        files = Path(temp_root).glob("ray/session_*/logs/*")
        ray_logs[key] = {f.name: f.read_text(errors="replace") for f in files if f.is_file()}
    yield dict(root=root, codes={k: p.returncode for k, p in procs.items()}, outputs=outputs, sockets=sockets,
               both_clusters_up=both_clusters_up, ray_logs=ray_logs)
    for temp_root in temp_roots.values():
        shutil.rmtree(temp_root, ignore_errors=True)


def _winner(run) -> str:
    return next(k for k in ("a1", "a2") if run["codes"][k] == 0)


def test_two_sweeps_at_once_each_keep_to_their_own_cluster(three_sweeps):
    run = three_sweeps
    winner = _winner(run)
    assert run["codes"]["b"] == 0, run["outputs"]["b"][-4000:]
    assert run["both_clusters_up"], "the two sweeps' clusters never ran at the same time"
    for key in (winner, "b"):
        out = run["outputs"][key]
        assert MIXED not in out, out[-4000:]
        # Every process of the cluster logs here (Train's controller and cleaner included).
        mixed = [name for name, text in run["ray_logs"][key].items() if MIXED in text]
        assert run["ray_logs"][key] and not mixed, mixed
        assert "1 finished, 1 early-stopped, 0 failed" in out, out[-3000:]
        # The ASHA-stopped trial's group was released by Train's cleaner (the runner waits up to 30 s).
        assert "[ray] placement groups left: 0" in out, out[-3000:]


def test_a_second_sweep_of_a_name_on_a_fresh_store_is_refused_not_crashed(three_sweeps):
    run = three_sweeps
    assert sorted([run["codes"]["a1"], run["codes"]["a2"]]) == [0, 2], run["codes"]
    winner = _winner(run)
    loser = "a2" if winner == "a1" else "a1"
    refused = run["outputs"][loser]
    assert "error: --name: got 'conc-a'" in refused and "sweep running now" in refused, refused[-3000:]
    for key in ("a1", "a2"):  # the drivers' own output (lines of Ray's actors start with their name)
        assert not re.search(r"^Traceback", run["outputs"][key], re.M), run["outputs"][key][-3000:]
        assert "_alembic_tmp" not in run["outputs"][key]
    assert "[ray] started a local cluster" not in refused  # refused before Ray started
    client = MlflowClient(f"sqlite:///{run['root']}/a.db")
    runs = client.search_runs([client.get_experiment_by_name("conc-a").experiment_id])
    parents = [r for r in runs if r.data.tags.get("lfl.role") == "sweep"]
    assert [p.info.status for p in parents] == ["FINISHED"]
    assert sum(r.data.tags.get("lfl.role") == "trial" for r in runs) == 2


def _exposed(sockets) -> list:
    return sorted(s for s in sockets if s[1] not in ("127.0.0.1", "::ffff:127.0.0.1", "::1"))


def _training_worker(name: str) -> bool:
    return name.startswith("ray::RayTrainWorker")


def test_local_ray_listens_on_loopback_only(three_sweeps):
    """Every listening socket of Ray's processes (all but the training workers, next test) is on loopback."""
    run = three_sweeps
    for key in (_winner(run), "b"):
        sockets = {s for s in run["sockets"][key] if not _training_worker(s[0])}
        names = {name for name, _ip, _port in sockets}
        # The cluster's servers were seen, not just the driver.
        assert {"gcs_server", "raylet", "ray::DashboardAgent", "ray::RuntimeEnvAgent"} <= names, sorted(names)
        assert not _exposed(sockets), _exposed(sockets)
    ports = [{port for name, _ip, port in run["sockets"][key] if name == "ray::DashboardAgent"}
             for key in (_winner(run), "b")]
    assert not ports[0] & ports[1] and 52365 not in ports[0] | ports[1]  # agents on ports of their own


def test_training_workers_listen_on_loopback_only(three_sweeps):
    """torch's c10d store (rank 0, MASTER_PORT) and gloo's sockets too: the store used to bind ``::``."""
    run = three_sweeps
    for key in (_winner(run), "b"):
        sockets = {s for s in run["sockets"][key] if _training_worker(s[0])}
        assert sockets and not _exposed(sockets), _exposed(sockets)

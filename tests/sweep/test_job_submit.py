"""`ray job submit -- lfl-ray sweep sweeps/code_ift.yaml` against a real `ray start --head` cluster on loopback.

Token authentication stays on (as on a real cluster): the submit passes RAY_AUTH_MODE=token
and the token that `ray start` uses.
"""

from __future__ import annotations

import json
import re
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _ray(*args, env, timeout=180, check=True):
    out = subprocess.run([str(BIN / "ray"), *args], env=env, capture_output=True, text=True, timeout=timeout)
    if check and out.returncode != 0:
        raise AssertionError(f"ray {' '.join(args)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out


def test_ray_job_submit_runs_the_smoke_sweep(tmp_path):
    port, dash = 6391, 8271
    # A Ray temp root of its own (RAY_TMPDIR): `ray start` writes its "current cluster" pointer
    # there, so this cluster's processes find their own GCS and the session's Ray keeps its own.
    temp_dir = tempfile.mkdtemp(prefix="lflray", dir="/tmp")  # short: Ray's socket paths must fit
    # The job's `python` is looked up on the cluster's PATH: the project's venv, as when a user
    # runs `ray start` from an activated environment.
    env = dict(os.environ, RAY_AUTH_MODE="token", RAY_TRAIN_HEALTH_CHECK_INTERVAL_S="0.1",
               PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", RAY_TMPDIR=temp_dir)
    env.pop("RAY_ADDRESS", None)
    _ray("start", "--head", f"--port={port}", f"--dashboard-port={dash}", "--dashboard-host=127.0.0.1",
         "--node-ip-address=127.0.0.1", "--num-cpus=2", "--include-dashboard=true",
         # Ports of its own, so it never collides with another Ray on this machine (the test
         # session's, a user's): a taken dashboard-agent port leaves the job server without an agent.
         "--ray-client-server-port=10011", "--dashboard-agent-listen-port=52391",
         "--dashboard-agent-grpc-port=52392", "--metrics-export-port=52393", "--runtime-env-agent-port=52394",
         "--node-manager-port=52395", "--object-manager-port=52396",
         "--min-worker-port=20000", "--max-worker-port=20999", env=env)
    try:
        runtime_env = {"excludes": [".venv", ".git", "mlruns", "ray_results", "**/__pycache__", "bench/out"]}
        start = time.perf_counter()
        for _attempt in range(6):  # `ray start` returns before the job agent accepts jobs
            out = _ray("job", "submit", "--address", f"http://127.0.0.1:{dash}", "--working-dir", str(REPO),
                       "--runtime-env-json", json.dumps(runtime_env), "--",
                       # One trial: the job path is under test here, the sweep's trials elsewhere.
                       "lfl-ray", "sweep", "sweeps/code_ift.yaml", "--preset", "smoke", "--set", "lora=[]",
                       "--name", "job-smoke",
                       "--tracking-uri", f"sqlite:///{tmp_path}/mlruns/mlflow.db",
                       "--storage-path", str(tmp_path / "ray_results"), env=env, timeout=900, check=False)
            if "No available agent" not in out.stdout + out.stderr:
                break
            time.sleep(10)
        seconds = time.perf_counter() - start
        print(f"ray job submit of the smoke sweep: {seconds:.0f} s")
        assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
        assert re.search(r"Job '\S+' succeeded", out.stdout + out.stderr)
        from mlflow import MlflowClient

        client = MlflowClient(f"sqlite:///{tmp_path}/mlruns/mlflow.db")
        runs = client.search_runs([client.get_experiment_by_name("job-smoke").experiment_id])
        trials = [r for r in runs if r.data.tags.get("lfl.role") == "trial"]
        assert len(trials) == 1 and trials[0].info.status == "FINISHED"
        assert "Headline/learning" in trials[0].data.metrics
    finally:
        _stop_cluster(temp_dir)



def _stop_cluster(temp_dir: str) -> None:
    """Stop only this cluster's processes, found by their Ray temp root (`ray stop` would also
    kill the test session's own Ray)."""
    import psutil

    def ours(proc) -> bool:
        try:
            return temp_dir in " ".join(proc.cmdline()) or proc.environ().get("RAY_TMPDIR") == temp_dir
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return False

    procs = [p for p in psutil.process_iter() if ours(p)]
    for proc in procs:
        proc.terminate()
    _gone, alive = psutil.wait_procs(procs, timeout=15)
    for proc in alive:
        proc.kill()

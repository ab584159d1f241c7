"""cluster/mlflow-server.sh starts, restarts, backs up and stops a real MLflow server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "cluster" / "mlflow-server.sh"


def test_script_is_valid_bash_with_the_required_server_flags():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    text = SCRIPT.read_text()
    for fragment in ("MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false mlflow server --workers 1",
                     "setsid", "--no-serve-artifacts", 'kill -- "-$(cat "$PGID_FILE")"'):
        assert fragment in text, fragment


def test_unknown_verb_exits_2_with_usage():
    done = subprocess.run(["bash", str(SCRIPT), "restart"], capture_output=True, text=True)
    assert done.returncode == 2 and "usage:" in done.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _group_alive(pgid: int) -> bool:
    """True while a non-zombie process of the group exists (reads /proc)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_start_restart_backup_restore_stop(tmp_path):
    port = _free_port()
    env = dict(os.environ, HOME=str(tmp_path / "home"), MLFLOW_PORT=str(port),
               MLFLOW_HOST="127.0.0.1",
               PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    prefix = f"file://{tmp_path / 'bucket'}"
    (tmp_path / "bucket" / "mlflow").mkdir(parents=True)  # a local "bucket" needs its folder
    home = tmp_path / "home" / "mlflow"

    def run(*args):
        return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True,
                              text=True, timeout=200, check=True).stdout

    try:
        assert "up on 127.0.0.1" in run("start", prefix)
        first = int((home / "server.pgid").read_text())
        import mlflow

        client = mlflow.MlflowClient(f"http://127.0.0.1:{port}")
        experiment = client.create_experiment("cluster-test")
        assert client.get_experiment(experiment).artifact_location.startswith(
            f"{prefix}/mlflow-artifacts")

        run("start", prefix)  # a restart stops the old group first
        second = int((home / "server.pgid").read_text())
        assert second != first and not _group_alive(first)

        assert "backed up" in run("backup", prefix)
        assert (tmp_path / "bucket" / "mlflow" / "mlflow.db").stat().st_size > 0
        run("stop")
        assert not (home / "server.pgid").exists()

        (home / "mlflow.db").unlink()  # a new head: the database comes back from the bucket
        assert "restored" in run("start", prefix)
        names = [e.name for e in client.search_experiments()]
        assert "cluster-test" in names
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10).read()
        assert body == b"OK"
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop"], env=env, timeout=100)

"""`lfl-ray ui` serves the MLflow UI over a sweep's store on loopback, and stops cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from lfl_ray.cli import main

LFL_RAY = str(Path(sys.executable).parent / "lfl-ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ui_serves_the_store_on_loopback_and_ctrl_c_stops_every_process(tmp_path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    (tmp_path / "mlruns").mkdir()
    MlflowClient(uri).create_experiment("ui-check")
    port = _free_port()
    proc = subprocess.Popen([LFL_RAY, "ui", "--tracking-uri", uri, "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                time.sleep(1)
        else:
            pytest.fail("the UI did not come up")
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=10",
                                      timeout=5).read().decode()
        assert "ui-check" in body
        listening = []
        for p in [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]:
            try:
                listening += [c for c in p.net_connections("inet") if c.status == psutil.CONN_LISTEN]
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        assert listening and all(c.laddr.ip == "127.0.0.1" for c in listening)
        family = [proc.pid, *(c.pid for c in psutil.Process(proc.pid).children(recursive=True))]
        os.kill(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
        time.sleep(1)
        assert not [pid for pid in family if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.parametrize("uri,needle", [("http://127.0.0.1:5000", "already a server"),
                                        ("sqlite://rel.db", "sqlite store"),
                                        ("sqlite:////nonexistent/mlflow.db", "existing store")])
def test_ui_bad_store_exits_2(uri, needle, capsys):
    assert main(["ui", "--tracking-uri", uri]) == 2
    assert needle in capsys.readouterr().err

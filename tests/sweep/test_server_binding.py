"""Servers the project starts listen on loopback unless a flag says otherwise, with a warning."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]


def _listening_hosts(port: int) -> set[str]:
    return {c.laddr.ip for c in psutil.net_connections("inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port}


def test_local_dashboard_listens_on_loopback_only(ray_local):
    from ray._private.worker import global_worker

    url = global_worker.node.address_info["webui_url"]  # "127.0.0.1:8265"
    host, port = url.rsplit(":", 1)
    assert host == "127.0.0.1"
    assert _listening_hosts(int(port)) == {"127.0.0.1"}


@pytest.mark.timeout(240)
def test_dashboard_elsewhere_needs_the_flag_and_warns(tmp_path):
    """``--dashboard-host 0.0.0.0`` really binds every interface, and says so loudly."""
    script = (
        "import warnings, psutil\n"
        "from lfl_ray.ray_runtime import init_ray\n"
        "from ray._private.worker import global_worker\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    init_ray(num_cpus=1, dashboard_host='0.0.0.0')\n"
        "port = int(global_worker.node.address_info['webui_url'].rsplit(':', 1)[1])\n"
        "hosts = {c.laddr.ip for c in psutil.net_connections('inet')\n"
        "         if c.status == psutil.CONN_LISTEN and c.laddr.port == port}\n"
        "print('HOSTS', sorted(hosts))\n"
        "print('WARNED', [str(w.message) for w in caught if 'reachable from the network' in str(w.message)])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=200)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "HOSTS ['0.0.0.0']" in out.stdout
    assert "[ray] WARNING: Ray dashboard bound to 0.0.0.0" in out.stdout
    assert "WARNED ['Ray dashboard bound to 0.0.0.0" in out.stdout


def test_mlflow_server_script_defaults_to_loopback_and_warns_otherwise():
    text = (REPO / "cluster" / "mlflow-server.sh").read_text()
    assert "MLFLOW_HOST=${MLFLOW_HOST:-127.0.0.1}" in text
    for yaml in ("aws-gpu.yaml", "gcp-gpu.yaml"):  # the multi-node clusters opt in explicitly
        assert "MLFLOW_HOST=0.0.0.0 bash ~/lfl-ray-cluster/mlflow-server.sh start" in \
            (REPO / "cluster" / yaml).read_text()
    warn = subprocess.run(["bash", "-c", f"source <(sed -n '/^warn_if_exposed()/,/^}}/p' "
                           f"{REPO}/cluster/mlflow-server.sh); MLFLOW_HOST=0.0.0.0 warn_if_exposed"],
                          capture_output=True, text=True, timeout=30)
    assert "WARNING" in warn.stderr and "0.0.0.0" in warn.stderr
    quiet = subprocess.run(["bash", "-c", f"source <(sed -n '/^warn_if_exposed()/,/^}}/p' "
                            f"{REPO}/cluster/mlflow-server.sh); MLFLOW_HOST=127.0.0.1 warn_if_exposed"],
                           capture_output=True, text=True, timeout=30)
    assert quiet.stderr == ""

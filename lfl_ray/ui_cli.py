"""``lfl-ray ui [--tracking-uri URI] [--port 5000]``: the MLflow UI over the store a sweep used.

Starts ``mlflow server`` on 127.0.0.1 only (the UI runs no auth: reach it from elsewhere
through SSH forwarding), with the artifact root beside a sqlite store as the sweep writes
it, in its own process group so that Ctrl-C stops the server and every worker it started.
Job execution is off (with it on, MLflow leaves ``huey_consumer`` processes behind).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from lfl_ray.errors import ConfigError


def server_command(tracking_uri: str, port: int, host: str = "127.0.0.1") -> list[str]:
    """The ``mlflow server`` command line for a tracking URI (sqlite stores only: a server URI
    already has its UI)."""
    from lfl_ray.mlflow_schema import artifact_root_for

    if tracking_uri.startswith(("http://", "https://")):
        raise ConfigError("--tracking-uri", tracking_uri, "is already a server: open it in a browser")
    if not tracking_uri.startswith("sqlite:////"):
        raise ConfigError("--tracking-uri", tracking_uri, "must be a sqlite store: sqlite:////abs/path/mlflow.db")
    if not Path(tracking_uri[len("sqlite:///"):]).is_file():
        raise ConfigError("--tracking-uri", tracking_uri, "must name an existing store (run a sweep first)")
    mlflow = Path(sys.executable).parent / "mlflow"
    return [str(mlflow) if mlflow.exists() else "mlflow", "server", "--workers", "1",
            "--backend-store-uri", tracking_uri, "--default-artifact-root", artifact_root_for(tracking_uri),
            "--host", host, "--port", str(port)]


def register(subparsers) -> None:
    p = subparsers.add_parser("ui", help="the MLflow UI on 127.0.0.1 over a sweep's store",
                              description=__doc__.splitlines()[0])
    p.add_argument("--tracking-uri", help="the store (default sqlite:///$PWD/mlruns/mlflow.db, or $MLFLOW_TRACKING_URI)")
    p.add_argument("--port", type=int, default=5000, help="port on 127.0.0.1 (default 5000)")
    p.set_defaults(func=run)


def run(args) -> int:
    from lfl_ray.tracking import default_tracking_uri

    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()
    if not 0 < args.port < 65536:
        raise ConfigError("--port", args.port, "must be a port number in 1..65535")
    command = server_command(uri, args.port)
    print(f"[ui] MLflow UI over {uri} at http://127.0.0.1:{args.port} (Ctrl-C stops it)", flush=True)
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    server = subprocess.Popen(command, env=env, start_new_session=True)
    try:
        return server.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)

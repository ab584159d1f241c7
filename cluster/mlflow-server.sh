#!/usr/bin/env bash
# The MLflow tracking server on the Ray head node: start, stop, back up its database.
#
#   bash ~/lfl-ray-cluster/mlflow-server.sh start  s3://BUCKET/lfl-ray   # run by head_start_ray_commands
#   bash ~/lfl-ray-cluster/mlflow-server.sh stop
#   bash ~/lfl-ray-cluster/mlflow-server.sh backup s3://BUCKET/lfl-ray   # before `ray down` (README step 10)
#
# Backend store: sqlite at $MLFLOW_HOME/mlflow.db on the head's disk (default ~/mlflow).
# Artifacts: PREFIX/mlflow-artifacts in object storage, written by the clients directly
# (--no-serve-artifacts), not proxied through this single worker.
# Backup: PREFIX/mlflow/mlflow.db; `start` restores it when there is no local database, so
# a new head picks up the runs of the last one. PREFIX is any URI pyarrow reads (s3://,
# gs://, file://).
#
# The server runs in its own process group (setsid) whose id is kept in
# $MLFLOW_HOME/server.pgid, so `stop` ends the whole group. Job execution is off: with it
# on, mlflow leaves huey_consumer processes behind. It listens on MLFLOW_HOST, by default
# 127.0.0.1 (loopback only). A multi-node cluster sets MLFLOW_HOST=0.0.0.0 explicitly
# (cluster/*.yaml do) because trials on GPU nodes log to it; the script then prints a
# warning. Keep port 5000 out of every security group / firewall rule and reach the UI
# through SSH forwarding.
set -euo pipefail

MLFLOW_HOME=${MLFLOW_HOME:-$HOME/mlflow}
MLFLOW_HOST=${MLFLOW_HOST:-127.0.0.1}
MLFLOW_PORT=${MLFLOW_PORT:-5000}
DB=$MLFLOW_HOME/mlflow.db
PGID_FILE=$MLFLOW_HOME/server.pgid

port_open() {
  python -c "import socket, sys; sys.exit(socket.socket().connect_ex(('127.0.0.1', $MLFLOW_PORT)) != 0)"
}

stop() {
  if [ -f "$PGID_FILE" ]; then
    kill -- "-$(cat "$PGID_FILE")" 2>/dev/null || true
    rm -f "$PGID_FILE"
  fi
  # Wait for the port: a restart must not race the old server still shutting down.
  for _ in $(seq 60); do port_open || return 0; sleep 1; done
  echo "mlflow-server: port $MLFLOW_PORT still in use after 60 s" >&2
  return 1
}

warn_if_exposed() {
  case "$MLFLOW_HOST" in
    127.*|localhost|::1) ;;
    *) echo "mlflow-server: WARNING: listening on $MLFLOW_HOST:$MLFLOW_PORT, reachable from the" \
            "network with no authentication; firewall the port and use SSH forwarding" >&2 ;;
  esac
}

start() {
  local prefix=${1:?usage: mlflow-server.sh start PREFIX}
  warn_if_exposed
  mkdir -p "$MLFLOW_HOME"
  stop
  if [ ! -f "$DB" ] && python -c "import pyarrow.fs as fs; fs.copy_files('$prefix/mlflow/mlflow.db', '$DB')" 2>/dev/null; then
    echo "mlflow-server: restored $DB from $prefix/mlflow/mlflow.db"
  fi
  setsid bash -c 'echo $$ > "$0"; exec env MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false mlflow server --workers 1 --backend-store-uri "sqlite:///$1" --no-serve-artifacts --default-artifact-root "$2" --host "$3" --port "$4"' \
    "$PGID_FILE" "$DB" "$prefix/mlflow-artifacts" "$MLFLOW_HOST" "$MLFLOW_PORT" \
    > "$MLFLOW_HOME/server.log" 2>&1 < /dev/null &
  for _ in $(seq 120); do
    if port_open; then
      echo "mlflow-server: up on $MLFLOW_HOST:$MLFLOW_PORT (log $MLFLOW_HOME/server.log)"
      return 0
    fi
    sleep 1
  done
  echo "mlflow-server: not up after 120 s; see $MLFLOW_HOME/server.log" >&2
  return 1
}

backup() {
  local prefix=${1:?usage: mlflow-server.sh backup PREFIX}
  # sqlite's online backup gives a consistent copy even while the server writes.
  python - "$DB" "$prefix/mlflow/mlflow.db" <<'PY'
import os, sqlite3, sys, tempfile
import pyarrow.fs as fs

source, destination = sys.argv[1], sys.argv[2]
with tempfile.TemporaryDirectory() as tmp:
    snapshot = os.path.join(tmp, "mlflow.db")
    into = sqlite3.connect(snapshot)
    sqlite3.connect(source).backup(into)
    into.close()
    fs.copy_files(snapshot, destination)
print(f"mlflow-server: backed up {source} to {destination}")
PY
}

case "${1:-}" in
  start) start "${2:-}" ;;
  stop) stop ;;
  backup) backup "${2:-}" ;;
  *) echo "usage: $0 start PREFIX | stop | backup PREFIX" >&2; exit 2 ;;
esac

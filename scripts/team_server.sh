#!/usr/bin/env bash
# The team tracking server: PostgreSQL (private cluster on 127.0.0.1) + `mlflow server` with proxied artifacts and
# accounts (MLflow's basic-auth app; --no-auth: none, loopback only).
#   scripts/team_server.sh start [--host 127.0.0.1] [--port 5050] [--pg-port 55432] [--dir .fmnist/server]
#   scripts/team_server.sh user add NAME | user remove NAME | grant NAME EXPERIMENT READ|EDIT|MANAGE
#   scripts/team_server.sh status | stop [--purge]
# Options: `scripts/team_server.sh start --help`. Details: docs/team-server.md.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${FMNIST_PYTHON:-$root/.venv/bin/python}"
[ -x "$py" ] || py="$(command -v python3)"
exec "$py" -m fmnist.server "$@"

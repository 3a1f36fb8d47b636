#!/usr/bin/env bash
# The team tracking server: PostgreSQL (private cluster on 127.0.0.1) + `mlflow server` with proxied artifacts.
#   scripts/team_server.sh start [--port 5050] [--pg-port 55432] [--dir .fmnist/server]   -> prints the export line
#   scripts/team_server.sh status | stop [--purge]
# Options: `scripts/team_server.sh start --help`. Details: docs/team-server.md.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${FMNIST_PYTHON:-$root/.venv/bin/python}"
[ -x "$py" ] || py="$(command -v python3)"
exec "$py" -m fmnist.server "$@"

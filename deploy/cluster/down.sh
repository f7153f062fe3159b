#!/usr/bin/env bash
# Stop the local cluster (make cluster-down): the MLflow server and PostgreSQL, every process of
# both. The data stays in .cache/cluster/ unless CLUSTER_PURGE=1.
set -euo pipefail
cd "$(dirname "$0")/../.."
py=.venv/bin/python; [ -x "$py" ] || py=python
exec "$py" -m pipeline.cluster down

#!/usr/bin/env bash
# Start the local cluster (make cluster-up): PostgreSQL with the databases mlflow, mlflow_auth and
# optuna, and an MLflow tracking server (basic auth, artifacts proxied) on 127.0.0.1. Writes
# .cache/cluster/cluster.env (mode 0600). Running it again leaves the one cluster as it is.
# Settings: CLUSTER_PG_PORT, CLUSTER_MLFLOW_PORT, CLUSTER_HOST, CLUSTER_DIR (python -m pipeline.cluster -h).
set -euo pipefail
cd "$(dirname "$0")/../.."
py=.venv/bin/python; [ -x "$py" ] || py=python
exec "$py" -m pipeline.cluster up

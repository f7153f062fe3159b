#!/usr/bin/env bash
# `dvc repro` against the local cluster (make cluster-repro): every stage logs to its MLflow server
# as the user in cluster.env, the Optuna study lives in its PostgreSQL, TUNE_WORKERS processes run
# trials (the tune stage starts TUNE_WORKERS-1 `--worker`s beside itself) and the train stage is the
# chief of TRAIN_WORKERS MultiWorkerMirroredStrategy processes on 127.0.0.1.
#   TUNE_WORKERS=2 TRAIN_WORKERS=2 deploy/cluster/repro.sh [more dvc repro arguments]
set -euo pipefail
cd "$(dirname "$0")/../.."
py=.venv/bin/python; [ -x "$py" ] || py=python
dvc=.venv/bin/dvc; [ -x "$dvc" ] || dvc=dvc
env_file=${CLUSTER_DIR:-${PIPELINE_CACHE_DIR:-.cache}/cluster}/cluster.env
if ! "$py" -m pipeline.cluster status >/dev/null || [ ! -f "$env_file" ]; then
  echo "cluster-repro: the local cluster is not up (make cluster-up)" >&2
  exit 1
fi
set -a
# shellcheck source=/dev/null
. "$env_file"
set +a
export TUNE_WORKERS=${TUNE_WORKERS:-2} TRAIN_WORKERS=${TRAIN_WORKERS:-2}
echo "cluster-repro: MLflow $MLFLOW_TRACKING_URI, $TUNE_WORKERS tune and $TRAIN_WORKERS train worker(s)" >&2
exec "$dvc" repro "$@"

#!/bin/sh
# The MLflow tracking server of cluster mode, as `make cluster-up` runs it on 127.0.0.1:
#   backend store  PostgreSQL ($MLFLOW_BACKEND_STORE_URI: mlflow reads it from the environment,
#                  so the password stays out of the command line)
#   artifacts      proxied by the server (--serve-artifacts), kept in $MLFLOW_ARTIFACTS_DESTINATION
#   users          MLflow's basic-auth app; the admin from MLFLOW_AUTH_ADMIN_USERNAME/PASSWORD
# The auth app takes its database URL from an ini file only: written here, mode 0600, into a
# memory-backed volume, never into the image or a ConfigMap.
set -eu
umask 077
config=/run/mlflow/basic_auth.ini
cat > "$config" <<INI
[mlflow]
default_permission = READ
database_uri = ${MLFLOW_AUTH_DATABASE_URI}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
INI
export MLFLOW_AUTH_CONFIG_PATH="$config"
exec mlflow server --host 0.0.0.0 --port 5000 --workers "${MLFLOW_WORKERS:-2}" \
  --serve-artifacts --app-name basic-auth

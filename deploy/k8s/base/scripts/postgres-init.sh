#!/bin/sh
# Run once by the postgres image on an empty data folder (/docker-entrypoint-initdb.d): the
# databases and owners of `make cluster-up`, passwords from the Secret textclf-secrets. For an
# external server, a DBA runs the same statements (docs/distributed.md).
#   mlflow       MLflow's backend store (experiments, runs, the model registry)
#   mlflow_auth  the basic-auth app's users and permissions
#   optuna       the Optuna studies
# psql's :'name' quotes each password as an SQL literal, and the heredoc is not expanded by sh.
set -eu
psql --no-psqlrc -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v mlflow_password="$MLFLOW_DB_PASSWORD" -v optuna_password="$OPTUNA_DB_PASSWORD" <<'SQL'
CREATE ROLE mlflow LOGIN PASSWORD :'mlflow_password';
CREATE ROLE optuna LOGIN PASSWORD :'optuna_password';
CREATE DATABASE mlflow OWNER mlflow;
CREATE DATABASE mlflow_auth OWNER mlflow;
CREATE DATABASE optuna OWNER optuna;
SQL

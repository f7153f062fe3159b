"""The local cluster: PostgreSQL and an MLflow tracking server (basic auth) on 127.0.0.1.

`python -m pipeline.cluster up|down|status` (`make cluster-up`, `make cluster-down`) manages the
services under .cache/cluster/; `up` writes the one env file the stages read (cluster.env). See
docs/distributed.md, "Local cluster".
"""

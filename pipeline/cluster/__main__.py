"""`python -m pipeline.cluster up|down|status`: the local cluster (make cluster-up / cluster-down)."""
from __future__ import annotations

import argparse
import os
import sys

from pipeline.core.cli import run_command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.cluster", description=__doc__ + """
up      start PostgreSQL and the MLflow server (basic auth, artifacts proxied) on 127.0.0.1; write
        .cache/cluster/cluster.env. Running it again leaves the one cluster as it is.
down    stop both; the data stays unless --purge (or CLUSTER_PURGE=1).
status  what runs (exit 0 when all is up and answering, 3 otherwise).

settings (environment): CLUSTER_DIR (.cache/cluster), CLUSTER_HOST (127.0.0.1), CLUSTER_PG_PORT and
CLUSTER_MLFLOW_PORT (default: the last ones, or free ports), CLUSTER_PG_BINDIR (PostgreSQL's programs),
CLUSTER_MLFLOW_WORKERS (1).""", formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--purge", action="store_true", help="down: remove the data too")
    args = parser.parse_args(argv)

    def body() -> int:
        from pipeline.cluster import services

        if args.command == "up":
            services.up()
        elif args.command == "down":
            services.down(purge=args.purge or os.environ.get("CLUSTER_PURGE", "") not in ("", "0"))
        else:
            return 0 if services.status() else 3
        return 0

    return run_command("cluster", body)


if __name__ == "__main__":
    sys.exit(main())

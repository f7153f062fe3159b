#!/bin/sh
# Writes the git-ignored env files the kustomizations' secretGenerators read:
#   base/secrets.env      every key of base/secrets.env.example; an empty one gets a random value
#                         (48 hex digits: URL-safe, it goes into postgresql:// URLs)
#   base/dvc-remote.env   empty (the DVC remote's credentials, if it needs any: see its .example)
# Mode 0600. An existing file is kept (--force rewrites secrets.env: the running PostgreSQL and
# MLflow keep their old passwords until changed there too: docs/distributed.md).
set -eu
cd "$(dirname "$0")/base"
umask 077
force=no
[ "${1:-}" = "--force" ] && force=yes

random() { od -An -tx1 -N24 /dev/urandom | tr -d ' \n'; }

if [ -e secrets.env ] && [ "$force" = no ]; then
  echo "make-secrets: base/secrets.env exists, kept (--force writes new passwords)"
else
  tmp=$(mktemp secrets.env.XXXXXX)
  grep -E '^[A-Z_][A-Z0-9_]*=' secrets.env.example | while IFS='=' read -r key value; do
    [ -n "$value" ] || value=$(random)
    printf '%s=%s\n' "$key" "$value"
  done > "$tmp"
  mv "$tmp" secrets.env
  echo "make-secrets: wrote base/secrets.env ($(wc -l < secrets.env) keys, mode 0600)"
fi
[ -e dvc-remote.env ] || { : > dvc-remote.env; echo "make-secrets: wrote an empty base/dvc-remote.env"; }

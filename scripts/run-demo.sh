#!/usr/bin/env bash
# `make run`: the demo upstream on 127.0.0.1:9000 and tollgate in front of it, with
# examples/tollgate.yaml on the embedded SQLite default (var/tollgate.db).
# The admin token and key secret are generated once into var/secrets.env (mode 0600) so that
# keys keep working across restarts; export TOLLGATE_ADMIN_TOKEN / TOLLGATE_KEY_SECRET to override.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p var
if [ ! -f var/secrets.env ]; then
  umask 077
  {
    echo "TOLLGATE_ADMIN_TOKEN=adm_$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    echo "TOLLGATE_KEY_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  } > var/secrets.env
fi
set -a
# shellcheck disable=SC1091
. var/secrets.env
set +a
export TOLLGATE_ADMIN_TOKEN TOLLGATE_KEY_SECRET

build/demo-upstream --listen 127.0.0.1:9000 &
upstream=$!
trap 'kill $upstream 2>/dev/null || true' EXIT
echo "demo upstream on http://127.0.0.1:9000 (pid $upstream)"
echo "admin token: $TOLLGATE_ADMIN_TOKEN   (export TOLLGATE_ADMIN_TOKEN=\$(grep TOKEN var/secrets.env | cut -d= -f2) in another shell)"
build/tollgate serve -c examples/tollgate.yaml

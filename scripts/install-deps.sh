#!/usr/bin/env bash
# Installs the Debian packages tollgate builds and tests with, if any is missing.
# Runs as root (CI and the dev machines are root); with sudo otherwise.
set -euo pipefail
pkgs=(build-essential pkg-config libh2o-evloop-dev libyaml-dev libjansson-dev libsodium-dev
      libsqlite3-dev libssl-dev zlib1g-dev libcurl4-openssl-dev libcmocka-dev sqlite3 curl
      nginx-light wrk time nodejs npm chromium libjs-chart.js clang libclang-rt-14-dev
      postgresql libpq-dev redis-server libhiredis-dev man-db systemd)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# nodejs may come from outside Debian's package (the image ships its own node); accept any node.
if command -v node >/dev/null 2>&1; then
  tmp=(); for p in "${missing[@]}"; do [[ $p == nodejs || $p == npm ]] || tmp+=("$p"); done
  missing=("${tmp[@]+"${tmp[@]}"}")
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Browser tests drive Debian's chromium with playwright-core from the npm registry (no browser
# download: playwright-core has none).
cd "$(dirname "$0")/../tests/e2e"
[ -d node_modules/playwright-core ] && [ -d node_modules/axe-core ] || npm ci --no-audit --no-fund --silent
# The Stripe tests use the official stripe package (webhook signatures, the fake's reference).
cd ../stripe
[ -d node_modules/stripe ] || npm ci --no-audit --no-fund --silent
# The notification tests: the Standard Webhooks reference package verifies tollgate's signatures;
# a real SMTP server as the mail sink and a MIME parser (nodemailer's smtp-server and mailparser).
cd ../notify
[ -d node_modules/standardwebhooks ] && [ -d node_modules/smtp-server ] && [ -d node_modules/mailparser ] ||
  npm ci --no-audit --no-fund --silent
# docs/openapi.yaml is checked by an OpenAPI 3.1 schema validator, and the server's answers by
# ajv against the document's schemas (tests/openapi/).
cd ../openapi
[ -d node_modules/@seriousme/openapi-schema-validator ] && [ -d node_modules/ajv ] || npm ci --no-audit --no-fund --silent

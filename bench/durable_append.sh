#!/usr/bin/env bash
# bench/durable_append.sh - the cost of one durable append to the metering log on this machine,
# side by side with a plain write to the page cache (the reference). Strict metering pays one
# such append per group of calls; see tools/bench-durable-append.c for what is measured.
# The log is written where the database lives by default (var/), so the figures are the disk's.
# Env: DIR (default var/), APPENDS (3000), ROWS (11, about one strict group under bench/gateway.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
make -s build/bench-durable-append
dir=${DIR:-var}
mkdir -p "$dir"
build/bench-durable-append "$dir" "${APPENDS:-3000}" "${ROWS:-11}"

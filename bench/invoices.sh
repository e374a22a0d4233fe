#!/usr/bin/env bash
# bench/invoices.sh - close a billing period into invoices for many customers with usage, through
# the server's own period closer (tg_periods_close: only the customers due, 500 per transaction).
# Prints customers/s, peak memory (RSS: it must not grow with the customer count), and checks the
# sum of all invoices against the pricing code's own computation.
# Env: CUSTOMERS (default 100000). Goal: 1,000,000 customers in under 60 s on SQLite, with the
# same peak RSS as 100,000. bench/invoices-under-load.sh measures the gateway's p99 meanwhile.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s build/bench-invoices
dir=$(mktemp -d /tmp/tollgate-bench-inv.XXXXXX)
trap 'rm -rf "$dir"' EXIT
build/bench-invoices "${CUSTOMERS:-100000}" "$dir"

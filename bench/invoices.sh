#!/usr/bin/env bash
# bench/invoices.sh - close a billing period into invoices for many customers with usage.
# Prints customers/s, peak memory, and checks the sum of all invoices against the pricing code.
# Env: CUSTOMERS (default 100000). Goal: under 10 s for 100,000 customers.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s build/bench-invoices
dir=$(mktemp -d /tmp/tollgate-bench-inv.XXXXXX)
trap 'rm -rf "$dir"' EXIT
build/bench-invoices "${CUSTOMERS:-100000}" "$dir"

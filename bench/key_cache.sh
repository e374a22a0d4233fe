#!/usr/bin/env bash
# bench/key_cache.sh - what finding a call's key digest costs: the format check and HMAC every
# call paid before the key cache, beside a hit in it (tools/bench-key-cache.c). Thread CPU time,
# ROUNDS runs (5); prints each run and the median of both.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
make -s build/bench-key-cache
tmp=$(mktemp); trap 'rm -f "$tmp"' EXIT
for _ in $(seq "$ROUNDS"); do
  build/bench-key-cache "${LOOKUPS:-2000000}" "${KEYS:-256}"
done | tee "$tmp"
median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
printf 'median over %d runs: check_format+hmac %s ns, cache hit %s ns\n' "$ROUNDS" \
  "$(awk '{print $2}' "$tmp" | median)" "$(awk '{print $5}' "$tmp" | median)"

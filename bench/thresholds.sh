#!/usr/bin/env bash
# bench/thresholds.sh - the CPU time the usage-threshold decision adds to a gateway call
# (tools/bench-thresholds.c: tg_thresholds_crossed as the gateway calls it, beside the same loop
# without it). Thread CPU time, ROUNDS runs (5), median and spread of the added ns per call.
# The whole-call comparison is bench/gateway_ab.sh BASE NEW (requests/s, p99, CPU per request).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
make -s build/bench-thresholds
added=()
for _ in $(seq "$ROUNDS"); do
  line=$(build/bench-thresholds "${CALLS:-100000000}")
  echo "$line"
  added+=("$(awk '{print $(NF-1)}' <<<"$line")")
done
printf '%s\n' "${added[@]}" | sort -g | awk '{a[NR]=$1} END {printf "added per call: median %.2f ns (min %.2f, max %.2f) over %d runs\n", a[int((NR+1)/2)], a[1], a[NR], NR}'

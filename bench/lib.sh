# bench/lib.sh - what the bench scripts share; sourced (`. bench/lib.sh`), never run.
# Figures on this 2-core machine move with whatever else runs on it: every bench prints the load
# average beside its figures, alternates the setups it compares and reports medians and spread.

# now: wall clock in seconds with nanoseconds; since T0: seconds since T0, one decimal.
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# load_avg: the 1-minute load average.
load_avg() { cut -d' ' -f1 /proc/loadavg; }

# median: the median of the numbers on stdin, one a line.
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

# summary N...: "median (min..max; n values: v1, v2, ...)" of its arguments.
summary() {
  local m
  m=$(printf '%s\n' "$@" | median)
  printf '%s (%s..%s; %d: %s)\n' "$m" "$(printf '%s\n' "$@" | sort -g | head -1)" \
    "$(printf '%s\n' "$@" | sort -g | tail -1)" "$#" "$(echo "$*" | sed 's/ /, /g')"
}

#!/usr/bin/env bash
# Side-by-side: wrk and `flotilla load` against the same targets on loopback,
# at the same concurrency, closed loop. The targets are pinned to one CPU and
# the load tool to another, so neither steals the other's CPU; rounds
# alternate the two tools so drift in the machine's load hits both alike.
#
# Two targets:
#   counter  flotilla counter (in-process store), GET /: the most requests
#            per second each tool gets from the same server;
#   delay    flotilla demo, GET /delay/5ms: a known latency, so both tools'
#            percentiles can be checked against 5 ms and each other.
#
#   bench/load/compare.sh                        # 1 round, -c32, 10s each
#   ROUNDS=3 DURATION=10s CONC=32 TARGETS="counter" bench/load/compare.sh
#   PIN=0 bench/load/compare.sh                  # no CPU pinning (see docs/load.md)
#
# Needs: go, wrk, jq, taskset (util-linux), curl; a machine with 2+ CPUs.
set -euo pipefail
cd "$(dirname "$0")/../.."

ROUNDS=${ROUNDS:-1}
DURATION=${DURATION:-10s}
CONC=${CONC:-32}
TARGETS=${TARGETS:-counter delay}
PIN=${PIN:-1}
LOAD_CPU=${LOAD_CPU:-0}
SERVER_CPU=${SERVER_CPU:-1}
PORT=${PORT:-18181} # the counter; the demo listens on PORT+1

# on CPU runs a command pinned to CPU when PIN=1. It execs, so that a
# background `on … &` has the command's own PID in $!.
on() {
  local cpu=$1
  shift
  if [[ $PIN == 1 ]]; then exec taskset -c "$cpu" "$@"; else exec "$@"; fi
}

for tool in wrk jq taskset curl go; do
  command -v "$tool" >/dev/null || { echo "compare.sh: $tool not found" >&2; exit 2; }
done

tmp=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT

CGO_ENABLED=0 go build -trimpath -o "$tmp/flotilla" ./cmd/flotilla

start() { # name port args…
  local name=$1 port=$2 pid
  shift 2
  on "$SERVER_CPU" "$tmp/flotilla" "$name" --addr "127.0.0.1:$port" --log-level warn "$@" &
  pid=$!
  pids+=("$pid")
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || { echo "compare.sh: $name did not start on port $port" >&2; exit 1; }
    curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && return
    sleep 0.1
  done
  echo "compare.sh: $name on port $port is not ready" >&2
  exit 1
}
start counter "$PORT" --store memory
start demo $((PORT + 1))

url() {
  case $1 in
    counter) echo "http://127.0.0.1:$PORT/" ;;
    delay) echo "http://127.0.0.1:$((PORT + 1))/delay/5ms" ;;
    *) echo "compare.sh: unknown target $1" >&2; exit 2 ;;
  esac
}

# wrk prints latencies as 812.00us, 2.79ms or 1.02s; print them in ms.
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; printf "%.3f", v}'; }

run_wrk() {
  (on "$LOAD_CPU" wrk -t1 -c"$CONC" -d"$DURATION" --latency "$1") >"$tmp/wrk.txt"
  local rate mean p50 p90 p99
  rate=$(awk '/^Requests\/sec:/ {print $2}' "$tmp/wrk.txt")
  mean=$(awk '$1 == "Latency" {print $2; exit}' "$tmp/wrk.txt" | to_ms)
  p50=$(awk '$1 == "50%" {print $2}' "$tmp/wrk.txt" | to_ms)
  p90=$(awk '$1 == "90%" {print $2}' "$tmp/wrk.txt" | to_ms)
  p99=$(awk '$1 == "99%" {print $2}' "$tmp/wrk.txt" | to_ms)
  echo "$rate $mean $p50 $p90 $p99"
}

run_flotilla() {
  (on "$LOAD_CPU" "$tmp/flotilla" load "$1" -c "$CONC" -d "$DURATION" --max-error-rate 1 --json) 2>/dev/null >"$tmp/load.json"
  jq -r '"\(.rate) \(.latency.mean_ms) \(.latency.p50_ms) \(.latency.p90_ms) \(.latency.p99_ms)"' "$tmp/load.json"
}

echo "# $(date -u +%FT%TZ) $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); -c$CONC, $DURATION each, pinned: $PIN"
printf '%-8s %-6s %-9s %10s %9s %9s %9s %9s\n' target round tool rate/s mean_ms p50_ms p90_ms p99_ms
for target in $TARGETS; do
  u=$(url "$target")
  # A short warm-up so neither tool meets a cold server.
  (on "$LOAD_CPU" wrk -t1 -c"$CONC" -d2s "$u") >/dev/null
  for r in $(seq "$ROUNDS"); do
    read -r wr wm w50 w90 w99 < <(run_wrk "$u")
    printf '%-8s %-6s %-9s %10.1f %9.3f %9.3f %9.3f %9.3f\n' "$target" "$r" wrk "$wr" "$wm" "$w50" "$w90" "$w99"
    read -r fr fm f50 f90 f99 < <(run_flotilla "$u")
    printf '%-8s %-6s %-9s %10.1f %9.3f %9.3f %9.3f %9.3f\n' "$target" "$r" flotilla "$fr" "$fm" "$f50" "$f90" "$f99"
    awk -v t="$target" -v r="$r" -v a="$fr" -v b="$wr" -v m="$fm" -v n="$wm" -v c="$f50" -v d="$w50" -v e="$f90" -v f="$w90" -v g="$f99" -v h="$w99" \
      'BEGIN {printf "%-8s %-6s %-9s %10.2f %9.2f %9.2f %9.2f %9.2f\n", t, r, "ratio", a/b, m/n, c/d, e/f, g/h}'
  done
done
echo "ratio = flotilla load / wrk (rate: higher is better; latencies: 1.00 is equal)"
echo "closed loop, so by Little's law each tool's mean latency should be about $CONC / its rate"

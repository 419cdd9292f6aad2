#!/usr/bin/env bash
# Side-by-side: wrk and `flotilla load` against the same target on loopback,
# at the same concurrency, closed loop. The target (flotilla counter with the
# in-process store) is pinned to one CPU and the load tool to another, so
# neither steals the other's CPU. Rounds alternate the two tools so drift in
# the machine's load hits both alike.
#
#   bench/load/compare.sh                 # 1 round, -c32, 10s each
#   ROUNDS=3 DURATION=10s CONC=32 bench/load/compare.sh
#   TARGET=http://127.0.0.1:8080/counter bench/load/compare.sh   # an already running target
#
# Needs: go, wrk, jq, taskset (util-linux), curl; a machine with 2+ CPUs.
set -euo pipefail
cd "$(dirname "$0")/../.."

ROUNDS=${ROUNDS:-1}
DURATION=${DURATION:-10s}
CONC=${CONC:-32}
LOAD_CPU=${LOAD_CPU:-0}
SERVER_CPU=${SERVER_CPU:-1}
PORT=${PORT:-18181}

for tool in wrk jq taskset curl go; do
  command -v "$tool" >/dev/null || { echo "compare.sh: $tool not found" >&2; exit 2; }
done

tmp=$(mktemp -d)
server_pid=
cleanup() {
  [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

CGO_ENABLED=0 go build -trimpath -o "$tmp/flotilla" ./cmd/flotilla

if [[ -z ${TARGET:-} ]]; then
  TARGET=http://127.0.0.1:$PORT/
  taskset -c "$SERVER_CPU" "$tmp/flotilla" counter --store memory --addr "127.0.0.1:$PORT" --log-level warn &
  server_pid=$!
  for _ in $(seq 50); do
    kill -0 "$server_pid" 2>/dev/null || { echo "compare.sh: the target did not start" >&2; exit 1; }
    curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null && break
    sleep 0.1
  done
fi

# wrk prints latencies as 812.00us, 2.79ms or 1.02s; print them in ms.
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; printf "%.3f", v}'; }

run_wrk() {
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONC" -d"$DURATION" --latency "$TARGET" >"$tmp/wrk.txt"
  local rate p50 p90 p99
  rate=$(awk '/^Requests\/sec:/ {print $2}' "$tmp/wrk.txt")
  p50=$(awk '$1 == "50%" {print $2}' "$tmp/wrk.txt" | to_ms)
  p90=$(awk '$1 == "90%" {print $2}' "$tmp/wrk.txt" | to_ms)
  p99=$(awk '$1 == "99%" {print $2}' "$tmp/wrk.txt" | to_ms)
  echo "$rate $p50 $p90 $p99"
}

run_flotilla() {
  taskset -c "$LOAD_CPU" "$tmp/flotilla" load "$TARGET" -c "$CONC" -d "$DURATION" --max-error-rate 1 --json 2>/dev/null >"$tmp/load.json"
  jq -r '"\(.rate) \(.latency.p50_ms) \(.latency.p90_ms) \(.latency.p99_ms)"' "$tmp/load.json"
}

# A short warm-up so neither tool meets a cold server.
taskset -c "$LOAD_CPU" wrk -t1 -c"$CONC" -d2s "$TARGET" >/dev/null

printf '%-6s %-9s %12s %9s %9s %9s\n' round tool rate/s p50_ms p90_ms p99_ms
for r in $(seq "$ROUNDS"); do
  read -r wr w50 w90 w99 < <(run_wrk)
  printf '%-6s %-9s %12.1f %9.3f %9.3f %9.3f\n' "$r" wrk "$wr" "$w50" "$w90" "$w99"
  read -r fr f50 f90 f99 < <(run_flotilla)
  printf '%-6s %-9s %12.1f %9.3f %9.3f %9.3f\n' "$r" flotilla "$fr" "$f50" "$f90" "$f99"
  awk -v r="$r" -v a="$fr" -v b="$wr" -v c="$f50" -v d="$w50" -v e="$f90" -v f="$w90" -v g="$f99" -v h="$w99" \
    'BEGIN {printf "%-6s %-9s %12.2f %9.2f %9.2f %9.2f\n", r, "ratio", a/b, c/d, e/f, g/h}'
done
echo "ratio = flotilla load / wrk (rate: higher is better; percentiles: 1.00 is equal)"

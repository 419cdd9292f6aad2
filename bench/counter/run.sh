#!/usr/bin/env bash
# Side-by-side load run on loopback: `flotilla counter` against a real
# redis-server, next to a minimal Go hello server, in the same run.
# wrk runs on core 0; servers (and Redis) on core 1.
# Usage: bench/counter/run.sh [duration=10s] [connections=32] [rounds=2]
set -euo pipefail
cd "$(dirname "$0")/../.."
dur=${1:-10s} conns=${2:-32} rounds=${3:-2}
hack/ensure-packages.sh redis-server:redis-server wrk:wrk
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

go build -o "$tmp/flotilla" ./cmd/flotilla
go build -o "$tmp/hello" ./bench/counter/hello
rport=18379 cport=18280 hport=18200
taskset -c 1 redis-server --port $rport --bind 127.0.0.1 --save "" --appendonly no --loglevel warning >"$tmp/redis.log" 2>&1 & rpid=$!; pids+=($rpid)
taskset -c 1 "$tmp/flotilla" counter --addr 127.0.0.1:$cport --redis-addr 127.0.0.1:$rport --log-level warn & cpid=$!; pids+=($cpid)
taskset -c 1 "$tmp/hello" --addr 127.0.0.1:$hport & hpid=$!; pids+=($hpid)
for port in $cport $hport; do
  for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
done
rss() { awk '/^VmRSS/{printf "%.1f", $2/1024}' "/proc/$1/status"; }
hwm() { awk '/^VmHWM/{printf "%.1f", $2/1024}' "/proc/$1/status"; }
idle_c=$(rss $cpid) idle_h=$(rss $hpid)
redis-cli -p $rport set count 0 >/dev/null 2>&1 || printf 'SET count 0\r\n' | timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$rport; cat >&3; head -c 5 <&3" >/dev/null

# CPU time (user+system, in clock ticks) a process has used so far.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
run() { taskset -c 0 wrk -t1 -c"$conns" -d"$dur" --latency "$1" | tee -a "$tmp/wrk.log"; }
rate() { awk '/^Requests\/sec/{print $2}'; }
p() { awk -v q="$1" '$1==q{print $2}'; }
reqs() { awk '/requests in/{print $1}'; }
total=0
# µs of CPU per request: stays meaningful when other work shares the machine.
us() { echo "$1 $2 $hz" | awk '{printf "%.0f", $1 * 1e6 / $3 / $2}'; }
printf '%-6s %-8s %10s %9s %9s %12s %12s\n' round target "req/s" p50 p99 "server µs/r" "redis µs/r"
for r in $(seq "$rounds"); do
  t0=$(ticks $hpid)
  h=$(run "http://127.0.0.1:$hport/")
  t1=$(ticks $hpid) c0=$(ticks $cpid) r0=$(ticks $rpid)
  c=$(run "http://127.0.0.1:$cport/")
  c1=$(ticks $cpid) r1=$(ticks $rpid)
  total=$((total + $(echo "$c" | reqs)))
  printf '%-6s %-8s %10s %9s %9s %12s %12s\n' "$r" hello "$(echo "$h" | rate)" "$(echo "$h" | p 50%)" "$(echo "$h" | p 99%)" "$(us $((t1 - t0)) "$(echo "$h" | reqs)")" -
  printf '%-6s %-8s %10s %9s %9s %12s %12s\n' "$r" counter "$(echo "$c" | rate)" "$(echo "$c" | p 50%)" "$(echo "$c" | p 99%)" "$(us $((c1 - c0)) "$(echo "$c" | reqs)")" "$(us $((r1 - r0)) "$(echo "$c" | reqs)")"
  hs+=("$(echo "$h" | rate)") cs+=("$(echo "$c" | rate)")
done
python3 - "${hs[*]}" "${cs[*]}" <<'PY'
import sys
h=[float(x) for x in sys.argv[1].split()]; c=[float(x) for x in sys.argv[2].split()]
print(f"counter / hello req/s: " + ", ".join(f"{b/a:.2f}" for a,b in zip(h,c)) + f"  (mean {sum(c)/sum(h):.2f})")
PY
got=$(curl -s -H 'Accept: application/json' "http://127.0.0.1:$cport/" | sed 's/.*"count":\([0-9]*\).*/\1/')
echo "count check: wrk completed $total counter requests (non-2xx included, see log); Redis count now $got (one more for this check)"
grep -h "Non-2xx" "$tmp/wrk.log" || echo "no non-2xx responses"
echo "RSS MiB: counter idle $idle_c, peak $(hwm $cpid); hello idle $idle_h, peak $(hwm $hpid)"

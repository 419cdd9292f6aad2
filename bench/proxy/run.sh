#!/usr/bin/env bash
# Side-by-side proxy benchmark on loopback: the same backend and the same
# load tool, direct and through flotilla gateway, nginx, HAProxy, Caddy and
# Traefik. Prints requests/s, p50, p99, ratios and proxy CPU per request.
#
#   bench/proxy/run.sh            (make bench-proxy)
#
# Pinning (2-core machine): wrk on core LOAD_CPU (0), proxy and backend
# together on core PROXY_CPU (1), so the proxies compete for the same single
# core as the backend and none can spread out. Go programs see one CPU
# (GOMAXPROCS follows the affinity mask); nginx runs 1 worker, HAProxy 1
# thread. All upstream connections are keep-alive.
#
# Environment: DURATION (10s), CONNECTIONS (32), WARMUP (2s), LOAD_CPU,
# PROXY_CPU, ONLY (space-separated subset of: direct flotilla flotilla-log
# flotilla-base nginx haproxy caddy traefik), CADDY_VERSION, TRAEFIK_VERSION,
# GO_PROXIES=0 to skip building Caddy and Traefik, ROUNDS (1): run the whole
# set this many times, interleaved, so that a drift of the machine's speed
# hits every target alike. BASE=<git revision> adds the row flotilla-base:
# the gateway built from that revision, for before/after in one run.
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
WARMUP=${WARMUP:-2s}
LOAD_CPU=${LOAD_CPU:-0}
PROXY_CPU=${PROXY_CPU:-1}
ONLY=${ONLY:-direct flotilla flotilla-log nginx haproxy caddy traefik}
ROUNDS=${ROUNDS:-1}
BASE=${BASE:-}
[ -n "$BASE" ] && [[ " $ONLY " != *" flotilla-base "* ]] && ONLY="$ONLY flotilla-base"
CADDY_VERSION=${CADDY_VERSION:-v2.11.9}
TRAEFIK_VERSION=${TRAEFIK_VERSION:-v3.7.13}
GO_PROXIES=${GO_PROXIES:-1}
TOOLS=${XDG_CACHE_HOME:-$HOME/.cache}/flotilla-bench/bin

hack/ensure-packages.sh wrk:wrk nginx:nginx-light haproxy:haproxy taskset:util-linux

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "building flotilla and the backend" >&2
go build -o "$work/flotilla" ./cmd/flotilla
go build -o "$work/backend" ./bench/proxy/backend
if [ -n "$BASE" ]; then
  echo "building flotilla at $BASE" >&2
  git worktree add -q --detach "$work/base-src" "$BASE"
  (cd "$work/base-src" && go build -o "$work/flotilla-base" ./cmd/flotilla)
  git worktree remove --force "$work/base-src"
fi

want() { [[ " $ONLY " == *" $1 "* ]]; }

# Caddy and Traefik are built from their module source, downloaded from
# the Go module proxy, into a cache folder once per version. (Traefik's
# go.mod has replace directives, so `go install mod@version` refuses it;
# building inside the module applies them.)
gotool() { # name module version package
  local bin="$TOOLS/$1-$3"
  if [ ! -x "$bin" ] && [ "$GO_PROXIES" = 1 ]; then
    echo "building $1 $3 from the Go module proxy (once; several minutes)" >&2
    mkdir -p "$TOOLS"
    local dir src="$work/$1-src"
    if dir=$(cd "$work" && go mod download -json "$2@$3" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p') &&
      cp -r "$dir" "$src" && chmod -R u+w "$src" &&
      (cd "$src" && go build -o "$bin.tmp" "./$4") >"$work/$1-build.log" 2>&1; then
      mv "$bin.tmp" "$bin"
    else
      echo "  $1 did not build; skipping it:" >&2
      tail -3 "$work/$1-build.log" >&2 || true
    fi
  fi
  [ -x "$bin" ] && echo "$bin"
}
caddy=""; traefik=""
want caddy && caddy=$(gotool caddy github.com/caddyserver/caddy/v2 "$CADDY_VERSION" cmd/caddy || true)
want traefik && traefik=$(gotool traefik github.com/traefik/traefik/v3 "$TRAEFIK_VERSION" cmd/traefik || true)

BACKEND=127.0.0.1:18080
# Started with taskset directly (not through a function) so $! is the
# program's own PID.
taskset -c "$PROXY_CPU" "$work/backend" -addr "$BACKEND" >/dev/null 2>&1 &
pids+=($!)

cat >"$work/gateway.yaml" <<YAML
apiVersion: flotilla.dev/v1alpha1
kind: Gateway
backends: [{name: backend, addresses: ["$BACKEND"]}]
routes: [{name: all, backends: [{name: backend}]}]
YAML
cat >"$work/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log error;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx-body;
  proxy_temp_path $work/nginx-proxy;
  upstream backend { server $BACKEND; keepalive 128; }
  server {
    listen 127.0.0.1:18082;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
CONF
cat >"$work/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
  http-reuse always
frontend web
  bind 127.0.0.1:18083
  default_backend app
backend app
  server s1 $BACKEND
CONF
cat >"$work/Caddyfile" <<CONF
{
  admin off
  auto_https off
}
http://127.0.0.1:18084 {
  reverse_proxy $BACKEND
}
CONF
cat >"$work/traefik-dynamic.yaml" <<CONF
http:
  routers:
    all: {rule: "PathPrefix(\`/\`)", service: backend, entryPoints: [web]}
  services:
    backend:
      loadBalancer:
        servers: [{url: "http://$BACKEND"}]
CONF

# cpu_ticks PID: user+system clock ticks the process and its children
# (nginx's worker) have used.
cpu_ticks() {
  local t=0 p
  for p in "$1" $(ps -o pid= --ppid "$1"); do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$t"
}

wait_up() { # url
  for _ in $(seq 100); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "  $1 never answered" >&2; return 1
}

results=()
# measure NAME PORT PID: PID is the proxy's (empty for direct).
measure() {
  local name=$1 url="http://127.0.0.1:$2/" pid=$3
  wait_up "$url" || return 0
  taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"$WARMUP" "$url" >/dev/null
  local t0=0 t1=0
  [ -n "$pid" ] && t0=$(cpu_ticks "$pid")
  local out
  out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "$url")
  [ -n "$pid" ] && t1=$(cpu_ticks "$pid")
  local rps p50 p99 reqs errs
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  errs=$(awk '/Non-2xx|Socket errors/ {printf "%s ", $0}' <<<"$out")
  local cpu="-"
  if [ -n "$pid" ] && [ "$reqs" -gt 0 ]; then
    cpu=$(awk -v d=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v n="$reqs" 'BEGIN {printf "%.0f", d / hz * 1e6 / n}')
  fi
  results+=("${round:-1}|$name|$rps|$p50|$p99|$cpu|$errs")
  echo "  $name: $rps req/s, p50 $p50, p99 $p99, proxy CPU ${cpu} µs/req ${errs}" >&2
}

run() { # name port cmd...
  local name=$1 port=$2; shift 2
  echo "running $name" >&2
  taskset -c "$PROXY_CPU" "$@" >"$work/$name.out" 2>&1 &
  local pid=$!
  pids+=("$pid")
  measure "$name" "$port" "$pid"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

gw_flags=(gateway --config "$work/gateway.yaml" --addr 127.0.0.1:18081 --admin-addr "" --access-log=false --watch=false --log-level warn)
for round in $(seq "$ROUNDS"); do
  [ "$ROUNDS" -gt 1 ] && echo "round $round of $ROUNDS" >&2
  want direct && { echo "running direct" >&2; measure direct 18080 ""; }
  want flotilla && run flotilla 18081 "$work/flotilla" "${gw_flags[@]}"
  want flotilla-base && [ -n "$BASE" ] && run flotilla-base 18081 "$work/flotilla-base" "${gw_flags[@]}"
  want flotilla-log && run flotilla-log 18081 "$work/flotilla" gateway --config "$work/gateway.yaml" --addr 127.0.0.1:18081 --admin-addr 127.0.0.1:0 --access-log=true --watch=false --log-level warn
  want nginx && run nginx 18082 nginx -c "$work/nginx.conf" -p "$work"
  want haproxy && run haproxy 18083 haproxy -db -f "$work/haproxy.cfg"
  [ -n "$caddy" ] && run caddy 18084 "$caddy" run --config "$work/Caddyfile" --adapter caddyfile
  [ -n "$traefik" ] && run traefik 18085 "$traefik" --entryPoints.web.address=127.0.0.1:18085 --providers.file.filename="$work/traefik-dynamic.yaml" --log.level=ERROR
done

# Table, with ratios against flotilla's bare figure of the same round; with
# several rounds, then the median of each target over the rounds.
echo
echo "wrk -t1 -c$CONNECTIONS -d$DURATION on loopback; load on CPU $LOAD_CPU, proxy+backend on CPU $PROXY_CPU; $(nproc) CPUs; $ROUNDS round(s)"
printf '%-5s %-14s %10s %9s %9s %12s %14s\n' round target "req/s" p50 p99 "vs flotilla" "proxy µs/req"
for r in "${results[@]}"; do
  IFS='|' read -r rnd name rps p50 p99 cpu errs <<<"$r"
  base=$(printf '%s\n' "${results[@]}" | awk -F'|' -v r="$rnd" '$1==r && $2=="flotilla" {print $3}')
  ratio="-"
  [ -n "$base" ] && ratio=$(awk -v a="$rps" -v b="$base" 'BEGIN {printf "%.2fx", a / b}')
  printf '%-5s %-14s %10s %9s %9s %12s %14s %s\n' "$rnd" "$name" "$rps" "$p50" "$p99" "$ratio" "$cpu" "$errs"
done
if [ "$ROUNDS" -gt 1 ]; then
  echo
  echo "median over $ROUNDS rounds"
  printf '%-14s %10s %14s\n' target "req/s" "proxy µs/req"
  median() { sort -n | awk '{v[NR]=$1} END {if (NR == 0) print "-"; else if (NR % 2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
  for name in $(printf '%s\n' "${results[@]}" | awk -F'|' '!seen[$2]++ {print $2}'); do
    rps=$(printf '%s\n' "${results[@]}" | awk -F'|' -v n="$name" '$2==n {print $3}' | median)
    cpu=$(printf '%s\n' "${results[@]}" | awk -F'|' -v n="$name" '$2==n && $6!="-" {print $6}' | median)
    printf '%-14s %10s %14s\n' "$name" "$rps" "$cpu"
  done
fi

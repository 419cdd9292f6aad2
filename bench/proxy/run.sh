#!/usr/bin/env bash
# Side-by-side proxy benchmark on loopback: the same backend and the same
# load tool, direct and through flotilla gateway, nginx, HAProxy, Caddy and
# Traefik. Prints requests/s, p50, p99, ratios and proxy CPU per request.
# The *-tls targets (flotilla, nginx, Caddy) add two rows each: HTTP/1.1
# over TLS (wrk, CONNECTIONS connections) and HTTP/2 over TLS (h2load,
# H2_CONNECTIONS connections × H2_STREAMS concurrent streams), with a
# throwaway ECDSA P-256 CA and localhost certificate made for the run.
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
# flotilla-base nginx haproxy caddy traefik flotilla-tls nginx-tls
# caddy-tls flotilla-apikey flotilla-jwt flotilla-rl-local
# flotilla-rl-redis flotilla-nolive flotilla-viewers; the policy rows are
# not in the default set:
#   ONLY="flotilla flotilla-apikey flotilla-jwt flotilla-rl-local flotilla-rl-redis" ROUNDS=5
# compares them with the bare gateway; the live view's cost:
#   ONLY="flotilla flotilla-nolive flotilla-viewers" ROUNDS=5
# flotilla-nolive runs with --live-stats=false, flotilla-viewers with
# VIEWERS (50) browsers' worth of event streams open on /ui/events),
# H2_CONNECTIONS (8), H2_STREAMS (4), CADDY_VERSION, TRAEFIK_VERSION,
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
H2_CONNECTIONS=${H2_CONNECTIONS:-8}
H2_STREAMS=${H2_STREAMS:-4}
ONLY=${ONLY:-direct flotilla flotilla-log nginx haproxy caddy traefik flotilla-tls nginx-tls caddy-tls}
ROUNDS=${ROUNDS:-1}
BASE=${BASE:-}
[ -n "$BASE" ] && [[ " $ONLY " != *" flotilla-base "* ]] && ONLY="$ONLY flotilla-base"
CADDY_VERSION=${CADDY_VERSION:-v2.11.9}
TRAEFIK_VERSION=${TRAEFIK_VERSION:-v3.7.13}
GO_PROXIES=${GO_PROXIES:-1}
VIEWERS=${VIEWERS:-50}
TOOLS=${XDG_CACHE_HOME:-$HOME/.cache}/flotilla-bench/bin

hack/ensure-packages.sh wrk:wrk nginx:nginx-light haproxy:haproxy taskset:util-linux h2load:nghttp2-client openssl:openssl redis-server:redis-server

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
{ want caddy || want caddy-tls; } && caddy=$(gotool caddy github.com/caddyserver/caddy/v2 "$CADDY_VERSION" cmd/caddy || true)
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
# Issue 13's policy rows: the bare route with one policy on (an API key,
# a JWT, a local rate limit, a Redis rate limit). The limits are far above
# what one machine sends, so every request is checked and admitted.
go run ./bench/proxy/policies -dir "$work"
policy_yaml() { # name, route YAML lines
  cat >"$work/gateway-$1.yaml" <<YAML
apiVersion: flotilla.dev/v1alpha1
kind: Gateway
redis: {address: "127.0.0.1:18379"}
backends: [{name: backend, addresses: ["$BACKEND"]}]
routes:
  - name: all
    backends: [{name: backend}]
$2
YAML
}
policy_yaml apikey "    auth: {apiKey: {keysFile: $work/keys.txt}}"
policy_yaml jwt "    auth: {jwt: {jwksFile: $work/jwks.json, issuer: \"https://idp.bench\", audiences: [bench]}}"
policy_yaml rl-local "    rateLimits: [{requests: 1000000, per: 1s}]"
policy_yaml rl-redis "    rateLimits: [{requests: 1000000, per: 1s, scope: global}]"
if want flotilla-rl-redis; then
  # Redis on the proxy's core: the row's system is gateway + Redis.
  taskset -c "$PROXY_CPU" redis-server --port 18379 --bind 127.0.0.1 --save '' --appendonly no >"$work/redis.out" 2>&1 &
  pids+=($!)
fi

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

# TLS: a throwaway CA and a server certificate for localhost and 127.0.0.1,
# both ECDSA P-256, made for this run only. All three servers speak TLS 1.3
# with TLS_AES_128_GCM_SHA256 and X25519 here (nginx 1.22 defaults to TLS
# 1.2 and OpenSSL clients ask for AES-256 first, so its config names the
# protocols and prefers AES-128 like Go's servers do). Session resumption is
# left at each server's default (tickets on); it is never exercised: wrk and
# h2load keep their connections for the whole run (nginx's
# keepalive_requests is raised so it does not close them every 1000
# requests), so every run has exactly CONNECTIONS or H2_CONNECTIONS full
# handshakes.
TLS_TARGETS=0
for t in flotilla-tls nginx-tls caddy-tls; do want "$t" && TLS_TARGETS=1; done
if [ "$TLS_TARGETS" = 1 ]; then
  (
    cd "$work"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
      -keyout ca.key -out ca.crt -subj /CN=flotilla-bench-ca \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
      -keyout tls.key -out tls.csr -subj /CN=localhost
    printf '%s\n' subjectAltName=DNS:localhost,IP:127.0.0.1 extendedKeyUsage=serverAuth \
      basicConstraints=CA:FALSE keyUsage=critical,digitalSignature >tls.ext
    openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
      -extfile tls.ext -out tls.crt
  ) >"$work/openssl.log" 2>&1 || { cat "$work/openssl.log" >&2; exit 1; }
fi
cat >"$work/gateway-tls.yaml" <<YAML
apiVersion: flotilla.dev/v1alpha1
kind: Gateway
tls:
  certificates: [{certFile: $work/tls.crt, keyFile: $work/tls.key}]
backends: [{name: backend, addresses: ["$BACKEND"]}]
routes: [{name: all, backends: [{name: backend}]}]
YAML
cat >"$work/nginx-tls.conf" <<CONF
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
    listen 127.0.0.1:18442 ssl http2;
    ssl_certificate $work/tls.crt;
    ssl_certificate_key $work/tls.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_prefer_server_ciphers on;
    ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256;
    keepalive_requests 1000000;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
CONF
cat >"$work/Caddyfile-tls" <<CONF
{
  admin off
  auto_https off
  servers {
    protocols h1 h2
  }
}
https://127.0.0.1:18444 {
  tls $work/tls.crt $work/tls.key
  reverse_proxy $BACKEND
}
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

wait_up() { # url [pid]: gives up early if the proxy PID has exited
  local ca=()
  [[ $1 == https:* ]] && ca=(--cacert "$work/ca.crt")
  for _ in $(seq 100); do
    local hdr=()
    [ -n "${LOAD_HEADER:-}" ] && hdr=(-H "$LOAD_HEADER")
    curl -fsS "${ca[@]}" "${hdr[@]}" -o /dev/null "$1" 2>/dev/null && return 0
    [ -n "${2:-}" ] && ! kill -0 "$2" 2>/dev/null && break
    sleep 0.1
  done
  echo "  $1 never answered" >&2; return 1
}

# load PROTO URL DURATION: runs the load tool for PROTO (h1 and tls-h1: wrk,
# h2: h2load) and prints "req/s p50 p99 requests errors".
load() {
  local proto=$1 url=$2 d=$3 out
  # LOAD_HEADER: one request header for the row (a credential).
  local hdr=()
  [ -n "${LOAD_HEADER:-}" ] && hdr=(-H "$LOAD_HEADER")
  if [ "$proto" = h2 ]; then
    rm -f "$work/h2load.log"
    out=$(taskset -c "$LOAD_CPU" h2load -t1 -c"$H2_CONNECTIONS" -m"$H2_STREAMS" -D "$d" \
      --log-file="$work/h2load.log" "$url" 2>&1) || true
    # The log has one line per request: start, status, duration in µs.
    local pct
    pct=$(sort -n -k3,3 "$work/h2load.log" 2>/dev/null | awk '
      function f(us) { return us < 1000 ? sprintf("%.2fus", us) : sprintf("%.2fms", us / 1000) }
      {v[NR] = $3} END {if (NR) print f(v[int(NR * 0.5) + 1]), f(v[int(NR * 0.99) + 1]); else print "- -"}')
    awk -v pct="$pct" '
      /^finished in/ {rps = $4}
      /^requests:/ {n = $8; if ($10 + $12 + $14) err = err sprintf("failed %d errored %d timeout %d ", $10, $12, $14)}
      /^status codes:/ {if ($5 + $7 + $9) err = err sprintf("non-2xx %d ", $5 + $7 + $9)}
      END {if (n == "") n = 0; printf "%s %s %s %s", rps == "" ? 0 : rps, pct, n, err}' <<<"$out"
  else
    out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"$d" --latency "${hdr[@]}" "$url")
    awk '
      /^Requests\/sec/ {rps = $2}
      $1 == "50%" {p50 = $2}
      $1 == "99%" {p99 = $2}
      /requests in/ {n = $1}
      /Non-2xx|Socket errors/ {err = err $0 " "}
      END {printf "%s %s %s %s %s", rps, p50, p99, n, err}' <<<"$out"
  fi
}

results=()
# measure NAME PROTO PORT PID: PID is the proxy's (empty for direct).
measure() {
  local name=$1 proto=$2 port=$3 pid=$4 url
  case $proto in
  h1) url="http://127.0.0.1:$port/" ;;
  *) url="https://127.0.0.1:$port/" ;;
  esac
  wait_up "$url" "$pid" || { tail -3 "$work/$name.out" >&2 2>/dev/null; return 0; }
  [ -n "${BEFORE_LOAD:-}" ] && "$BEFORE_LOAD"
  load "$proto" "$url" "$WARMUP" >/dev/null
  local t0=0 t1=0 out
  [ -n "$pid" ] && t0=$(cpu_ticks "$pid")
  out=$(load "$proto" "$url" "$DURATION")
  [ -n "$pid" ] && t1=$(cpu_ticks "$pid")
  local rps p50 p99 reqs errs
  read -r rps p50 p99 reqs errs <<<"$out"
  local cpu="-"
  if [ -n "$pid" ] && [ "${reqs:-0}" -gt 0 ]; then
    cpu=$(awk -v d=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v n="$reqs" 'BEGIN {printf "%.0f", d / hz * 1e6 / n}')
  fi
  results+=("${round:-1}|$name|$proto|$rps|$p50|$p99|$cpu|$errs")
  echo "  $name $proto: $rps req/s, p50 $p50, p99 $p99, proxy CPU ${cpu} µs/req ${errs}" >&2
}

# run NAME PORT cmd...: the clear-text HTTP/1.1 row of a proxy.
# run_tls NAME PORT cmd...: its HTTP/1.1-over-TLS and HTTP/2-over-TLS rows,
# both measured on one process.
run() { run_protos h1 "$@"; }
run_tls() { run_protos "tls-h1 h2" "$@"; }
run_protos() { # protos name port cmd...
  local protos=$1 name=$2 port=$3 proto; shift 3
  echo "running $name ($protos)" >&2
  taskset -c "$PROXY_CPU" "$@" >"$work/$name.out" 2>&1 &
  local pid=$!
  pids+=("$pid")
  for proto in $protos; do measure "$name" "$proto" "$port" "$pid"; done
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# open_viewers opens VIEWERS event streams on the live view of the gateway
# whose admin API is on 127.0.0.1:18091 (loopback: a session without a
# token), on the load generator's core; they end with the gateway.
open_viewers() {
  local admin=http://127.0.0.1:18091 i
  for i in $(seq 50); do curl -sf -o /dev/null "$admin/readyz" && break; sleep 0.1; done
  curl -sf -c "$work/viewers.jar" -o /dev/null "$admin/ui/session"
  for i in $(seq "$VIEWERS"); do
    taskset -c "$LOAD_CPU" curl -sN -b "$work/viewers.jar" -o /dev/null "$admin/ui/events" &
    pids+=("$!")
  done
  sleep 2 # every stream has had its first snapshot
}

gw_flags=(gateway --config "$work/gateway.yaml" --addr 127.0.0.1:18081 --admin-addr "" --access-log=false --watch=false --log-level warn)
gw_tls_flags=(gateway --config "$work/gateway-tls.yaml" --addr 127.0.0.1:18081 --tls-addr 127.0.0.1:18441 --admin-addr "${TLS_ADMIN_ADDR:-}" --access-log=false --watch=false --log-level warn)
for round in $(seq "$ROUNDS"); do
  # The load average tells how much else the machine was doing.
  [ "$ROUNDS" -gt 1 ] && echo "round $round of $ROUNDS (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  want direct && { echo "running direct" >&2; measure direct h1 18080 ""; }
  want flotilla && run flotilla 18081 "$work/flotilla" "${gw_flags[@]}"
  want flotilla-base && [ -n "$BASE" ] && run flotilla-base 18081 "$work/flotilla-base" "${gw_flags[@]}"
  for p in apikey jwt rl-local rl-redis; do
    want "flotilla-$p" || continue
    case $p in
    apikey) LOAD_HEADER="X-API-Key: $(cat "$work/apikey")" ;;
    jwt) LOAD_HEADER="Authorization: Bearer $(cat "$work/token")" ;;
    *) LOAD_HEADER="" ;;
    esac
    LOAD_HEADER=$LOAD_HEADER run "flotilla-$p" 18081 "$work/flotilla" gateway --config "$work/gateway-$p.yaml" --addr 127.0.0.1:18081 --admin-addr "" --access-log=false --watch=false --log-level warn
  done
  want flotilla-nolive && run flotilla-nolive 18081 "$work/flotilla" "${gw_flags[@]}" --live-stats=false
  want flotilla-viewers && BEFORE_LOAD=open_viewers run flotilla-viewers 18081 "$work/flotilla" gateway --config "$work/gateway.yaml" --addr 127.0.0.1:18081 --admin-addr 127.0.0.1:18091 --access-log=false --watch=false --log-level warn
  want flotilla-log && run flotilla-log 18081 "$work/flotilla" gateway --config "$work/gateway.yaml" --addr 127.0.0.1:18081 --admin-addr 127.0.0.1:0 --access-log=true --watch=false --log-level warn
  want nginx && run nginx 18082 nginx -c "$work/nginx.conf" -p "$work"
  want haproxy && run haproxy 18083 haproxy -db -f "$work/haproxy.cfg"
  want caddy && [ -n "$caddy" ] && run caddy 18084 "$caddy" run --config "$work/Caddyfile" --adapter caddyfile
  want flotilla-tls && run_tls flotilla 18441 "$work/flotilla" "${gw_tls_flags[@]}"
  want nginx-tls && run_tls nginx 18442 nginx -c "$work/nginx-tls.conf" -p "$work"
  want caddy-tls && [ -n "$caddy" ] && run_tls caddy 18444 "$caddy" run --config "$work/Caddyfile-tls" --adapter caddyfile
  [ -n "$traefik" ] && run traefik 18085 "$traefik" --entryPoints.web.address=127.0.0.1:18085 --providers.file.filename="$work/traefik-dynamic.yaml" --log.level=ERROR
done

# Table, with ratios against flotilla's bare figure of the same round and
# protocol; with several rounds, then the median of each target over the
# rounds, and the issue's targets on the TLS rows.
echo
echo "h1, tls-h1: wrk -t1 -c$CONNECTIONS -d$DURATION; h2: h2load -t1 -c$H2_CONNECTIONS -m$H2_STREAMS -D $DURATION (TLS 1.3, ALPN h2)"
echo "loopback; load on CPU $LOAD_CPU, proxy+backend on CPU $PROXY_CPU; $(nproc) CPUs; $ROUNDS round(s)"
printf '%-5s %-14s %-6s %10s %9s %9s %12s %14s\n' round target proto "req/s" p50 p99 "vs flotilla" "proxy µs/req"
for r in "${results[@]}"; do
  IFS='|' read -r rnd name proto rps p50 p99 cpu errs <<<"$r"
  base=$(printf '%s\n' "${results[@]}" | awk -F'|' -v r="$rnd" -v p="$proto" '$1==r && $2=="flotilla" && $3==p {print $4}')
  ratio="-"
  [ -n "$base" ] && ratio=$(awk -v a="$rps" -v b="$base" 'BEGIN {printf "%.2fx", a / b}')
  printf '%-5s %-14s %-6s %10s %9s %9s %12s %14s %s\n' "$rnd" "$name" "$proto" "$rps" "$p50" "$p99" "$ratio" "$cpu" "$errs"
done
median() { sort -n | awk '{v[NR]=$1} END {if (NR == 0) print "-"; else if (NR % 2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
# stat NAME PROTO FIELD: the median over the rounds of a field (4 req/s, 7 µs/req).
stat() { printf '%s\n' "${results[@]}" | awk -F'|' -v n="$1" -v p="$2" -v f="$3" '$2==n && $3==p && $f!="-" && $f!="" {print $f}' | median; }
if [ "$ROUNDS" -gt 1 ]; then
  echo
  echo "median over $ROUNDS rounds"
  printf '%-14s %-6s %10s %14s\n' target proto "req/s" "proxy µs/req"
  printf '%s\n' "${results[@]}" | awk -F'|' '!seen[$2 "|" $3]++ {print $2, $3}' | while read -r name proto; do
    printf '%-14s %-6s %10s %14s\n' "$name" "$proto" "$(stat "$name" "$proto" 4)" "$(stat "$name" "$proto" 7)"
  done
fi
# Issue 12's targets on each TLS row: flotilla's CPU per request within 2x
# nginx's, and flotilla's throughput at least Caddy's (medians if ROUNDS>1).
if want flotilla-tls; then
  echo
  echo "targets (median of $ROUNDS round(s))"
  [ -z "$(stat flotilla tls-h1 4 | grep -v '^-$')" ] && echo "no flotilla TLS rows (does this gateway have --tls-addr?)"
  for proto in tls-h1 h2; do
    fc=$(stat flotilla "$proto" 7) nc=$(stat nginx "$proto" 7) fr=$(stat flotilla "$proto" 4) cr=$(stat caddy "$proto" 4)
    awk -v p="$proto" -v fc="$fc" -v nc="$nc" -v fr="$fr" -v cr="$cr" 'BEGIN {
      if (fc != "-" && nc != "-" && fc != "" && nc != "") { r = fc / nc; printf "%-6s flotilla CPU/req / nginx %.2fx (target <= 2): %s\n", p, r, (r <= 2 ? "met" : "MISSED") }
      if (fr != "-" && cr != "-" && fr != "" && cr != "") { r = fr / cr; printf "%-6s flotilla req/s / Caddy %.2fx (target >= 1): %s\n", p, r, (r >= 1 ? "met" : "MISSED") }
    }'
  done
fi
# Issue 13's targets on each policy row: the median over the rounds of its
# req/s as a share of the bare gateway's in the same round: local policies
# (API key, JWT, local rate limit) >= 0.9, the Redis rate limit >= 0.7.
policy_rows=""
for p in apikey jwt rl-local rl-redis; do want "flotilla-$p" && policy_rows=1; done
if [ -n "$policy_rows" ] && want flotilla; then
  echo
  echo "policy targets (median over $ROUNDS round(s) of req/s / bare flotilla's in the same round)"
  for p in apikey jwt rl-local rl-redis; do
    want "flotilla-$p" || continue
    r=$(printf '%s\n' "${results[@]}" | awk -F'|' -v n="flotilla-$p" '
      $2=="flotilla" && $3=="h1" {base[$1]=$4}
      $2==n && $3=="h1" {rps[$1]=$4}
      END {for (k in rps) if (base[k] > 0) print rps[k] / base[k]}' | median)
    target=0.9
    [ "$p" = rl-redis ] && target=0.7
    awk -v p="$p" -v r="$r" -v t="$target" 'BEGIN {if (r != "-") printf "%-9s %.2fx (target >= %.1f): %s\n", p, r, t, (r >= t ? "met" : "MISSED")}'
  done
fi

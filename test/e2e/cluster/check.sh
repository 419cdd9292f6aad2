#!/usr/bin/env bash
# Checks that a cluster started by up.sh works, end to end, with the hello workload in its own
# namespace (cluster-check, deleted at the end): API server, scheduling, readiness probes,
# ClusterIP from the host and from a pod, NodePort on the node IP and on 127.0.0.1, cluster DNS
# (full name and search path), a rolling update v1 → v2. Prints one line per check and a total.
LOG_PREFIX=check
source "$(dirname "$0")/lib.sh"
# No -e: a failed check is counted, not fatal. No pipefail: `grep -q` may close the pipe early.
set +e +o pipefail
pass=0 fail=0
ns=cluster-check
checked() { # checked NAME CMD...: run, count, report with its duration
  local name=$1 t
  t=$(date +%s%N)
  shift
  if "$@"; then
    pass=$((pass + 1))
    echo "PASS  $name ($(( ($(date +%s%N) - t) / 1000000 )) ms)"
  else
    fail=$((fail + 1))
    echo "FAIL  $name"
  fi
}
retry() { # retry N CMD...: up to N tries, 1 s apart
  local n=$1
  shift
  for _ in $(seq "$n"); do "$@" && return 0; sleep 1; done
  return 1
}
served() { curl -fsS -m 3 "$1" 2>/dev/null | grep -q "hello $2 from"; }
in_pod() { kc -n $ns exec client -- /hello "$@" 2>/dev/null; }
manifest() { sed "s|@HELLO_IMAGE@|$HELLO_IMAGE|g" "$CLUSTER_DIR/manifests/hello.yaml"; }
api_ready() { kc get --raw /readyz | grep -qx ok; }
dry_run() { manifest | kc apply --dry-run=server -f - >/dev/null; }
client_ready() { kc -n $ns wait pod/client --for=condition=Ready --timeout=90s >/dev/null; }
rolled_out() { kc -n $ns rollout status deploy/hello --timeout=180s >/dev/null; }
pod_gets() { in_pod get "$1" | grep -q "hello $2 from"; }
pod_resolves() { in_pod lookup "$1" | grep -qx "$2"; }
# Fails for the right reason: the lookup ran in the pod and the resolver said no.
no_upstream_dns() {
  local out
  out=$(kc -n $ns exec client -- /hello lookup example.com. 2>&1) && return 1
  [[ $out == *"lookup example.com"* ]]
}

checked "API server /readyz" api_ready
# A namespace left from an earlier run may still be terminating.
kc wait --for=delete namespace/$ns --timeout=120s >/dev/null 2>&1
# The namespace first: a server-side dry run does not create it for the objects in it.
kc create namespace $ns --dry-run=client -o yaml | kc apply -f - >/dev/null
checked "server-side dry run" dry_run
manifest | kc apply -f - >/dev/null
checked "rollout of hello v1 (2 pods, readiness probe)" rolled_out
checked "client pod Ready" client_ready
cip=$(kc -n $ns get svc hello -o jsonpath='{.spec.clusterIP}')
checked "ClusterIP $cip from the host" retry 20 served "http://$cip/" v1
np=$(kc -n $ns get svc hello-np -o jsonpath='{.spec.ports[0].nodePort}')
checked "NodePort $NODE_IP:$np" retry 20 served "http://$NODE_IP:$np/" v1
checked "NodePort 127.0.0.1:$np" retry 20 served "http://127.0.0.1:$np/" v1
checked "ClusterIP from a pod" retry 20 pod_gets "http://$cip/" v1
rip=$(kc -n $ns get svc redis -o jsonpath='{.spec.clusterIP}')
checked "DNS redis.$ns.svc.cluster.local → $rip" retry 30 pod_resolves "redis.$ns.svc.cluster.local" "$rip"
checked "DNS short name through the search path" retry 30 pod_gets http://redis:6379/ v1
checked "no upstream DNS: an outside name does not resolve" no_upstream_dns
kc -n $ns set image deploy/hello hello="$HELLO_IMAGE:v2" >/dev/null
checked "rolling update to v2" rolled_out
checked "NodePort serves v2" retry 20 served "http://127.0.0.1:$np/" v2
kc delete namespace $ns --timeout=90s >/dev/null
echo "cluster check: $pass passed, $fail failed"
((fail == 0))

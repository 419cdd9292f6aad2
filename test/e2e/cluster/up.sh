#!/usr/bin/env bash
# Starts the local single-node Kubernetes cluster from the binaries build.sh made and the images
# in dist/images (make images) and $CACHE/images. No kubeadm, no registry, no Docker.
#
# usage: up.sh [phase ...]   default: every phase, in this order:
#   prereqs net pki etcd apiserver control containerd images kubelet proxy dns crds prometheus
# Idempotent: a phase whose result is already there (a live PID, an existing PKI, a link, a rule)
# is skipped, so running it on a cluster that is up only re-checks it and re-imports images.
#
# Every process is started detached, its PID in $STATE/pids/NAME.pid, its output in
# $STATE/logs/NAME.log; down.sh stops exactly those PIDs and undoes everything else.
LOG_PREFIX=up
source "$(dirname "$0")/lib.sh"
need_root

# State whose processes are all gone (the machine's processes were ended, not cluster-down): its
# mounts, links and rules are stale. Clean it up first; a cluster that is partly up is repaired
# below instead (each phase restarts what is dead).
stale_state() {
  local f any=
  for f in "$PIDS"/*.pid; do
    [[ -f $f ]] || continue
    any=1
    kill -0 "$(cat "$f")" 2>/dev/null && return 1
  done
  [[ -n $any ]]
}
if stale_state; then
  log "state in $STATE but none of its processes runs: cleaning up with down.sh first"
  "$CLUSTER_DIR/down.sh"
fi
mkdir -p "$STATE" "$PKI" "$LOGS" "$PIDS" "$RUNDIR"

# start NAME CMD...: run detached in its own session; PID → $PIDS/NAME.pid, output → $LOGS/NAME.log.
start() {
  local name=$1
  shift
  if [[ -f $PIDS/$name.pid ]] && kill -0 "$(cat "$PIDS/$name.pid")" 2>/dev/null; then
    log "$name already running (pid $(cat "$PIDS/$name.pid"))"
    return
  fi
  # exec keeps the PID that was written: the recorded PID is the component itself.
  # shellcheck disable=SC2016 # expanded by the inner bash
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PIDS/$name.pid" "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  for _ in $(seq 50); do [[ -s $PIDS/$name.pid ]] && break; sleep 0.1; done
  log "started $name (pid $(cat "$PIDS/$name.pid"), log $LOGS/$name.log)"
}

# put FILE: write stdin to FILE only when it differs, so a second up.sh on a running cluster leaves
# the file alone (kube-proxy exits when its configuration file changes under it).
put() {
  local tmp=$1.new
  cat >"$tmp"
  if cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv "$tmp" "$1"; fi
}

# wait_for DESC TIMEOUT_SECONDS NAME CMD...: poll CMD until it succeeds; fail early, with the end of
# NAME's log, if NAME's process died.
wait_for() {
  local desc=$1 timeout=$2 name=$3
  shift 3
  local end=$(($(date +%s) + timeout))
  until "$@" >/dev/null 2>&1; do
    if [[ $name != - ]] && ! kill -0 "$(cat "$PIDS/$name.pid" 2>/dev/null)" 2>/dev/null; then
      tail -n 20 "$LOGS/$name.log" >&2
      die "$name exited while waiting for $desc (log: $LOGS/$name.log)"
    fi
    if (($(date +%s) > end)); then
      [[ $name != - ]] && tail -n 20 "$LOGS/$name.log" >&2
      die "timed out after ${timeout}s waiting for $desc"
    fi
    sleep 0.5
  done
  log "ready: $desc"
}

# ------------------------------------------------------------------ phases

phase_prereqs() {
  # command-or-file:debian-package
  local need=(containerd:containerd runc:runc ctr:containerd /usr/lib/cni/bridge:containernetworking-plugins
    iptables:iptables ip6tables:iptables conntrack:conntrack ip:iproute2 openssl:openssl curl:curl
    socat:socat)
  local missing=() pair what pkg
  for pair in "${need[@]}"; do
    what=${pair%%:*} pkg=${pair#*:}
    if [[ $what == /* ]]; then [[ -e $what ]] && continue; else command -v "$what" >/dev/null && continue; fi
    [[ " ${missing[*]} " == *" $pkg "* ]] || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    command -v apt-get >/dev/null || die "missing packages: ${missing[*]}; install them with your package manager"
    log "installing ${missing[*]} (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
      { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } ||
      die "apt-get install ${missing[*]} failed"
  fi
  grep -qw overlay /proc/filesystems || die "the kernel has no overlay file system (containerd's overlayfs snapshotter needs it)"
  [[ -d /sys/fs/cgroup ]] || die "no /sys/fs/cgroup: the kubelet needs cgroups"
  local kubectl b
  kubectl=$(kubectl_bin) || exit 1
  for b in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy etcd coredns prometheus; do
    [[ -x $BIN/$b ]] || die "$BIN/$b is missing: run test/e2e/cluster/build.sh (make cluster-up does)"
  done
  local img
  for img in "$REPO_ROOT"/dist/images/{flotilla-v1,redis,pause}.tar "$IMAGES"/{coredns,hello-v1,hello-v2}.tar; do
    [[ -f $img ]] || die "image $img is missing: run make images (and test/e2e/cluster/build.sh)"
  done
  # Another cluster on the same addresses would collide with this one.
  # (Output captured, not piped into grep -q: under pipefail, grep quitting early makes ip fail.)
  if [[ $(ip -o addr show 2>/dev/null | grep -v " $NODE_BRIDGE ") == *" ${NODE_IP}/"* ]]; then
    die "$NODE_IP is already on another link; is another cluster running?"
  fi
  log "prerequisites ok (containerd $(containerd --version | awk '{print $3}'), runc $(runc --version | awk 'NR==1{print $3}'), kubectl $kubectl)"
}

phase_net() {
  # Save the sysctls once, before anything changes them; down.sh restores them.
  [[ -f $STATE/sysctl.orig ]] || sysctl -e "${SYSCTLS[@]}" 2>/dev/null >"$STATE/sysctl.orig"
  sysctl -qw net.ipv4.ip_forward=1
  [[ -f $STATE/netns.baseline ]] || { ip netns list 2>/dev/null | awk '{print $1}' >"$STATE/netns.baseline"; }
  # The node IP on a bridge without ports: an address that exists only on this machine.
  ip link show "$NODE_BRIDGE" >/dev/null 2>&1 || ip link add "$NODE_BRIDGE" type bridge
  [[ $(ip addr show dev "$NODE_BRIDGE") == *" $NODE_IP/"* ]] || ip addr add "$NODE_IP/24" dev "$NODE_BRIDGE"
  ip link set "$NODE_BRIDGE" up
  # Service and pod ranges route to that bridge too: whatever kube-proxy did not DNAT and is not on
  # the pod bridge is swallowed here instead of leaving through the default route.
  ip route replace "$SVC_CIDR" dev "$NODE_BRIDGE"
  ip route replace "$POD_CIDR" dev "$NODE_BRIDGE"
  # The guard: pods talk to each other and to this host, nothing is forwarded anywhere else.
  # Rules are added only when missing: a second up.sh never opens a gap by flushing the chain.
  iptables -N "$GUARD_CHAIN" 2>/dev/null || true
  local rule
  for rule in "-i $POD_BRIDGE -o $POD_BRIDGE -j RETURN" "-i $POD_BRIDGE -j DROP" "-o $POD_BRIDGE -j DROP" \
    "-s $POD_CIDR -j DROP" "-d $POD_CIDR -j DROP"; do
    # shellcheck disable=SC2086 # a rule is several words
    iptables -C "$GUARD_CHAIN" $rule 2>/dev/null || iptables -A "$GUARD_CHAIN" $rule
  done
  iptables -C FORWARD -j "$GUARD_CHAIN" 2>/dev/null || iptables -I FORWARD 1 -j "$GUARD_CHAIN"
  local d
  for d in $LOCAL_VOLUME_DIRS; do
    [[ -d $d ]] && continue
    mkdir -p "$d"
    echo "$d" >>"$STATE/volumes.created"
  done
  # Given to pods with dnsPolicy Default (CoreDNS): no upstream server, so no query leaves the host.
  printf 'options ndots:1\n' | put "$STATE/resolv.conf"
  log "net: node IP $NODE_IP on $NODE_BRIDGE, routes for $SVC_CIDR and $POD_CIDR, $GUARD_CHAIN in FORWARD"
}

phase_pki() {
  if [[ -f $PKI/ca.crt && -f $STATE/admin.kubeconfig ]]; then
    log "pki exists"
    return
  fi
  (
    cd "$PKI"
    openssl ecparam -name prime256v1 -genkey -noout -out ca.key 2>/dev/null
    openssl req -x509 -new -key ca.key -subj "/CN=flotilla-cluster-ca" -days 30 -out ca.crt 2>/dev/null
    # cert NAME CN O [SANS]: a client certificate, or a serving one when SANS are given
    cert() {
      local n=$1 cn=$2 o=$3 san=${4:-} subj="/CN=$2"
      [[ -n $o ]] && subj="/O=$o/CN=$cn"
      openssl ecparam -name prime256v1 -genkey -noout -out "$n.key" 2>/dev/null
      openssl req -new -key "$n.key" -subj "$subj" -out "$n.csr" 2>/dev/null
      {
        echo "basicConstraints=CA:FALSE"
        echo "keyUsage=critical,digitalSignature,keyEncipherment"
        if [[ -n $san ]]; then
          echo "extendedKeyUsage=serverAuth,clientAuth"
          echo "subjectAltName=$san"
        else echo "extendedKeyUsage=clientAuth"; fi
      } >"$n.ext"
      openssl x509 -req -in "$n.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile "$n.ext" -out "$n.crt" 2>/dev/null
      rm -f "$n.csr" "$n.ext"
    }
    cert apiserver kube-apiserver "" "IP:$NODE_IP,IP:$API_SVC_IP,IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
    cert admin admin system:masters
    cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
    cert controller-manager system:kube-controller-manager ""
    cert scheduler system:kube-scheduler ""
    cert kubelet "system:node:$NODE_NAME" system:nodes
    cert kubelet-serving "$NODE_NAME" "" "IP:$NODE_IP,DNS:$NODE_NAME"
    cert kube-proxy system:kube-proxy ""
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    chmod 600 ./*.key
  )
  local n
  for n in admin controller-manager scheduler kubelet kube-proxy; do
    cat >"$STATE/$n.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: flotilla
  cluster: {server: "https://$NODE_IP:6443", certificate-authority: "$PKI/ca.crt"}
users:
- name: $n
  user: {client-certificate: "$PKI/$n.crt", client-key: "$PKI/$n.key"}
contexts:
- name: flotilla
  context: {cluster: flotilla, user: $n}
current-context: flotilla
EOF
  done
  log "pki: CA, 8 certificates, service-account key"
}

phase_etcd() {
  start etcd "$BIN/etcd" --unsafe-no-fsync --name flotilla --data-dir "$STATE/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster flotilla=http://127.0.0.1:2380 --quota-backend-bytes 2147483648 --log-level warn
  wait_for "etcd /health" 60 etcd curl -fsS http://127.0.0.1:2379/health
}

phase_apiserver() {
  # --kubelet-preferred-address-types: reach the kubelet by IP; by name would ask the host's resolver.
  start kube-apiserver "$BIN/kube-apiserver" \
    --etcd-servers=http://127.0.0.1:2379 \
    --bind-address="$NODE_IP" --advertise-address="$NODE_IP" --secure-port=6443 \
    --service-cluster-ip-range="$SVC_CIDR" --service-node-port-range=30000-32767 \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" \
    --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --kubelet-preferred-address-types=InternalIP,Hostname \
    --allow-privileged=true --profiling=false --v=1
  wait_for "kube-apiserver /readyz" 180 kube-apiserver kc get --raw /readyz
}

phase_control() {
  start kube-controller-manager "$BIN/kube-controller-manager" \
    --kubeconfig="$STATE/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$STATE/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$STATE/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false --use-service-account-credentials=true \
    --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
    --allocate-node-cidrs=true --cluster-cidr="$POD_CIDR" --node-cidr-mask-size=24 \
    --service-cluster-ip-range="$SVC_CIDR" --profiling=false --v=1 \
    --flex-volume-plugin-dir="$STATE/kubelet/volume-plugins"
  start kube-scheduler "$BIN/kube-scheduler" \
    --kubeconfig="$STATE/scheduler.kubeconfig" \
    --authentication-kubeconfig="$STATE/scheduler.kubeconfig" \
    --authorization-kubeconfig="$STATE/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --leader-elect=false --profiling=false --v=1
  wait_for "kube-controller-manager /healthz" 90 kube-controller-manager curl -fsSk https://127.0.0.1:10257/healthz
  wait_for "kube-scheduler /healthz" 90 kube-scheduler curl -fsSk https://127.0.0.1:10259/healthz
}

phase_containerd() {
  mkdir -p "$STATE/containerd" "$RUNDIR/containerd" "$STATE/cni/net.d" "$STATE/cni/ipam"
  # Config v2 (containerd 1.6/1.7, Debian bookworm's). Everything under $STATE and $RUNDIR,
  # runc's state included, so the host's own containerd (if any) is never touched.
  put "$STATE/containerd/config.toml" <<EOF
version = 2
root = "$STATE/containerd/root"
state = "$RUNDIR/containerd/state"
[grpc]
  address = "$CTR_SOCK"
[ttrpc]
  address = "$RUNDIR/containerd/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$STATE/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10"
  enable_selinux = false
  # Root here may lack CAP_SYS_RESOURCE: runc then cannot lower oom_score_adj (-998 for sandboxes)
  # and fails with "can't get final child's PID from pipe: EOF". Clamp as rootless mode does.
  restrict_oom_score_adj = true
  # Pods may bind ports < 1024 without root (CoreDNS on :53 as non-root), as containerd 2 does.
  enable_unprivileged_ports = true
  enable_unprivileged_icmp = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$RUNDIR/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni/net.d"
EOF
  put "$STATE/cni/net.d/10-flotilla.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "$CNI_NETWORK",
  "plugins": [
    {
      "type": "bridge", "bridge": "$POD_BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": {
        "type": "host-local", "dataDir": "$STATE/cni/ipam",
        "ranges": [[{"subnet": "$NODE_POD_CIDR", "gateway": "$POD_GATEWAY"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
  # Remember which shared directories existed, so down.sh removes only what this cluster created.
  [[ -f $STATE/dirs.baseline ]] || for d in $SHARED_DIRS; do
    [[ -e $d ]] && echo "$d"
  done >"$STATE/dirs.baseline"
  start containerd containerd --config "$STATE/containerd/config.toml"
  wait_for "containerd" 60 containerd ctr --address "$CTR_SOCK" version
}

phase_images() {
  local t img n=0
  t=$(date +%s)
  shopt -s nullglob
  for img in "$REPO_ROOT"/dist/images/*.tar "$IMAGES"/*.tar; do
    ctr_k8s images import --all-platforms "$img" >/dev/null || die "ctr images import $img failed"
    n=$((n + 1))
  done
  log "imported $n images in $(($(date +%s) - t))s: $(ctr_k8s images ls -q | grep -v '^sha256:' | tr '\n' ' ')"
}

phase_kubelet() {
  mkdir -p "$STATE/kubelet"
  put "$STATE/kubelet-config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
healthzBindAddress: 127.0.0.1
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$PKI/ca.crt"}
authorization: {mode: Webhook}
tlsCertFile: "$PKI/kubelet-serving.crt"
tlsPrivateKeyFile: "$PKI/kubelet-serving.key"
# No systemd here; cgroup v1 hosts need failCgroupV1: false (the default is true from 1.35 on).
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: "unix://$CTR_SOCK"
clusterDNS: ["$DNS_IP"]
clusterDomain: cluster.local
resolvConf: "$STATE/resolv.conf"
podCIDR: "$NODE_POD_CIDR"
hairpinMode: hairpin-veth
serializeImagePulls: false
rotateCertificates: false
serverTLSBootstrap: false
# Images are imported, never pulled: keep them all.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"}
maxPods: 60
# Keep the kubelet's files under $STATE, not in /var/log/pods and /usr/libexec/kubernetes.
podLogsDir: "$STATE/pod-logs"
volumePluginDir: "$STATE/kubelet/volume-plugins"
EOF
  start kubelet "$BIN/kubelet" --config="$STATE/kubelet-config.yaml" \
    --kubeconfig="$STATE/kubelet.kubeconfig" --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" \
    --root-dir="$STATE/kubelet" --v=1
  wait_for "node $NODE_NAME Ready" 180 kubelet node_ready
}

node_ready() {
  [[ $(kc get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}') == True ]]
}

phase_proxy() {
  put "$STATE/kube-proxy-config.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: "$STATE/kube-proxy.kubeconfig"}
mode: iptables
clusterCIDR: "$POD_CIDR"
hostnameOverride: $NODE_NAME
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# NodePorts answer on the node IP and on 127.0.0.1 only (iptables mode: nftables mode cannot
# serve localhost NodePorts), never on the host's real interfaces.
nodePortAddresses: ["$NODE_NET", "127.0.0.0/8"]
conntrack: {maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
iptables: {localhostNodePorts: true}
EOF
  start kube-proxy "$BIN/kube-proxy" --config="$STATE/kube-proxy-config.yaml" --v=1
  wait_for "kube-proxy /healthz" 60 kube-proxy curl -fsS http://127.0.0.1:10256/healthz
}

# The Gateway API CRDs (standard channel) of the version go.mod pins, from the Go module cache:
# no download site, and always the types the gateway is built with.
phase_crds() {
  local dir
  dir=$(cd "$REPO_ROOT" && go list -m -f '{{.Dir}}' sigs.k8s.io/gateway-api)/config/crd/standard ||
    die "go list -m sigs.k8s.io/gateway-api failed (go mod download in $REPO_ROOT)"
  kc apply --server-side -f "$dir" >/dev/null
  wait_for "Gateway API CRDs established" 60 - kc wait --for=condition=Established --timeout=5s crd --all
}

# Prometheus (built by build.sh), scraping every pod through Kubernetes service discovery: each
# container port named http, admin or metrics, at /metrics, with the pod's namespace, name, app and
# track as labels (docs/cluster.md). Loopback only; its data is under $STATE, gone at cluster-down.
phase_prometheus() {
  [[ -x $BIN/prometheus ]] || die "$BIN/prometheus is missing: run test/e2e/cluster/build.sh (make cluster-up does)"
  mkdir -p "$STATE/prometheus"
  sed -e "s|@KUBECONFIG@|$KUBECONFIG_PATH|g" "$CLUSTER_DIR/manifests/prometheus.yml" | put "$STATE/prometheus/prometheus.yml"
  start prometheus "$BIN/prometheus" --config.file="$STATE/prometheus/prometheus.yml" --storage.tsdb.path="$STATE/prometheus/data" \
    --storage.tsdb.retention.time=6h --web.listen-address="$PROMETHEUS_ADDR" --log.level=warn
  wait_for "Prometheus ready on $PROMETHEUS_ADDR" 60 prometheus curl -fsS "http://$PROMETHEUS_ADDR/-/ready"
}

phase_dns() {
  sed -e "s/@DNS_IP@/$DNS_IP/g" -e "s|@COREDNS_IMAGE@|$COREDNS_IMAGE|g" "$CLUSTER_DIR/manifests/coredns.yaml" | kc apply -f - >/dev/null
  wait_for "CoreDNS rollout" 180 - kc -n kube-system rollout status deploy/coredns --timeout=5s
}

phases=("$@")
((${#phases[@]})) || phases=(prereqs net pki etcd apiserver control containerd images kubelet proxy dns crds prometheus)
for p in "${phases[@]}"; do
  declare -F "phase_$p" >/dev/null || die "unknown phase $p; phases: prereqs net pki etcd apiserver control containerd images kubelet proxy dns crds prometheus"
  "phase_$p"
done
log "cluster up (${phases[*]}) in $((($(date +%s%N) - T0) / 1000000000))s"
echo "export KUBECONFIG=$KUBECONFIG_PATH    # kubectl: $(kubectl_bin)"

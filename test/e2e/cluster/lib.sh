# shellcheck shell=bash disable=SC2034 # settings used by the scripts that source this file
# Shared settings and helpers for the local cluster scripts (sourced, not run).
#
# Every path and version can be overridden from the environment:
#   FLOTILLA_CLUSTER_CACHE  build cache: Go module + build caches, throwaway modules, binaries.
#                           Default $XDG_CACHE_HOME/flotilla/cluster, else /var/cache/flotilla/cluster
#                           for root, else ~/.cache/flotilla/cluster. Never inside the repository,
#                           so `go test ./...` never walks 2 GB of Kubernetes sources.
#   FLOTILLA_CLUSTER_STATE  cluster state (PKI, etcd data, logs, pids, containerd root).
#                           Default /var/lib/flotilla/cluster; removed by cluster-down.
#   FLOTILLA_CLUSTER_RUN    runtime dir (containerd sockets). Default /run/flotilla-cluster.
#   K8S_VERSION             Kubernetes version built from the Go module proxy. Default 1.34.4.
#   COREDNS_VERSION         CoreDNS version built from the Go module proxy. Default v1.14.0.
#   KUBECTL                 kubectl to use. Default: the one built with the cluster
#                           ($BIN/kubectl, BUILD_KUBECTL=1, the default), else /usr/bin/kubectl.
set -euo pipefail

CLUSTER_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$CLUSTER_DIR/../../.." && pwd)

if [[ -n ${FLOTILLA_CLUSTER_CACHE:-} ]]; then
  CACHE=$FLOTILLA_CLUSTER_CACHE
elif [[ -n ${XDG_CACHE_HOME:-} ]]; then
  CACHE=$XDG_CACHE_HOME/flotilla/cluster
elif [[ $(id -u) -eq 0 ]]; then
  CACHE=/var/cache/flotilla/cluster
else
  CACHE=$HOME/.cache/flotilla/cluster
fi
STATE=${FLOTILLA_CLUSTER_STATE:-/var/lib/flotilla/cluster}
RUNDIR=${FLOTILLA_CLUSTER_RUN:-/run/flotilla-cluster}
K8S_VERSION=${K8S_VERSION:-1.34.4}
COREDNS_VERSION=${COREDNS_VERSION:-v1.14.0}
PROMETHEUS_VERSION=${PROMETHEUS_VERSION:-v0.316.0}  # the Go module's tag of Prometheus 3.16.0
BUILD_KUBECTL=${BUILD_KUBECTL:-1}

# Built binaries live in a directory named after the versions, so changing a version never
# mixes binaries and switching back is free.
BIN=$CACHE/bin/k8s-$K8S_VERSION
IMAGES=$CACHE/images
# Images only the cluster uses (built by build.sh into $IMAGES); the project's own images
# (flotilla, redis, pause) come from dist/images (make images).
COREDNS_IMAGE=localhost/flotilla/coredns:$COREDNS_VERSION
HELLO_IMAGE=localhost/flotilla/hello

# Addresses: all of them exist only inside this machine (see docs/cluster.md).
NODE_NAME=flotilla-node
NODE_BRIDGE=flt-node0          # port-less bridge holding the node IP (no dummy netdev here)
NODE_IP=10.199.0.1
NODE_NET=10.199.0.0/24
POD_BRIDGE=cni0
POD_CIDR=10.244.0.0/16
NODE_POD_CIDR=10.244.0.0/24
POD_GATEWAY=10.244.0.1
SVC_CIDR=10.96.0.0/12
API_SVC_IP=10.96.0.1
DNS_IP=10.96.0.10
PROMETHEUS_ADDR=127.0.0.1:19090  # the cluster's Prometheus (up.sh phase prometheus): loopback only
GUARD_CHAIN=FLOTILLA-GUARD
CNI_NETWORK=flotilla

PKI=$STATE/pki
LOGS=$STATE/logs
PIDS=$STATE/pids
CTR_SOCK=$RUNDIR/containerd/containerd.sock
KUBECONFIG_PATH=$STATE/admin.kubeconfig

# Host directories used whatever the configuration says: containerd 1.6's shim sockets, the CNI
# result cache, named netns, the kubelet's /var/log/containers links and device-plugin socket,
# libmount's /run/mount. up.sh records which existed; down.sh removes what the cluster left in
# the others (its links and socket) and then the directories, once empty.
SHARED_DIRS="/run/containerd /var/lib/cni /run/netns /var/log/containers /var/lib/kubelet /run/mount"

# Directories backing the static local PersistentVolumes of deploy/kubernetes/local (this cluster
# has no storage provisioner). Created by up.sh, removed with their data by down.sh.
LOCAL_VOLUME_DIRS="/var/lib/flotilla/redis"

# The sysctls this cluster (or its kubelet) changes; saved on the first cluster-up, restored on
# cluster-down.
SYSCTLS=(net.ipv4.ip_forward net.ipv4.conf.all.route_localnet vm.overcommit_memory
  kernel.panic kernel.panic_on_oops vm.panic_on_oom)

T0=${T0:-$(date +%s%N)}
export T0
log() { printf '[%s %s +%ss] %s\n' "${LOG_PREFIX:-cluster}" "$(date +%H:%M:%S)" "$(( ($(date +%s%N) - T0) / 1000000000 ))" "$*" >&2; }
die() { log "error: $*"; exit 1; }

need_root() { [[ $(id -u) -eq 0 ]] || die "must run as root (it creates network links, iptables rules and mounts)"; }

# kubectl: explicit choice, never whatever happens to be first on PATH.
kubectl_bin() {
  if [[ -n ${KUBECTL:-} ]]; then echo "$KUBECTL"
  elif [[ -x $BIN/kubectl ]]; then echo "$BIN/kubectl"
  elif [[ -x /usr/bin/kubectl ]]; then echo /usr/bin/kubectl
  else die "no kubectl: build it (BUILD_KUBECTL=1 make cluster-up) or set KUBECTL"
  fi
}
kc() { KUBECONFIG=$KUBECONFIG_PATH "$(kubectl_bin)" "$@"; }

# ctr of the cluster's own containerd (private socket, k8s.io namespace).
ctr_k8s() { ctr --address "$CTR_SOCK" -n k8s.io "$@"; }

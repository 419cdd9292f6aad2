#!/usr/bin/env bash
# Stops the local cluster and removes everything up.sh created: the processes it recorded (by
# PID, never by name), the pods' containers and network namespaces, mounts, the links, routes and
# iptables chains, the state directory; the sysctls are restored to what they were before the
# first up.sh. Idempotent: with nothing running it only checks that nothing is left.
# The build cache ($CACHE) is kept; remove it by hand to rebuild from scratch.
#
# usage: down.sh
LOG_PREFIX=down
source "$(dirname "$0")/lib.sh"
need_root
set +e

pid_of() { cat "$PIDS/$1.pid" 2>/dev/null; }
alive() { local p; p=$(pid_of "$1") && [[ -n $p ]] && kill -0 "$p" 2>/dev/null; }

# stop NAME: SIGTERM to the recorded PID, up to 15 s to exit, then SIGKILL.
stop() {
  local name=$1 pid
  pid=$(pid_of "$name") || return 0
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name (pid $pid) did not exit within 15s: SIGKILL"
      kill -KILL "$pid"
    fi
    log "stopped $name (pid $pid)"
  fi
  rm -f "$PIDS/$name.pid"
}

# 1. Pods first, while the kubelet can still tear them down properly (CNI DEL, unmounts).
if alive kubelet && alive kube-apiserver; then
  stop kube-controller-manager # nothing recreates what is deleted
  kc delete pods --all -A --grace-period=1 --wait=false >/dev/null 2>&1
  for _ in $(seq 60); do
    n=$(ctr_k8s tasks ls -q 2>/dev/null | wc -l)
    ((n == 0)) && break
    sleep 1
  done
  log "pods deleted (containers still running: ${n:-?})"
fi
stop kube-proxy
stop kubelet

# 2. Containers left over: killed through containerd, so their shims exit with them.
if alive containerd; then
  for id in $(ctr_k8s tasks ls -q 2>/dev/null); do ctr_k8s tasks kill -s SIGKILL "$id" >/dev/null 2>&1; done
  sleep 1
  for id in $(ctr_k8s tasks ls -q 2>/dev/null); do ctr_k8s tasks delete -f "$id" >/dev/null 2>&1; done
fi
stop containerd
stop kube-scheduler
stop kube-controller-manager
stop kube-apiserver
stop etcd
# Shims of this cluster's containerd outlive it only if a container could not be killed. They are
# ours by the private socket path on their command line; stopped by PID.
for pid in $(pgrep -f "containerd-shim.*-address $CTR_SOCK"); do
  log "containerd shim $pid still running: SIGKILL"
  kill -KILL "$pid"
done

# 3. Mounts under our directories, deepest first.
for d in "$STATE" "$RUNDIR"; do
  awk -v p="$d/" 'index($2, p) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m"
    log "unmounted $m"
  done
done
# Pod network namespaces (named cni-… by the CNI plugins) that did not exist before up.sh.
for ns in $(ip netns list 2>/dev/null | awk '/^cni-/{print $1}'); do
  grep -qx "$ns" "$STATE/netns.baseline" 2>/dev/null && continue
  ip netns delete "$ns" && log "deleted netns $ns"
done

# 4. Host network: kube-proxy's chains, the kubelet's own chains (kube-proxy --cleanup leaves
# those), our guard, routes, links.
if [[ -x $BIN/kube-proxy ]]; then
  "$BIN/kube-proxy" --cleanup >/dev/null 2>&1 && log "kube-proxy --cleanup: its iptables chains removed"
fi
for ipt in iptables ip6tables; do
  for table in filter nat mangle; do
    for chain in KUBE-FIREWALL KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT KUBE-PROXY-CANARY; do
      $ipt -t $table -S "$chain" >/dev/null 2>&1 || continue
      for base in INPUT OUTPUT FORWARD PREROUTING POSTROUTING; do
        while $ipt -t $table -D $base -j "$chain" 2>/dev/null; do :; done
      done
      $ipt -t $table -F "$chain" && $ipt -t $table -X "$chain" && log "removed $ipt -t $table $chain"
    done
  done
done
if iptables -S "$GUARD_CHAIN" >/dev/null 2>&1; then
  while iptables -D FORWARD -j "$GUARD_CHAIN" 2>/dev/null; do :; done
  iptables -F "$GUARD_CHAIN" && iptables -X "$GUARD_CHAIN" && log "removed $GUARD_CHAIN"
fi
ip route del "$SVC_CIDR" dev "$NODE_BRIDGE" 2>/dev/null
ip route del "$POD_CIDR" dev "$NODE_BRIDGE" 2>/dev/null
ip link del "$POD_BRIDGE" 2>/dev/null && log "deleted link $POD_BRIDGE"
ip link del "$NODE_BRIDGE" 2>/dev/null && log "deleted link $NODE_BRIDGE"
if [[ -f $STATE/sysctl.orig ]]; then
  sed 's/ = /=/' "$STATE/sysctl.orig" | while read -r kv; do sysctl -qw "$kv"; done
  log "sysctls restored: $(tr '\n' ' ' <"$STATE/sysctl.orig")"
fi

# 5. Shared directories the cluster created (recorded by up.sh), if empty now, and our own.
if [[ -f $STATE/dirs.baseline ]]; then
  for d in $SHARED_DIRS; do
    grep -qx "$d" "$STATE/dirs.baseline" && continue
    [[ -d $d ]] || continue
    # What the cluster leaves there when its processes were killed rather than stopped (no CNI DEL,
    # no shim cleanup): the CNI results of its networks (its own and containerd's loopback), shim sockets (the directory is the
    # cluster's: it did not exist before), the kubelet's links to container logs under $STATE and
    # its device-plugin socket.
    find "$d" \( -name "$CNI_NETWORK-*" -o -name "cni-loopback-*" \) -type f -delete 2>/dev/null
    [[ $d == /run/containerd ]] && find "$d" -type s -delete 2>/dev/null
    find "$d" -type l -lname "$STATE/*" -delete 2>/dev/null
    rm -f "$d/device-plugins/kubelet.sock"
    find "$d" -depth -type d -empty -delete 2>/dev/null
    if [[ -e $d ]]; then log "kept $d: not empty"; else log "removed $d"; fi
  done
fi
# Local volume directories up.sh created, with the data in them: the cluster that used them is gone.
if [[ -f $STATE/volumes.created ]]; then
  while read -r d; do
    rm -rf "$d" && log "removed local volume $d"
  done <"$STATE/volumes.created"
fi
left=$(awk -v s="$STATE/" -v r="$RUNDIR/" 'index($2, s) == 1 || index($2, r) == 1' /proc/mounts | wc -l)
if ((left > 0)); then
  log "error: $left mounts still under $STATE or $RUNDIR; kept them (see /proc/mounts)"
  exit 1
fi
rm -rf "$STATE" "$RUNDIR"
# /var/lib/flotilla holds only the cluster's state and volumes: gone once they are.
[[ $(basename "$(dirname "$STATE")") == flotilla ]] && rmdir "$(dirname "$STATE")" 2>/dev/null
log "cluster down; removed $STATE and $RUNDIR (build cache kept in $CACHE)"

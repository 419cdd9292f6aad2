#!/usr/bin/env bash
# Shows the local cluster: each recorded process (alive or not, RSS), the node, every pod.
# Exit status 0 only when every component runs and the node is Ready.
LOG_PREFIX=status
source "$(dirname "$0")/lib.sh"
set +e
if [[ ! -d $PIDS ]]; then
  echo "cluster: down (no $PIDS)"
  exit 3
fi
ok=0
for name in etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy; do
  pid=$(cat "$PIDS/$name.pid" 2>/dev/null)
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    printf '%-24s pid %-8s %5d MiB\n' "$name" "$pid" $(($(awk '/VmRSS/{print $2}' "/proc/$pid/status") / 1024))
  else
    printf '%-24s NOT RUNNING (log %s)\n' "$name" "$LOGS/$name.log"
    ok=1
  fi
done
echo
kc get nodes -o wide || ok=1
echo
kc get pods -A -o wide
echo
echo "export KUBECONFIG=$KUBECONFIG_PATH    # kubectl: $(kubectl_bin)"
exit $ok

#!/usr/bin/env bash
# Runs the official Gateway API conformance suite (sigs.k8s.io/gateway-api/conformance, the
# version of go.mod's gateway-api types), profile GATEWAY-HTTP, against the gateway on the local
# cluster (make cluster-up), and writes the report to report/ (docs/gateway-api.md).
#
# No registry: the suite's images are built here and imported into the cluster's containerd
# under the names its base manifests use: echo-basic from the conformance module's own source,
# and the CoreDNS the cluster already builds (its UDP backend; GATEWAY-HTTP never queries it).
#
#   test/conformance/run.sh [go test flags, e.g. -run 'TestConformance']   env: CONFORMANCE_ARGS
set -euo pipefail
LOG_PREFIX=conformance
# shellcheck source=../e2e/cluster/lib.sh
source "$(dirname "$0")/../e2e/cluster/lib.sh"
T0=$(date +%s%N)
HERE=$REPO_ROOT/test/conformance
need_root
[[ -f $KUBECONFIG_PATH ]] || die "the local cluster is not up: make cluster-up"

# The features claimed, beyond GATEWAY-HTTP's core (Gateway, HTTPRoute, ReferenceGrant). What is
# not claimed, and why, is in docs/gateway-api.md.
FEATURES=${CONFORMANCE_FEATURES:-}

VERSION=$(cd "$HERE" && go list -m -f '{{.Version}}' sigs.k8s.io/gateway-api/conformance)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

log "images for conformance $VERSION"
(cd "$HERE" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$work/echo-basic" sigs.k8s.io/gateway-api/conformance/echo-basic)
(cd "$REPO_ROOT" && go build -o "$work/mkimage" ./hack/mkimage)
mk() { "$work/mkimage" files -repo "$REPO_ROOT" -gzip-level 1 "$@" >/dev/null; }
# The base manifests' image names (grep image: base/manifests.yaml in the module).
for tag in v1.5.1 v1.6.0-dev.3; do
  mk -o "$work/echo-$tag.tar" -tag "registry.k8s.io/gateway-api/echo-basic:$tag" -entrypoint /echo-basic "$work/echo-basic=/echo-basic"
done
# Port 53: the manifest adds NET_BIND_SERVICE, which a non-root container only gets as root.
mk -o "$work/coredns.tar" -tag registry.k8s.io/coredns/coredns:v1.12.2 -user 0:0 -entrypoint /coredns "$BIN/coredns=/coredns"
for img in "$work"/*.tar; do ctr_k8s images import "$img" >/dev/null || die "ctr images import $img failed"; done

log "Gateway API CRDs and the gateway (namespace flotilla-conformance)"
"$CLUSTER_DIR/up.sh" crds >/dev/null
kc apply -k "$HERE/deploy" >/dev/null
# The image's tag never changes (flotilla:v1): restart, so the binary just imported serves.
kc -n flotilla-conformance rollout restart deploy/gateway >/dev/null
kc -n flotilla-conformance rollout status deploy/gateway --timeout=120s >/dev/null

# Only a full run may replace the committed report: a run narrowed by flags writes to /tmp.
mkdir -p "$HERE/report"
report=$HERE/report/flotilla-gateway-http.yaml
[[ $# -gt 0 || -n ${CONFORMANCE_ARGS:-} || -n $FEATURES ]] && report=/tmp/flotilla-conformance-partial.yaml
log "running the suite (report: ${report#"$REPO_ROOT"/})"
cd "$HERE"
KUBECONFIG=$KUBECONFIG_PATH go test -tags conformance -count=1 -timeout 45m -v "$@" . -args \
  -gateway-class=flotilla \
  -conformance-profiles=GATEWAY-HTTP \
  ${FEATURES:+-supported-features="$FEATURES"} \
  -organization=flotilla-dev -project=flotilla \
  -url=https://github.com/flotilla-dev/flotilla \
  -version="$(git -C "$REPO_ROOT" describe --tags --always --dirty)" \
  -contact=https://github.com/flotilla-dev/flotilla/issues \
  -report-output="$report" \
  ${CONFORMANCE_ARGS:-}
log "done"

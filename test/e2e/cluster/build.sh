#!/usr/bin/env bash
# Builds, from the Go module proxy only, everything the local cluster runs that Debian does not
# ship: kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, etcd,
# kubectl (BUILD_KUBECTL=1, the default), a minimal CoreDNS and Prometheus.
#
# Cached: each part is skipped when its stamp file in $BIN matches the versions asked for, so a
# second run costs nothing; a version change rebuilds into its own $BIN. The Kubernetes sources
# are a dependency of a throwaway module under $CACHE/src, outside this repository, with a
# private GOMODCACHE and GOCACHE under $CACHE (about 2 GB + 3.5 GB).
#
# usage: build.sh          env: see lib.sh (K8S_VERSION, COREDNS_VERSION, BUILD_KUBECTL, ...)
LOG_PREFIX=build
source "$(dirname "$0")/lib.sh"

# The body is a function so that bash has read all of it before running any: editing this file
# while a build runs cannot break that build.
main() {
  command -v go >/dev/null || die "go is not on PATH (needed to build the Kubernetes components)"
  # The repository's own tools (mkimage, hello) build with the user's usual Go caches.
  repo_go_env=(GOMODCACHE="$(go env GOMODCACHE)" GOCACHE="$(go env GOCACHE)" GOFLAGS= GOWORK=)
  export GOMODCACHE=${CLUSTER_GOMODCACHE:-$CACHE/gomod} GOCACHE=${CLUSTER_GOCACHE:-$CACHE/gocache}
  # -mod=mod: the throwaway modules have no go.sum checked in; -buildvcs=false: not a repository.
  export CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false" GOTOOLCHAIN=local GOWORK=off
  mkdir -p "$BIN" "$CACHE/src"
  minor=${K8S_VERSION#*.}; minor=${minor%%.*}
  gover=$(go env GOVERSION)

  # fresh STAMP KEY: true when $BIN/.STAMP holds KEY (the part was built with these inputs).
  fresh() { [[ -f $BIN/.$1 && $(cat "$BIN/.$1") == "$2" ]]; }

  # ------------------------------------------------------------------ Kubernetes + etcd (+ kubectl)
  key="k8s=$K8S_VERSION kubectl=$BUILD_KUBECTL $gover"
  if fresh k8s "$key"; then
    log "kubernetes v$K8S_VERSION: cached in $BIN"
  else
    m=$CACHE/src/k8s-$K8S_VERSION
    mkdir -p "$m/cmd/etcd"
    cd "$m"
    t0=$(date +%s)
    gomod=$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    [[ -f $gomod ]] || die "could not download k8s.io/kubernetes@v$K8S_VERSION from the Go module proxy"
    {
      echo "module flotilla.local/k8sbuild"
      echo
      grep -E '^go ' "$gomod"
      echo
      echo "require k8s.io/kubernetes v$K8S_VERSION"
      echo
      echo "replace ("
      # k8s.io/kubernetes replaces its staging modules with ./staging/...: pin them to v0.<minor>.<patch>
      grep -E '^\s*k8s\.io/[^ ]+ => \./staging/' "$gomod" | awk -v v="v0.${K8S_VERSION#*.}" '{print "\t" $1 " => " $1 " " v}'
      echo ")"
    } >go.mod
    # etcd from the same module graph, so its version is the one this Kubernetes release tests with
    cat >cmd/etcd/main.go <<'EOF'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
    pkgs=(k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
      k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy ./cmd/etcd)
    [[ $BUILD_KUBECTL == 1 ]] && pkgs+=(k8s.io/kubernetes/cmd/kubectl)
    log "kubernetes v$K8S_VERSION: downloading modules"
    go list -deps "${pkgs[@]}" >/dev/null
    t1=$(date +%s)
    log "kubernetes modules ready in $((t1 - t0))s; compiling ${#pkgs[@]} commands (about 8 CPU-minutes cold)"
    go build -trimpath -o "$BIN/" -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION \
      -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor" "${pkgs[@]}"
    echo "$key" >"$BIN/.k8s"
    log "kubernetes compiled in $(($(date +%s) - t1))s"
  fi

  # ------------------------------------------------------------------ CoreDNS (8 plugins, no forward)
  key="coredns=$COREDNS_VERSION k8s=$K8S_VERSION $gover $(sha256sum "$CLUSTER_DIR/coredns/main.go.txt" | cut -c1-16)"
  if fresh coredns "$key"; then
    log "coredns $COREDNS_VERSION: cached"
  else
    m=$CACHE/src/coredns-$COREDNS_VERSION
    rm -rf "$m"
    mkdir -p "$m"
    # main.go.txt: kept out of this module's package tree (it imports CoreDNS, which we do not depend on)
    cp "$CLUSTER_DIR/coredns/main.go.txt" "$m/main.go"
    cd "$m"
    t0=$(date +%s)
    go mod init flotilla.local/coredns >/dev/null 2>&1
    go get "github.com/coredns/coredns@$COREDNS_VERSION" >/dev/null 2>&1 ||
      die "go get github.com/coredns/coredns@$COREDNS_VERSION failed (run it in $m to see why)"
    # the cluster's client-go & co: same wire types, and most packages come from the k8s build cache
    for mod in api apimachinery client-go; do go mod edit -replace "k8s.io/$mod=k8s.io/$mod@v0.${K8S_VERSION#*.}"; done
    go list -deps . >/dev/null
    log "coredns modules ready in $(($(date +%s) - t0))s"
    go build -trimpath -ldflags "-s -w" -o "$BIN/coredns" .
    echo "$key" >"$BIN/.coredns"
    log "coredns compiled in $(($(date +%s) - t0))s"
  fi
  # Prometheus with only its Kubernetes service discovery (build tags), for phase prometheus:
  # Debian's package leaves Kubernetes discovery out. Built with the repository's Go caches, whose
  # modules it mostly shares (client_golang, client-go, OpenTelemetry, gRPC).
  key="prometheus=$PROMETHEUS_VERSION $gover"
  if fresh prometheus "$key"; then
    log "prometheus $PROMETHEUS_VERSION: cached"
  else
    t0=$(date +%s)
    env "${repo_go_env[@]}" GOBIN="$BIN" go install -trimpath -tags remove_all_sd,enable_kubernetes_sd \
      -ldflags "-s -w -X github.com/prometheus/common/version.Version=$PROMETHEUS_VERSION" \
      "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_VERSION" ||
      die "go install github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_VERSION failed"
    echo "$key" >"$BIN/.prometheus"
    log "prometheus compiled in $(($(date +%s) - t0))s"
  fi
  log "binaries in $BIN: $(find "$BIN" -maxdepth 1 -type f ! -name '.*' -printf '%f ')"

  # ------------------------------------------------------------------ the cluster's own images
  # CoreDNS, and hello (the self-test workload, v1 and v2 for a rolling update), as OCI tarballs.
  srcsum=$(cat "$BIN/coredns" "$CLUSTER_DIR"/hello/*.go "$REPO_ROOT"/hack/mkimage/*.go | sha256sum | cut -c1-16)
  key="images $COREDNS_IMAGE $srcsum"
  if [[ -f $IMAGES/.stamp && $(cat "$IMAGES/.stamp") == "$key" ]]; then
    log "cluster images: cached in $IMAGES"
  else
    mkdir -p "$IMAGES"
    cd "$REPO_ROOT"
    env "${repo_go_env[@]}" go build -trimpath -ldflags "-s -w" -o "$IMAGES/mkimage" ./hack/mkimage
    env "${repo_go_env[@]}" go build -trimpath -ldflags "-s -w" -o "$IMAGES/hello" ./test/e2e/cluster/hello
    mk() { "$IMAGES/mkimage" files -repo "$REPO_ROOT" "$@" >/dev/null; }
    mk -o "$IMAGES/coredns.tar" -tag "$COREDNS_IMAGE" -entrypoint /coredns "$BIN/coredns=/coredns"
    mk -o "$IMAGES/hello-v1.tar" -tag "$HELLO_IMAGE:v1" -entrypoint /hello -env VERSION=v1 "$IMAGES/hello=/hello"
    mk -o "$IMAGES/hello-v2.tar" -tag "$HELLO_IMAGE:v2" -entrypoint /hello -env VERSION=v2 "$IMAGES/hello=/hello"
    rm -f "$IMAGES/mkimage" "$IMAGES/hello"
    echo "$key" >"$IMAGES/.stamp"
    log "cluster images built: $(find "$IMAGES" -name '*.tar' -printf '%f ')"
  fi
}

main "$@"

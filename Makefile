# Flotilla's one entry point. `make help` lists the targets.
SHELL := /usr/bin/env bash
GO    ?= go
VERSION  ?= v1
REVISION ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X github.com/flotilla-dev/flotilla/internal/buildinfo.version=$(VERSION) \
            -X github.com/flotilla-dev/flotilla/internal/buildinfo.revision=$(REVISION)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

.PHONY: build
build: ## build bin/flotilla (VERSION=v2 bakes in another version)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/flotilla ./cmd/flotilla

.PHONY: run
run: ## run the whole system locally (flotilla up)
	$(GO) run ./cmd/flotilla up

.PHONY: deps
deps: ## install what the tests need (redis-server; chromium for the live view's browser test) when missing
	@hack/ensure-packages.sh redis-server:redis-server chromium:chromium

.PHONY: test
test: deps ## unit and integration tests, race detector on (the README's test command)
	$(GO) test -race -shuffle=on -timeout 15m ./...

# vet and the e2e suite compile as the images do (hack/mkimage: no cgo,
# -trimpath), so the three share Go's build cache: a cold machine compiles
# the dependency tree once for them, not twice. (The unit tests' -race
# build needs cgo and stays apart.)
IMAGEBUILD = CGO_ENABLED=0

.PHONY: lint
lint: ## gofmt, go vet and staticcheck (pinned)
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(IMAGEBUILD) $(GO) vet -trimpath ./...
	$(IMAGEBUILD) $(GO) vet -trimpath -tags e2e ./test/e2e/
	$(GO) run $(STATICCHECK) ./...
	$(GO) run $(STATICCHECK) -tags e2e ./test/e2e/

.PHONY: fuzz
fuzz: ## run every fuzz target for FUZZTIME each (default 20s)
	@hack/fuzz.sh $${FUZZTIME:-20s}

.PHONY: bench
bench: ## Go benchmarks, 10 runs each, for benchstat
	$(GO) test -run '^$$' -bench . -benchmem -count=10 ./... | tee bench.txt

.PHONY: bench-counter
bench-counter: ## wrk side by side: counter + redis-server vs a minimal Go server (bench/counter/run.sh)
	bench/counter/run.sh

.PHONY: bench-proxy
bench-proxy: ## side-by-side proxy benchmark: direct, gateway, nginx, HAProxy, Caddy; clear text, TLS and HTTP/2 (bench/proxy/run.sh)
	bench/proxy/run.sh

.PHONY: bench-load
bench-load: ## flotilla load side by side with wrk (bench/load/compare.sh)
	bench/load/compare.sh

.PHONY: h2spec
h2spec: ## HTTP/2 conformance (h2spec, 145 cases) against the gateway over TLS and h2c
	hack/h2spec.sh

.PHONY: ci
ci: lint test h2spec ## what CI runs

.PHONY: clean
clean: ## remove build outputs
	rm -rf bin dist

# ---------------------------------------------------------------------------------------------
# Images without Docker, and the project's own local Kubernetes cluster.
# docs/images.md and docs/cluster.md explain both; test/e2e/cluster holds the scripts.

IMAGE_VERSIONS  ?= v1,v2,v3
IMAGE_PLATFORMS ?= linux/amd64,linux/arm64
CLUSTER         := test/e2e/cluster

.PHONY: images
images: deps ## OCI image tarballs in dist/images, no Docker: flotilla v1-v3 (amd64+arm64), redis, pause
	$(GO) run ./hack/mkimage -out dist/images -revision $(REVISION) -versions $(IMAGE_VERSIONS) -platforms $(IMAGE_PLATFORMS)

.PHONY: cluster-up
cluster-up: ## build (cached) and start the local single-node cluster, import dist/images
	@[ -f dist/images/flotilla-v1.tar ] && [ -f dist/images/redis.tar ] && [ -f dist/images/pause.tar ] || $(MAKE) images
	$(CLUSTER)/build.sh
	$(CLUSTER)/up.sh

.PHONY: conformance
conformance: images cluster-up ## the official Gateway API conformance suite (GATEWAY-HTTP) on the local cluster; report in test/conformance/report/
	test/conformance/run.sh

.PHONY: cluster-down
cluster-down: ## stop the local cluster and remove all it created (the build cache stays)
	$(CLUSTER)/down.sh

.PHONY: cluster-status
cluster-status: ## the local cluster's processes, node and pods
	$(CLUSTER)/status.sh

.PHONY: cluster-check
cluster-check: ## self-test of the local cluster: services, NodePorts, DNS, rolling update
	$(CLUSTER)/check.sh

.PHONY: e2e
# One package (not ./test/e2e/...), so that -v streams: a CI log shows progress.
e2e: deps images cluster-up ## end-to-end tests (build tag e2e) on the local cluster, fresh images; E2E_FLAGS='-run X'
	eval "$$($(CLUSTER)/env.sh)" && $(IMAGEBUILD) $(GO) run ./hack/gotest -trimpath -tags e2e -count=1 -timeout 60m $(E2E_FLAGS) ./test/e2e/

# --- Kubernetes packaging (deploy/) ---------------------------------------
# Helm from the Go module proxy, pinned, for machines without a helm binary.
HELM ?= $(GO) run helm.sh/helm/v3/cmd/helm@v3.22.0

.PHONY: deploy-test
deploy-test: ## render and validate every kustomize overlay and the Helm chart (no cluster)
	$(GO) test ./internal/deploytest

.PHONY: golden
golden: ## rewrite the Helm golden files after a chart change (review the diff)
	$(GO) test ./internal/deploytest -update

.PHONY: manifests
manifests: ## render every kustomize overlay into dist/manifests/ (needs kubectl)
	@command -v kubectl >/dev/null || { echo "manifests: kubectl not found (go test ./internal/deploytest renders without it)"; exit 1; }
	@rm -rf dist/manifests && mkdir -p dist/manifests
	@for k in $$(find deploy/kubernetes -name kustomization.yaml | sort); do \
	  d=$$(dirname $$k); grep -q '^kind: Component' $$k && continue; \
	  out=dist/manifests/$$(echo $${d#deploy/kubernetes} | sed 's|^/||; s|/|_|g; s|^$$|default|').yaml; \
	  kubectl kustomize $$d > $$out && echo "$$out"; \
	done

.PHONY: helm
helm: ## run helm (pinned, from the module proxy): make helm ARGS="template flotilla deploy/helm/flotilla"
	$(HELM) $(ARGS)

.PHONY: helm-lint
helm-lint: ## helm lint --strict with the defaults and every value set
	$(HELM) lint deploy/helm/flotilla --strict
	@for v in deploy/helm/values-*.yaml internal/deploytest/testdata/helm/*.values.yaml; do \
	  echo "== $$v"; $(HELM) lint deploy/helm/flotilla --strict -f $$v --quiet || exit 1; \
	done

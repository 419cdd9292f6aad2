// Package e2e holds the end-to-end tests that run against a real Kubernetes
// cluster: the project's local single-node cluster (test/e2e/cluster, `make
// cluster-up`) or any cluster whose kubeconfig is given. They are compiled
// only with the `e2e` build tag:
//
//	make e2e
//	# or, with a cluster already up:
//	eval "$(test/e2e/cluster/env.sh)" && go test -tags e2e -count=1 ./test/e2e/...
//
// Every test works in a namespace of its own, deleted at the end; on failure
// the pods' status, the namespace's events and every container's logs are
// written to the test log first, so a CI log says what broke.
//
// Every wait follows from an event the test caused or observed (a pod gone,
// every gateway replica's endpoints, a probe sent after a change was seen
// to end), never from how fast the machine is; fixed sleeps only pace a
// load. docs/e2e.md says how each check does it.
package e2e

//go:build conformance

// Package conformance runs the official Gateway API conformance suite
// (sigs.k8s.io/gateway-api/conformance, the version of the types the
// gateway is built with) against the gateway on the local cluster. It is
// its own module so that the suite's dependencies (controller-runtime,
// testify) stay out of the flotilla binary's module graph.
package conformance

import (
	"testing"

	"sigs.k8s.io/gateway-api/conformance"
)

func TestConformance(t *testing.T) {
	conformance.RunConformance(t)
}

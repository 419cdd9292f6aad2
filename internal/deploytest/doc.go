// Package deploytest renders everything under deploy/ (every kustomize
// overlay and the Helm chart, as libraries, so no cluster and no binaries
// are needed) and validates the result: every object decodes strictly into
// its Kubernetes API type, and the properties that keep the system running
// hold (probes, security context, resources, selectors, ports, disruption
// budgets, drain timing, gateway routes). The package has only tests.
package deploytest

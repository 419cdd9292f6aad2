package config

import (
	"strings"
	"testing"
)

func TestKubernetesBackendValidation(t *testing.T) {
	const head = "apiVersion: flotilla.dev/v1alpha1\nkind: Gateway\nroutes: [{name: r, backends: [{name: web}]}]\nbackends:\n  - name: web\n"
	tests := []struct {
		name    string
		backend string
		want    []string // empty: valid
	}{
		{"named port", "    kubernetes: {service: counter, port: http}\n", nil},
		{"numbered port", "    kubernetes: {service: counter, port: 8080}\n", nil},
		{"quoted number", "    kubernetes: {service: counter, port: \"8080\"}\n", nil},
		{"namespace", "    kubernetes: {service: counter, namespace: shop-2, port: http}\n", nil},
		{"both addresses and kubernetes", "    addresses: [\"a:1\"]\n    kubernetes: {service: counter, port: http}\n",
			[]string{"backends[0]: want either addresses or kubernetes, not both"}},
		{"neither", "    protocol: http1\n", []string{"backends[0].addresses: want at least one host:port (or kubernetes: {service, port})"}},
		{"empty kubernetes", "    kubernetes: {}\n", []string{
			`backends[0].kubernetes.service: want a Service name (1..63 of a-z, 0-9, '-', starting with a letter), got ""`,
			"backends[0].kubernetes.port: want the Service port's name or number"}},
		{"no service", "    kubernetes: {port: http}\n", []string{`backends[0].kubernetes.service: want a Service name`}},
		{"service with upper case", "    kubernetes: {service: Counter, port: http}\n", []string{`backends[0].kubernetes.service: want a Service name (1..63 of a-z, 0-9, '-', starting with a letter), got "Counter"`}},
		{"service starting with a digit", "    kubernetes: {service: 1counter, port: http}\n", []string{`got "1counter"`}},
		{"service with a dot", "    kubernetes: {service: counter.shop, port: http}\n", []string{`backends[0].kubernetes.service: want a Service name`}},
		{"service too long", "    kubernetes: {service: " + strings.Repeat("a", 64) + ", port: http}\n", []string{`backends[0].kubernetes.service: want a Service name`}},
		{"namespace with a slash", "    kubernetes: {service: counter, namespace: a/b, port: http}\n", []string{`backends[0].kubernetes.namespace: want a namespace name (1..63 of a-z, 0-9, '-'), or none for the gateway's own, got "a/b"`}},
		{"namespace ending with a dash", "    kubernetes: {service: counter, namespace: shop-, port: http}\n", []string{`backends[0].kubernetes.namespace: want a namespace name`}},
		{"no port", "    kubernetes: {service: counter}\n", []string{"backends[0].kubernetes.port: want the Service port's name or number"}},
		{"port 0", "    kubernetes: {service: counter, port: 0}\n", []string{`backends[0].kubernetes.port: want a port number 1..65535 or a port name, got "0"`}},
		{"port too high", "    kubernetes: {service: counter, port: 65536}\n", []string{`backends[0].kubernetes.port: want a port number 1..65535 or a port name, got "65536"`}},
		{"negative port", "    kubernetes: {service: counter, port: -1}\n", []string{`backends[0].kubernetes.port: want a port number 1..65535 or a port name, got "-1"`}},
		{"port with leading zero", "    kubernetes: {service: counter, port: \"080\"}\n", []string{`got "080"`}},
		{"port name upper case", "    kubernetes: {service: counter, port: HTTP}\n", []string{`backends[0].kubernetes.port: want a port name (1..63 of a-z, 0-9, '-') or number 1..65535, got "HTTP"`}},
		{"port name with a space", "    kubernetes: {service: counter, port: \"h ttp\"}\n", []string{`backends[0].kubernetes.port: want a port name`}},
		{"unknown field", "    kubernetes: {service: counter, port: http, selector: {app: x}}\n", []string{`unknown field "selector"`}},
		{"not a mapping", "    kubernetes: counter\n", []string{"cannot unmarshal"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := parseWant(t, head+tt.backend, tt.want)
			if c != nil && c.Backends[0].Kubernetes == nil {
				t.Errorf("Backends[0].Kubernetes = nil")
			}
		})
	}
}

func TestKubernetesBackendParsed(t *testing.T) {
	c := parseWant(t, "apiVersion: flotilla.dev/v1alpha1\nkind: Gateway\nroutes: [{name: r, backends: [{name: web}]}]\nbackends:\n  - name: web\n    kubernetes: {service: counter, port: 8080}\n", nil)
	got := *c.Backends[0].Kubernetes
	if want := (KubernetesService{Service: "counter", Port: "8080"}); got != want {
		t.Errorf("Kubernetes = %+v, want %+v", got, want)
	}
}

package cli

import (
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/spf13/pflag"

	"github.com/flotilla-dev/flotilla/internal/flagenv"
	"github.com/flotilla-dev/flotilla/internal/gateway"
	"github.com/flotilla-dev/flotilla/internal/gateway/discovery"
	"github.com/flotilla-dev/flotilla/internal/gateway/livepeers"
	"github.com/flotilla-dev/flotilla/internal/gateway/liveui"
)

// liveFlags configure the live view on Kubernetes (docs/liveview.md,
// "On Kubernetes").
type liveFlags struct {
	// peersService is the gateway's own Service, in its namespace, whose
	// endpoints are this gateway's replicas ("": no merge).
	peersService string
	// peersPort is a port of that Service (name or number) whose
	// EndpointSlices list the replicas; their admin port is this one's.
	peersPort string
	// kubernetes reads pod metadata and ReplicaSets of the backends'
	// namespaces: version labels and rollout events.
	kubernetes bool
}

func (f *liveFlags) flags(fs *pflag.FlagSet) {
	fs.StringVar(&f.peersService, "live-peers-service", "", `the gateway's own Service (in its namespace): the live view fetches every replica behind it (GET /live/snapshot on the admin port, with the admin token) and shows their traffic together ("" = this replica only)`)
	fs.StringVar(&f.peersPort, "live-peers-port", "http", "a port of --live-peers-service (name or number) whose EndpointSlices list the replicas; they are reached on this gateway's admin port")
	fs.BoolVar(&f.kubernetes, "live-kubernetes", false, "read the backends' pods (metadata only) and ReplicaSets for the live view: versions from the app.kubernetes.io/version label, rollouts and pods turning ready or terminating in the timeline (needs get/list/watch on pods and replicasets)")
}

func (f liveFlags) validate(adminAddr, tokenFile string) []error {
	if f.peersService == "" {
		return nil
	}
	var errs []error
	if adminAddr == "" || loopbackAddr(adminAddr) {
		errs = append(errs, flagenv.Errorf("live-peers-service", "peers fetch each other on the admin port: --admin-addr %q must not be loopback or empty", adminAddr))
	}
	if tokenFile == "" {
		errs = append(errs, flagenv.Errorf("live-peers-service", "peers fetch each other with the admin token: --admin-token-file is required"))
	}
	if f.peersPort == "" {
		errs = append(errs, flagenv.Errorf("live-peers-port", "required with --live-peers-service: a port name or number of the Service"))
	}
	return errs
}

// replicaName is this replica's name in snapshots: $POD_NAME (the
// Deployment sets it), else the host name (a pod's is its name too).
func replicaName(getenv func(string) string) string {
	if n := getenv("POD_NAME"); n != "" {
		return n
	}
	if h, err := os.Hostname(); err == nil {
		return h
	}
	return "gateway"
}

// startLivePeers makes the live view's source: with --live-peers-service
// this replica's snapshot merged with its peers', found as the endpoints
// of the gateway's own Service (already watched for backends: no new
// permission), else the gateway's own. stop ends it.
func startLivePeers(f liveFlags, adminAddr string, token []byte, self string, getenv func(string) string,
	gw *gateway.Gateway, disc *discovery.Watcher, log *slog.Logger) (src liveui.Source, stop func(), err error) {
	if f.peersService == "" {
		return gw, func() {}, nil
	}
	_, adminPort, err := net.SplitHostPort(adminAddr)
	if err != nil {
		return nil, nil, flagenv.Errorf("admin-addr", "%v", err)
	}
	podIP := getenv("POD_IP")
	m := livepeers.New(livepeers.Options{Local: gw.LiveSnapshot, Token: token, Logger: log.With(slog.String("subsystem", "live-peers"))})
	unsub, err := disc.Subscribe(discovery.Key{Service: f.peersService, Port: f.peersPort}, func(eps []discovery.Endpoint) {
		m.SetPeers(Peers(eps, self, podIP, adminPort))
	})
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("--live-peers-service %q: %w", f.peersService, err)
	}
	log.Info("live view merges the gateway replicas behind a Service", slog.String("service", f.peersService), slog.String("port", f.peersPort))
	return m, func() { unsub(); m.Close() }, nil
}

// Peers are the replicas among a Service's endpoints, this one (its pod
// name self, or its address podIP) left out, each reached at its
// address's admin port. Draining replicas still serve traffic: they
// stay until they leave the slices.
func Peers(eps []discovery.Endpoint, self, podIP, adminPort string) []livepeers.Peer {
	var out []livepeers.Peer
	seen := map[string]bool{}
	for _, e := range eps {
		host, _, err := net.SplitHostPort(e.Addr)
		if err != nil || e.Pod != "" && e.Pod == self || podIP != "" && host == podIP || seen[host] {
			continue
		}
		seen[host] = true
		name := e.Pod
		if name == "" {
			name = host
		}
		out = append(out, livepeers.Peer{Name: name, URL: "http://" + net.JoinHostPort(host, adminPort)})
	}
	return out
}

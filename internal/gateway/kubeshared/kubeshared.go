// Package kubeshared holds what the gateway's Kubernetes controllers (the
// Ingress controller and the Gateway API controller) share: config names
// derived from object names, Service port resolution, the private
// directory of Secret material, and the Lease of the status writers.
package kubeshared

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	typedcoordinationv1 "k8s.io/client-go/kubernetes/typed/coordination/v1"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// MaxName is the longest config name (route and backend names).
const MaxName = 63

// ShortName joins parts with '.', lower-cased, other characters than
// [a-z0-9._-] replaced by '-'; a name longer than a config name may be is
// cut and suffixed with a digest of the whole, so it stays unique.
func ShortName(parts ...string) string {
	s := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' {
			return r
		}
		return '-'
	}, strings.ToLower(strings.Join(parts, ".")))
	if len(s) <= MaxName {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return s[:MaxName-9] + "-" + hex.EncodeToString(sum[:4])
}

// ServicePortKey returns how EndpointSlices name Service port number n: the
// port's name, or for an unnamed port (a Service with one port) its
// numeric targetPort; "" when neither works.
func ServicePortKey(s *corev1.Service, n int32) string {
	for _, sp := range s.Spec.Ports {
		if sp.Port != n {
			continue
		}
		if sp.Name != "" {
			return sp.Name
		}
		switch {
		case sp.TargetPort.IntValue() > 0:
			return strconv.Itoa(sp.TargetPort.IntValue())
		case sp.TargetPort.String() == "" || sp.TargetPort.String() == "0":
			return strconv.Itoa(int(n)) // targetPort defaults to port
		}
		return ""
	}
	return ""
}

// WriteFiles makes dir hold exactly files (names relative, slash-separated):
// each written (0600, by rename, so a reader never sees half a key) when
// its content changed, any other file removed.
func WriteFiles(dir string, files map[string][]byte) error {
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if !filepath.IsLocal(filepath.FromSlash(name)) {
			return fmt.Errorf("refusing file name %q outside the secret directory", name)
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, files[name]) {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
		if err != nil {
			return err
		}
		_, werr := tmp.Write(files[name])
		cerr := tmp.Close()
		if err := errors.Join(werr, cerr); err != nil {
			os.Remove(tmp.Name())
			return err
		}
		if err := os.Rename(tmp.Name(), p); err != nil {
			os.Remove(tmp.Name())
			return err
		}
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if _, keep := files[filepath.ToSlash(rel)]; !keep {
			return os.Remove(p)
		}
		return nil
	})
}

// PrivateDir creates dir if needed and makes it mode 0700.
func PrivateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return os.Chmod(dir, 0o700)
}

// Lease names the coordination.k8s.io Lease of the status writers.
type Lease struct {
	Namespace, Name string
	// Identity is this replica's (default: the host name).
	Identity string
}

// Elect runs leader election on l in the background (in wg) until ctx
// ends: onLead(true) when this replica starts leading, onLead(false) when
// it stops. name names the election in logs; leases is the
// coordination.k8s.io/v1 client (Clients.Coordination).
func Elect(ctx context.Context, wg *sync.WaitGroup, leases typedcoordinationv1.LeasesGetter, l *Lease, name string, log *slog.Logger, onLead func(bool)) error {
	id := l.Identity
	if id == "" {
		id, _ = os.Hostname()
	}
	lock := &resourcelock.LeaseLock{LeaseMeta: metav1.ObjectMeta{Namespace: l.Namespace, Name: l.Name},
		Client: leases, LockConfig: resourcelock.ResourceLockConfig{Identity: id}}
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: lock, LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second,
		ReleaseOnCancel: true, Name: name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(context.Context) {
				log.Info(name+": leading", slog.String("identity", id))
				onLead(true)
			},
			OnStoppedLeading: func() {
				log.Info(name+": not leading", slog.String("identity", id))
				onLead(false)
			},
		},
	})
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	wg.Go(func() {
		// Run returns when the lease is lost; try again until ctx ends.
		for ctx.Err() == nil {
			le.Run(ctx)
		}
	})
	return nil
}

// PublishedAddresses returns the addresses a controller writes to the
// status of what it serves: addrs when given, else those of the Service
// publishService ("namespace/name"): its load balancer's IPs and host
// names, else its external IPs, else its cluster IP. nil when neither is
// set. services is the core/v1 client (Clients.Core).
func PublishedAddresses(ctx context.Context, services typedcorev1.ServicesGetter, publishService string, addrs []string) ([]string, error) {
	var out []string
	add := func(a string) {
		if a != "" && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	if len(addrs) > 0 {
		for _, a := range addrs {
			add(a)
		}
		return out, nil
	}
	if publishService == "" {
		return nil, nil
	}
	ns, name, _ := strings.Cut(publishService, "/")
	svc, err := services.Services(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("publish service %s: %w", publishService, err)
	}
	return ServiceAddresses(svc), nil
}

// ServiceAddresses are the addresses clients reach svc at: its load
// balancer's, else its external IPs, else its cluster IP.
func ServiceAddresses(svc *corev1.Service) []string {
	var out []string
	add := func(a string) {
		if a != "" && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	for _, lb := range svc.Status.LoadBalancer.Ingress {
		add(lb.IP)
		add(lb.Hostname)
	}
	if len(out) == 0 {
		for _, ip := range svc.Spec.ExternalIPs {
			add(ip)
		}
	}
	if len(out) == 0 && svc.Spec.ClusterIP != corev1.ClusterIPNone {
		add(svc.Spec.ClusterIP)
	}
	return out
}

// CheckPublish checks the address a controller writes into status: a
// Service as namespace/name, or IPs and host names.
func CheckPublish(service string, addresses []string) error {
	if service != "" {
		if ns, name, ok := strings.Cut(service, "/"); !ok || ns == "" || name == "" || strings.Contains(name, "/") {
			return fmt.Errorf("publish service: want namespace/name, got %q", service)
		}
	}
	for _, a := range addresses {
		if a == "" || strings.ContainsAny(a, "/ :") && net.ParseIP(a) == nil {
			return fmt.Errorf("publish address: want an IP or a host name, got %q", a)
		}
	}
	return nil
}

// ScaleWeights maps Gateway API weights (0..1,000,000) onto the gateway's
// 0..100: divided by their greatest common divisor, then, when one is
// still above 100, scaled so the largest is 100 (a non-zero weight stays
// at least 1). lossy reports a ratio that could not be kept exactly.
// Weights already within 0..100 come back as they are.
func ScaleWeights(ws []int) (scaled []int, lossy bool) {
	g, hi := 0, 0
	for _, w := range ws {
		g, hi = gcd(g, w), max(hi, w)
	}
	if hi <= 100 || g == 0 {
		return ws, false
	}
	out := make([]int, len(ws))
	for i, w := range ws {
		w /= g
		if hi/g > 100 {
			exact := float64(w) * 100 / float64(hi/g)
			s := int(math.Round(exact))
			if w > 0 && s == 0 {
				s = 1
			}
			if float64(s) != exact {
				lossy = true
			}
			w = s
		}
		out[i] = w
	}
	return out, lossy
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

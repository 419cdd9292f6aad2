// Package weights writes a route's live weights where they are kept. A
// route translated from an HTTPRoute (the gateway's extra config part
// ExtraPart; named "gw.<namespace>.<route>.<rule>.<match>") keeps them in that HTTPRoute rule's backendRefs[].weight: the Writer
// patches them through the Kubernetes API, so every gateway replica
// applies them when its watch sees the change and a restarted replica
// reads them again. Any other route (the config file's) keeps them in
// the gateway's own table, which the Writer swaps locally, as before.
//
// Writer implements admin.WeightWriter: the admin API's
// PUT /routes/{name}/weights and the live view's controls call it
// through (*gateway.Gateway).UpdateWeights.
package weights

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/util/retry"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwtypedv1 "sigs.k8s.io/gateway-api/pkg/client/clientset/versioned/typed/apis/v1"

	"github.com/flotilla-dev/flotilla/internal/gateway/admin"
	"github.com/flotilla-dev/flotilla/internal/gateway/config"
	"github.com/flotilla-dev/flotilla/internal/gateway/kubeshared"
)

// FieldManager is the field manager of the Writer's patches: what
// `kubectl get httproute -o yaml --show-managed-fields` names as the
// writer of the weights.
const FieldManager = "flotilla-admin"

// MaxWeight is the largest weight the admin API accepts, as for a route
// of the config file (HTTPRoute weights may go higher; the gateway scales
// them into 0..100 keeping their ratio).
const MaxWeight = 100

// ExtraPart is the part of the gateway's extra config that holds the
// translation of the Gateway API objects (gateway.SetExtraPart).
const ExtraPart = "gatewayapi"

// Local is the gateway's own table: *gateway.Gateway.
type Local interface {
	// RouteOfPart reports whether the route came from the extra config
	// part (ExtraPart: translated from an HTTPRoute).
	RouteOfPart(part, route string) bool
	// Weights returns a route's live weights; an error wrapping
	// admin.ErrNotFound when there is no such route.
	Weights(route string) (map[string]int, error)
	// UpdateWeightsLocal changes some of a route's weights in the table.
	UpdateWeightsLocal(route string, next admin.NextWeights) (admin.Written, error)
}

// Options configure a Writer.
type Options struct {
	// Local is the gateway's table; required.
	Local Local
	// Routes reads and patches HTTPRoutes; nil: every route is written
	// locally (the gateway runs without --gateway-class).
	Routes gwtypedv1.HTTPRoutesGetter
	// Services resolves backendRefs to the names the gateway gives their
	// backends (the Service's port name); required with Routes.
	Services typedcorev1.ServicesGetter
	// Backoff paces the retries after a conflict (another writer changed
	// the HTTPRoute between our read and our patch); default
	// retry.DefaultRetry (5 tries, 10 ms apart, growing).
	Backoff wait.Backoff
	// Timeout bounds a whole write, retries included, so an unreachable
	// API server answers 503 instead of holding the admin request
	// (default 10s).
	Timeout time.Duration
	// Logger (default: discard).
	Logger *slog.Logger
}

// Writer writes weights; see the package comment. Safe for concurrent use.
type Writer struct {
	opts Options
	log  *slog.Logger
}

var _ admin.WeightWriter = (*Writer)(nil)

// New returns a Writer.
func New(opts Options) (*Writer, error) {
	if opts.Local == nil {
		return nil, errors.New("weights: Local is required")
	}
	if opts.Routes != nil && opts.Services == nil {
		return nil, errors.New("weights: Services is required with Routes")
	}
	if opts.Backoff.Steps == 0 {
		opts.Backoff = retry.DefaultRetry
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Writer{opts: opts, log: log}, nil
}

// Errors of UpdateWeights besides admin.ErrNotFound and admin.ErrInvalid:
// the API refused or failed the write (admin answers 503).
var ErrNotWritten = fmt.Errorf("weights not written (%w)", admin.ErrUnavailable)

// nextErr carries an error of the caller's NextWeights out of the retry,
// so that it is returned as it is.
type nextErr struct{ error }

// UpdateWeights changes some of route's weights (backend name → 0..100)
// to what next computes from the current ones. A route of an HTTPRoute
// is patched in the API, next running on the weights just read, again
// after each conflict; its other backendRefs keep their weights. Every
// other route is changed in the local table.
func (wr *Writer) UpdateWeights(ctx context.Context, route string, next admin.NextWeights) (admin.Written, error) {
	live, err := wr.opts.Local.Weights(route)
	if err != nil {
		return admin.Written{}, err
	}
	// Where the route came from decides, not its name: a route of the
	// routes file may be named gw.… too.
	if wr.opts.Routes == nil || !wr.opts.Local.RouteOfPart(ExtraPart, route) {
		return wr.opts.Local.UpdateWeightsLocal(route, next)
	}
	ctx, cancel := context.WithTimeout(ctx, wr.opts.Timeout)
	defer cancel()
	var done admin.Written
	err = retry.RetryOnConflict(wr.opts.Backoff, func() error {
		var err error
		done, err = wr.patch(ctx, route, next, live)
		return err
	})
	if err != nil {
		var ne nextErr
		switch {
		case errors.As(err, &ne):
			return admin.Written{}, ne.error
		case errors.Is(err, admin.ErrNotFound) || errors.Is(err, admin.ErrInvalid):
			return admin.Written{}, err
		case apierrors.IsInvalid(err):
			// The API server's validation (CEL, a webhook) refused it.
			return admin.Written{}, fmt.Errorf("%w: route %q: %w", admin.ErrInvalid, route, err)
		case apierrors.IsConflict(err):
			return admin.Written{}, fmt.Errorf("%w: route %q: the HTTPRoute kept changing under the write: %w", admin.ErrConflict, route, err)
		}
		return admin.Written{}, fmt.Errorf("%w: route %q: %w", ErrNotWritten, route, err)
	}
	wr.log.Info("weights written", slog.String("route", route), slog.String("where", done.Where), slog.Any("weights", done.Weights))
	return done, nil
}

// patch reads the HTTPRoute rule route came from, computes the weights
// with next from the rule's (on the gateway's 0..100 scale), and patches
// the rule's weights with the HTTPRoute's resourceVersion as a
// precondition (a conflict when another writer came first). live are the
// route's weights in this replica's table: a backend the gateway does not
// serve (an unresolved backendRef) cannot be named.
func (wr *Writer) patch(ctx context.Context, route string, next admin.NextWeights, live map[string]int) (admin.Written, error) {
	r, rule, err := wr.locate(ctx, route)
	if err != nil {
		return admin.Written{}, err
	}
	refs := r.Spec.Rules[rule].BackendRefs
	names, err := wr.backendNames(ctx, r, refs)
	if err != nil {
		return admin.Written{}, err
	}
	where := fmt.Sprintf("HTTPRoute %s/%s spec.rules[%d]", r.Namespace, r.Name, rule)
	if r.ResourceVersion == "" {
		// Without it the patch would have no precondition.
		return admin.Written{}, fmt.Errorf("%s: no resourceVersion to write against", where)
	}
	weights := make([]int, len(refs))
	for k, ref := range refs {
		weights[k] = 1 // the spec's default
		if ref.Weight != nil {
			weights[k] = int(*ref.Weight)
		}
	}
	// What the gateway serves: the served backendRefs' weights scaled to
	// 0..100 (900/100 serves as 9/1), as the translation scales them.
	var served []int // indexes into refs
	for k, n := range names {
		if _, ok := live[n]; ok && n != "" {
			served = append(served, k)
		}
	}
	raw := make([]int, len(served))
	for i, k := range served {
		raw[i] = weights[k]
	}
	scaled, _ := kubeshared.ScaleWeights(raw)
	cur := map[string]int{}
	for i, k := range served {
		if _, dup := cur[names[k]]; !dup {
			cur[names[k]] = scaled[i]
		}
	}
	w, err := next(maps.Clone(cur))
	if err != nil {
		return admin.Written{}, nextErr{err}
	}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(w)) {
		if _, ok := cur[name]; !ok {
			errs = append(errs, fmt.Errorf("route %q (%s) has no backend %q; its backends: %s", route, where, name, known(names, live)))
		} else if v := w[name]; v < 0 || v > MaxWeight {
			errs = append(errs, fmt.Errorf("weights[%q]: must be 0..%d, got %d", name, MaxWeight, v))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return admin.Written{}, fmt.Errorf("%w: %w", admin.ErrInvalid, err)
	}
	// Every served backendRef is written on that scale, the named ones at
	// their new weight, so the rule is on one scale and 10 more means 10
	// points.
	ops := []jsonPatchOp{{Op: "add", Path: "/metadata/resourceVersion", Value: r.ResourceVersion}}
	total := 0
	for i, k := range served {
		v, named := w[names[k]]
		if !named {
			v = scaled[i]
		}
		if v != weights[k] || refs[k].Weight == nil {
			weights[k] = v
			ops = append(ops, jsonPatchOp{Op: "add", Path: fmt.Sprintf("/spec/rules/%d/backendRefs/%d/weight", rule, k), Value: v})
		}
		total += v
	}
	if total == 0 {
		return admin.Written{}, fmt.Errorf("%w: route %q (%s): every weight would be 0, and the rule would answer 500", admin.ErrInvalid, route, where)
	}
	body, err := json.Marshal(ops)
	if err != nil {
		return admin.Written{}, err
	}
	out, err := wr.opts.Routes.HTTPRoutes(r.Namespace).Patch(ctx, r.Name, types.JSONPatchType, body, metav1.PatchOptions{FieldManager: FieldManager})
	if err != nil {
		return admin.Written{}, err // a Conflict is retried
	}
	res := admin.Written{Where: where, Weights: map[string]int{}}
	if out.ResourceVersion != "" {
		res.Where += " resourceVersion " + out.ResourceVersion
	}
	for k, n := range names {
		if n != "" {
			res.Weights[n] = weights[k]
		}
	}
	return res, nil
}

type jsonPatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

func known(names []string, live map[string]int) string {
	var ks []string
	for _, n := range names {
		if _, ok := live[n]; ok && n != "" {
			ks = append(ks, n)
		}
	}
	if len(ks) == 0 {
		return "none"
	}
	return strings.Join(ks, ", ")
}

// locate finds the HTTPRoute and rule index route was translated from:
// the translation names the route of rule i, match j of HTTPRoute ns/name
// kubeshared.ShortName("gw", ns, name, i, j), with ".http" or ".https"
// when it splits a route by scheme (package gatewayapi). The names are
// computed, not parsed: a long name ends in a digest. The namespace is
// the name's second part when a '.' follows it (namespaces have none).
func (wr *Writer) locate(ctx context.Context, route string) (*gwv1.HTTPRoute, int, error) {
	ns := metav1.NamespaceAll
	rest := strings.TrimPrefix(route, "gw.")
	if i := strings.IndexByte(rest, '.'); i > 0 {
		ns = rest[:i]
	}
	list, err := wr.opts.Routes.HTTPRoutes(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, 0, err
	}
	for i := range list.Items {
		r := &list.Items[i]
		if rule, ok := RuleOf(r, route); ok {
			return r, rule, nil
		}
	}
	return nil, 0, fmt.Errorf("%w: route %q: no HTTPRoute rule of this name (deleted since?)", admin.ErrNotFound, route)
}

// RuleOf returns the index of the rule of r that the gateway route named
// route was translated from: the rule's match's name, or a copy of it per
// scheme (".http", ".https") or, with per-Gateway listeners, per set of
// ports (".l<i>") or per port of a redirect (".p<i>"), i < maxCopies.
func RuleOf(r *gwv1.HTTPRoute, route string) (int, bool) {
	for i, rule := range r.Spec.Rules {
		for j := range max(1, len(rule.Matches)) {
			base := kubeshared.ShortName("gw", r.Namespace, r.Name, strconv.Itoa(i), strconv.Itoa(j))
			if route == base || route == kubeshared.ShortName(base, "http") || route == kubeshared.ShortName(base, "https") {
				return i, true
			}
			if !strings.HasPrefix(route, base[:min(len(base), kubeshared.MaxName-9)]) {
				continue // neither base nor a copy of it, short or digested
			}
			for k := range maxCopies {
				if route == kubeshared.ShortName(base, "l"+strconv.Itoa(k)) || route == kubeshared.ShortName(base, "p"+strconv.Itoa(k)) {
					return i, true
				}
			}
		}
	}
	return 0, false
}

// maxCopies bounds the copies of one match RuleOf recognises: the
// Gateways and listener ports one HTTPRoute is served on.
const maxCopies = 64

// backendNames returns the gateway's backend name of each backendRef, as
// the translation names them: "gw.<namespace>.<service>.<port>" with the
// Service's port name (".h2c" for appProtocol kubernetes.io/h2c); "" for
// a backendRef the gateway does not serve (not a Service, no port, the
// Service missing).
func (wr *Writer) backendNames(ctx context.Context, r *gwv1.HTTPRoute, refs []gwv1.HTTPBackendRef) ([]string, error) {
	names := make([]string, len(refs))
	services := map[string]*corev1.Service{}
	for k, ref := range refs {
		o := ref.BackendObjectReference
		if o.Group != nil && *o.Group != "" || o.Kind != nil && *o.Kind != "Service" || o.Port == nil {
			continue
		}
		ns := r.Namespace
		if o.Namespace != nil && *o.Namespace != "" {
			ns = string(*o.Namespace)
		}
		key := ns + "/" + string(o.Name)
		svc, seen := services[key]
		if !seen {
			s, err := wr.opts.Services.Services(ns).Get(ctx, string(o.Name), metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
			case err != nil:
				return nil, err
			default:
				svc = s
			}
			services[key] = svc
		}
		if svc == nil {
			continue
		}
		port := kubeshared.ServicePortKey(svc, int32(*o.Port))
		if port == "" {
			continue
		}
		parts := []string{"gw", ns, string(o.Name), port}
		for _, sp := range svc.Spec.Ports {
			if sp.Port == int32(*o.Port) && sp.AppProtocol != nil && *sp.AppProtocol == "kubernetes.io/h2c" {
				parts = append(parts, config.ProtocolH2C)
			}
		}
		names[k] = kubeshared.ShortName(parts...)
	}
	return names, nil
}

package discovery

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
)

// apiServer is an httptest stand-in for the API server's EndpointSlice
// endpoints, speaking JSON: a list, a watch (optionally a watch-list, the
// streaming initial list newer client-go asks for first) that later sends
// one change. It checks what the client asks for.
type apiServer struct {
	watchList bool          // serve sendInitialEvents; else refuse it (older servers)
	change    chan struct{} // closed: the watch sends the change
	once      sync.Once
	mu        sync.Mutex
	bad       []string
	asked     map[string]int // "list", "watch-list", "watch"
}

func (a *apiServer) fail(format string, args ...any) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.bad = append(a.bad, fmt.Sprintf(format, args...))
}

func typed(es *discoveryv1.EndpointSlice, rv string) *discoveryv1.EndpointSlice {
	es = es.DeepCopy()
	es.APIVersion, es.Kind = "discovery.k8s.io/v1", "EndpointSlice"
	es.ResourceVersion = rv
	return es
}

func (a *apiServer) count(kind string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.asked[kind]++
}

func (a *apiServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	http80 := map[string]int32{"http": 8080}
	first := typed(slice("ns", "web-a", "web", http80, ep{"10.0.0.1", "ready"}), "10")
	if r.URL.Path != "/apis/discovery.k8s.io/v1/namespaces/ns/endpointslices" {
		a.fail("request for %s", r.URL.Path)
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	if q.Get("labelSelector") != discoveryv1.LabelServiceName {
		a.fail("labelSelector %q, want %q", q.Get("labelSelector"), discoveryv1.LabelServiceName)
	}
	if ua := r.Header.Get("User-Agent"); ua != "flotilla-gateway" {
		a.fail("User-Agent %q", ua)
	}
	switch {
	case q.Get("watch") != "true":
		a.count("list")
	case q.Get("sendInitialEvents") == "true":
		a.count("watch-list")
	default:
		a.count("watch")
	}
	if q.Get("watch") != "true" {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"kind": "EndpointSliceList", "apiVersion": "discovery.k8s.io/v1",
			"metadata": map[string]string{"resourceVersion": "10"}, "items": []any{first}})
		return
	}
	if q.Get("sendInitialEvents") == "true" && !a.watchList {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]any{"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "BadRequest", "code": 400,
			"message": "sendInitialEvents is not supported"})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	send := func(typ string, obj any) {
		enc.Encode(map[string]any{"type": typ, "object": obj})
		w.(http.Flusher).Flush()
	}
	if q.Get("sendInitialEvents") == "true" {
		send("ADDED", first)
		send("BOOKMARK", map[string]any{"kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
			"metadata": map[string]any{"resourceVersion": "10", "annotations": map[string]string{"k8s.io/initial-events-end": "true"}}})
	} else {
		w.(http.Flusher).Flush()
	}
	a.once.Do(func() {
		select {
		case <-a.change:
			send("MODIFIED", typed(slice("ns", "web-a", "web", http80, ep{"10.0.0.1", "ready"}, ep{"10.0.0.2", "terminating-serving"}), "11"))
		case <-r.Context().Done():
		}
	})
	<-r.Context().Done()
}

// TestNewClientAgainstAnAPIServer runs the real client (NewClient: REST,
// the discovery.k8s.io/v1 scheme, parameters) and the informer against
// an HTTP server answering as the API server does, with and without the
// streaming watch-list.
func TestNewClientAgainstAnAPIServer(t *testing.T) {
	for _, watchList := range []bool{true, false} {
		t.Run(fmt.Sprintf("watch-list %v", watchList), func(t *testing.T) {
			api := &apiServer{watchList: watchList, change: make(chan struct{}), asked: map[string]int{}}
			srv := httptest.NewServer(api)
			defer srv.Close()
			defer srv.CloseClientConnections()
			client, err := NewClient(&rest.Config{Host: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			w := New(Options{Connect: func() (Client, string, error) { return client, "ns", nil }})
			defer w.Close()
			var web recorder
			stop, err := w.Subscribe(Key{Service: "web", Port: "http"}, web.fn)
			if err != nil {
				t.Fatal(err)
			}
			defer stop()
			if err := w.WaitSynced(context.Background()); err != nil {
				t.Fatal(err)
			}
			waitFor(t, &web, "10.0.0.1:8080")
			close(api.change)
			waitFor(t, &web, "10.0.0.1:8080,10.0.0.2:8080(draining)")
			api.mu.Lock()
			defer api.mu.Unlock()
			for _, b := range api.bad {
				t.Error(b)
			}
			// The client asks for a watch-list first; a server with it is
			// never asked to list, one without refuses it and is listed,
			// then watched.
			listed := api.asked["list"] > 0 && api.asked["watch"] > 0
			if api.asked["watch-list"] == 0 || listed == watchList {
				t.Errorf("requests %v, want a watch-list request and list and watch %v", api.asked, !watchList)
			}
		})
	}
}

// TestNewClientPodMetadataAndReplicaSets runs the real client's pod and
// ReplicaSet calls against an HTTP server answering as the API server
// does: pods are asked for as PartialObjectMetadata (the server sends no
// spec or status), ReplicaSets at apps/v1.
func TestNewClientPodMetadataAndReplicaSets(t *testing.T) {
	var mu sync.Mutex
	var bad []string
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		bad = append(bad, fmt.Sprintf(format, args...))
	}
	podMeta := map[string]any{"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
		"metadata": map[string]any{"name": "demo-1", "namespace": "ns", "resourceVersion": "5", "labels": map[string]string{VersionLabel: "v2"}}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		watching := r.URL.Query().Get("watch") == "true"
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/api/v1/namespaces/ns/pods":
			want := "as=PartialObjectMetadataList"
			if watching {
				want = "as=PartialObjectMetadata;"
			}
			if a := r.Header.Get("Accept"); !strings.Contains(a, want) {
				fail("pods: Accept %q, want %s", a, want)
			}
			if watching {
				json.NewEncoder(w).Encode(map[string]any{"type": "ADDED", "object": podMeta})
				return
			}
			json.NewEncoder(w).Encode(map[string]any{"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
				"metadata": map[string]string{"resourceVersion": "5"}, "items": []any{podMeta}})
		case "/apis/apps/v1/namespaces/ns/replicasets":
			if watching {
				fail("replicasets watched")
				return
			}
			json.NewEncoder(w).Encode(map[string]any{"kind": "ReplicaSetList", "apiVersion": "apps/v1", "metadata": map[string]string{"resourceVersion": "7"},
				"items": []any{map[string]any{"metadata": map[string]any{"name": "demo-rs", "namespace": "ns"}, "spec": map[string]any{"replicas": 3}}}})
		default:
			fail("request for %s", r.URL.Path)
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	client, err := NewClient(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	pc := client.(PodClient)
	ctx := context.Background()
	pods, err := pc.ListPodMetadata(ctx, "ns", metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 1 || pods.Items[0].Labels[VersionLabel] != "v2" {
		t.Errorf("pods = %+v, want demo-1 labelled v2", pods.Items)
	}
	wi, err := pc.WatchPodMetadata(ctx, "ns", metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if e := <-wi.ResultChan(); e.Type != watch.Added || e.Object.(*metav1.PartialObjectMetadata).Name != "demo-1" {
		t.Errorf("watch event %v %+v", e.Type, e.Object)
	}
	wi.Stop()
	sets, err := pc.ListReplicaSets(ctx, "ns", metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(sets.Items) != 1 || *sets.Items[0].Spec.Replicas != 3 {
		t.Errorf("replicasets = %+v, want demo-rs with 3 replicas", sets.Items)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, b := range bad {
		t.Error(b)
	}
}

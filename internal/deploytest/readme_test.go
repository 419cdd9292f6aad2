package deploytest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

var (
	kubectlLine = regexp.MustCompile(`kubectl -n ([a-z0-9-]+) ([^\n]*)`)
	deployRef   = regexp.MustCompile(`deploy/([a-z0-9-]+)`)
	resourceRef = regexp.MustCompile(`\b[a-z]+/[a-z0-9-]+`)
	setImage    = regexp.MustCompile(`set image deploy/([a-z0-9-]+) ([a-z0-9-]+)=(\S+)`)
	serviceRef  = regexp.MustCompile(`(?:service|svc) ([a-z0-9-]+)`)
	trackRef    = regexp.MustCompile(`-l track=([a-z]+)`)
	overlayRef  = regexp.MustCompile(`(?:apply|delete) -k (deploy/kubernetes[a-z0-9/_-]*)`)
	localPort   = regexp.MustCompile(`127\.0\.0\.1:(3[0-2][0-9]{3})\b`) // the NodePort range
)

// checkCommands checks that the kubectl commands and URLs in a README name
// objects the overlay really renders: the READMEs promise exact commands.
func checkCommands(doc, text string, objs []object, namespace string, ports map[int32]bool) []error {
	var errs []error
	errorf := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for _, m := range kubectlLine.FindAllStringSubmatch(text, -1) {
		ns, rest := m[1], m[2]
		if ns != namespace {
			errorf("%s: %q uses namespace %s, want %s", doc, m[0], ns, namespace)
			continue
		}
		if strings.HasPrefix(rest, "rollout status") && len(resourceRef.FindAllString(rest, -1)) > 1 {
			errorf("%s: %q: rollout status takes one resource", doc, m[0])
		}
		for _, d := range deployRef.FindAllStringSubmatch(rest, -1) {
			if find[*appsv1.Deployment](objs, "Deployment", ns, d[1]) == nil {
				errorf("%s: %q: no Deployment %s/%s", doc, m[0], ns, d[1])
			}
		}
		for _, si := range setImage.FindAllStringSubmatch(rest, -1) {
			d := find[*appsv1.Deployment](objs, "Deployment", ns, si[1])
			if d == nil || !slices.ContainsFunc(d.Spec.Template.Spec.Containers, func(c corev1.Container) bool { return c.Name == si[2] }) {
				errorf("%s: %q: Deployment %s has no container %s", doc, m[0], si[1], si[2])
			}
		}
		for _, s := range serviceRef.FindAllStringSubmatch(rest, -1) {
			if find[*corev1.Service](objs, "Service", ns, s[1]) == nil {
				errorf("%s: %q: no Service %s/%s", doc, m[0], ns, s[1])
			}
		}
		for _, tr := range trackRef.FindAllStringSubmatch(rest, -1) {
			if !slices.ContainsFunc(workloads(objs), func(w workload) bool { return w.labels["track"] == tr[1] }) {
				errorf("%s: %q: no pods with track=%s", doc, m[0], tr[1])
			}
		}
	}
	for _, m := range overlayRef.FindAllStringSubmatch(text, -1) {
		if _, err := os.Stat(filepath.Join("../..", m[1], "kustomization.yaml")); err != nil {
			errorf("%s: %q: no kustomization there", doc, m[0])
		}
	}
	for _, m := range localPort.FindAllStringSubmatch(text, -1) {
		if p, _ := strconv.Atoi(m[1]); !ports[int32(p)] {
			errorf("%s: %s is no NodePort of the overlay", doc, m[0])
		}
	}
	return errs
}

func checkDoc(t *testing.T, doc string, objs []object, namespace string) {
	t.Helper()
	data, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range checkCommands(doc, string(data), objs, namespace, nodePorts(objs)) {
		t.Error(err)
	}
}

func nodePorts(objs []object) map[int32]bool {
	ports := map[int32]bool{}
	for _, o := range objs {
		if svc, ok := o.Obj.(*corev1.Service); ok {
			for _, p := range svc.Spec.Ports {
				if p.NodePort != 0 {
					ports[p.NodePort] = true
				}
			}
		}
	}
	return ports
}

// TestStrategyREADMEs: every command in a strategy's README names objects of
// that strategy's overlay, and its URLs use the overlay's NodePorts.
func TestStrategyREADMEs(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join(kustomizeRoot, "strategies", "*", "README.md"))
	// The Gateway API variants' README: TestGatewayAPIStrategiesREADME.
	dirs = slices.DeleteFunc(dirs, func(p string) bool { return filepath.Base(filepath.Dir(p)) == "gateway-api" })
	if err != nil || len(dirs) != 6 {
		t.Fatalf("want 6 strategy READMEs, got %v (%v)", dirs, err)
	}
	for _, readme := range dirs {
		dir := filepath.Dir(readme)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			t.Parallel()
			objs := renderKustomize(t, dir)
			checkDoc(t, readme, objs, "flotilla-"+filepath.Base(dir))
		})
	}
}

// TestDeployDoc: the commands of docs/deploy.md against the local overlay;
// its URLs may use any overlay's NodePorts (it describes them all).
func TestDeployDoc(t *testing.T) {
	objs := renderKustomize(t, filepath.Join(kustomizeRoot, "local"))
	ports := nodePorts(objs)
	dirs, _ := overlays(t)
	for _, dir := range dirs {
		for p := range nodePorts(renderKustomize(t, dir)) {
			ports[p] = true
		}
	}
	const doc = "../../docs/deploy.md"
	data, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range checkCommands(doc, string(data), objs, "flotilla", ports) {
		t.Error(err)
	}
}

// TestCheckCommandsCatches: wrong names in a document are reported.
func TestCheckCommandsCatches(t *testing.T) {
	objs := renderKustomize(t, filepath.Join(kustomizeRoot, "local"))
	doc := "kubectl -n flotilla set image deploy/counter flask-app=ghcr.io/flotilla-dev/flotilla:v2\n" +
		"kubectl -n flotilla rollout status deploy/flask-app\n" +
		"kubectl -n flotilla rollout status deploy/counter deploy/demo\n" +
		"kubectl -n default get svc counter\n" +
		"kubectl -n flotilla patch service k8sdemo -p '{}'\n" +
		"kubectl -n flotilla get pod -l track=canary\n" +
		"kubectl apply -k deploy/kubernetes/strategies/rainbow\n" +
		"curl http://127.0.0.1:31280/\n"
	want := []string{
		`Deployment counter has no container flask-app`,
		`no Deployment flotilla/flask-app`,
		`"kubectl -n flotilla rollout status deploy/counter deploy/demo": rollout status takes one resource`,
		`uses namespace default, want flotilla`,
		`no Service flotilla/k8sdemo`,
		`no pods with track=canary`,
		`"apply -k deploy/kubernetes/strategies/rainbow": no kustomization there`,
		`127.0.0.1:31280 is no NodePort of the overlay`,
	}
	got := errors.Join(checkCommands("doc", doc, objs, "flotilla", nodePorts(objs))...)
	for _, w := range want {
		if got == nil || !strings.Contains(got.Error(), w) {
			t.Errorf("checkCommands() = %v, want an error containing %q", got, w)
		}
	}
}

// TestTalkDoc: the commands and node ports of docs/talk.md against the
// talk overlay (deploy/kubernetes/talk, namespace talk).
func TestTalkDoc(t *testing.T) {
	objs := renderKustomize(t, filepath.Join(kustomizeRoot, "talk"))
	checkDoc(t, "../../docs/talk.md", objs, "talk")
	// The ports the doc names are the overlay's, and the slides'.
	for _, p := range []int32{31218, 32201, 31280, 30280} {
		if !nodePorts(objs)[p] {
			t.Errorf("deploy/kubernetes/talk: no node port %d, which docs/talk.md names", p)
		}
	}
}

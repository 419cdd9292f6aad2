package archtest

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// heavy are packages that link every API group's (or every Gateway API
// version's) typed client, informer, lister and apply configuration into
// the binary: the flotilla binary went from 37 to 77 MB when the gateway's
// controllers used them. Our packages build only the typed clients and
// informers they use (internal/gateway/kubeshared).
var heavy = []string{
	"k8s.io/client-go/kubernetes",
	"k8s.io/client-go/informers",
	"k8s.io/client-go/dynamic",
	"sigs.k8s.io/gateway-api/pkg/client/clientset/versioned",
	"sigs.k8s.io/gateway-api/pkg/client/informers/externalversions",
}

// TestBinaryLinksNoFullClientset: no package of ours that the flotilla
// binary links imports a full Clientset or an informer factory. (client-go's
// own leaderelection still imports them; the linker drops what it does not
// call, which it cannot do for what our code calls.)
func TestBinaryLinksNoFullClientset(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-json=ImportPath,Imports", "../../cmd/flotilla").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	n := 0
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(p.ImportPath, "github.com/flotilla-dev/flotilla/") {
			continue
		}
		n++
		for _, imp := range p.Imports {
			for _, h := range heavy {
				if imp == h || strings.HasPrefix(imp, h+"/") && !strings.Contains(imp, "/typed/") && !strings.HasSuffix(imp, "/scheme") {
					t.Errorf("%s imports %s (links every API group; use the typed clients of kubeshared)", p.ImportPath, imp)
				}
			}
		}
	}
	if n < 5 {
		t.Fatalf("go list found %d of our packages in the binary; the test is looking in the wrong place", n)
	}
}

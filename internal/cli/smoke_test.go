package cli

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestSmoke(t *testing.T) {
	var n atomic.Int64
	growing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "flaskapp.test" {
			http.Error(w, "wrong host "+r.Host, http.StatusNotFound)
			return
		}
		fmt.Fprintf(w, `{"instance":"c-1","version":"v1","count":%d}`, n.Add(1))
	}))
	defer growing.Close()
	stuck := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `{"instance":"c-1","version":"v1","count":1}`)
	}))
	defer stuck.Close()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "Redis at redis:6379 is unavailable: connection refused", http.StatusServiceUnavailable)
	}))
	defer down.Close()

	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     string
	}{
		{"count grows", []string{"smoke", growing.URL, "--host", "flaskapp.test", "--times", "3"}, 0, "ok: the count grew"},
		{"count stuck", []string{"smoke", stuck.URL}, ExitError, "the count did not grow"},
		{"counter failing", []string{"smoke", down.URL}, ExitError, "503 Service Unavailable: Redis at redis:6379"},
		{"not a URL", []string{"smoke", "counter"}, ExitUsage, `want an http(s) URL, got "counter"`},
		{"too few", []string{"smoke", growing.URL, "--times", "1"}, ExitUsage, "--times (FLOTILLA_TIMES)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runLive(t, tt.args...)
			if code != tt.wantCode || !strings.Contains(out+errOut, tt.want) {
				t.Errorf("flotilla %v = %d\nstdout %q\nstderr %q\nwant %d containing %q", tt.args, code, out, errOut, tt.wantCode, tt.want)
			}
		})
	}
}

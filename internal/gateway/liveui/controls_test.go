package liveui

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseLogin(t *testing.T) {
	const ct = "application/x-www-form-urlencoded"
	tests := []struct {
		name, ct, body string
		want           string // token, or the error's text
		ok             bool
	}{
		{"token", ct, "token=abc", "abc", true},
		{"charset parameter", ct + ";charset=UTF-8", "token=a%2Bb%3D", "a+b=", true},
		{"plus is a space", ct, "token=a+b", "a b", true},
		{"JSON", "application/json", `{"token":"abc"}`, "want Content-Type application/x-www-form-urlencoded", false},
		{"no content type", "", "token=abc", "want Content-Type", false},
		{"multipart", "multipart/form-data; boundary=x", "token=abc", "want Content-Type", false},
		{"empty body", ct, "", "want only the field token", false},
		{"empty token", ct, "token=", "token is empty", false},
		{"other field", ct, "token=abc&next=/", "want only the field token", false},
		{"twice", ct, "token=abc&token=def", "token given twice", false},
		{"bad escape", ct, "token=%zz", "token is not form-encoded", false},
		{"too large", ct, "token=" + strings.Repeat("a", MaxLoginBody), "form larger than 4 KiB", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := ParseLogin(tt.ct, strings.NewReader(tt.body))
			switch {
			case tt.ok && (err != nil || string(tok) != tt.want):
				t.Errorf("ParseLogin(%q) = %q, %v; want %q", tt.body, tok, err, tt.want)
			case !tt.ok && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("ParseLogin(%q) error = %v, want %q", tt.body, err, tt.want)
			case !tt.ok && strings.Contains(err.Error(), "abc"):
				t.Errorf("ParseLogin error shows the token: %v", err)
			}
		})
	}
}

func FuzzParseLogin(f *testing.F) {
	for _, s := range []string{"token=abc", "token=", "token=a&token=b", "x=1", "token=%zz", "token=%00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		tok, err := ParseLogin("application/x-www-form-urlencoded", strings.NewReader(body))
		if err == nil && len(tok) == 0 {
			t.Fatalf("ParseLogin(%q) accepted an empty token", body)
		}
		if err != nil && len(body) > 12 && strings.Contains(err.Error(), body[6:]) {
			t.Fatalf("ParseLogin(%q) error %q shows the input", body, err)
		}
	})
}

func TestParseStepAndPause(t *testing.T) {
	steps := []struct {
		name, body string
		want       StepRequest
		err        string
	}{
		{"up", `{"backend": "green", "delta": 10}`, StepRequest{"green", 10}, ""},
		{"down", `{"backend":"green","delta":-10}`, StepRequest{"green", -10}, ""},
		{"zero", `{"backend": "green", "delta": 0}`, StepRequest{}, "delta: bad control request: must be -100..100 and not 0, got 0"},
		{"too far", `{"backend": "green", "delta": 101}`, StepRequest{}, "got 101"},
		{"no backend", `{"delta": 10}`, StepRequest{}, "backend: bad control request: required"},
		{"unknown field", `{"backend": "g", "delta": 1, "weight": 5}`, StepRequest{}, `unknown field "weight"`},
		{"two values", `{"backend": "g", "delta": 1}{}`, StepRequest{}, "more than one JSON value"},
		{"fraction", `{"backend": "g", "delta": 1.5}`, StepRequest{}, "cannot unmarshal number 1.5"},
		{"string delta", `{"backend": "g", "delta": "10"}`, StepRequest{}, "cannot unmarshal string"},
		{"not JSON", `backend=g`, StepRequest{}, "invalid character"},
		{"empty", ``, StepRequest{}, "EOF"},
		{"huge", `{"backend": "` + strings.Repeat("g", MaxControlBody) + `", "delta": 1}`, StepRequest{}, "body larger than 1024 bytes"},
	}
	for _, tt := range steps {
		t.Run("step "+tt.name, func(t *testing.T) {
			got, err := ParseStep(strings.NewReader(tt.body))
			if tt.err == "" && (err != nil || got != tt.want) {
				t.Errorf("ParseStep(%s) = %+v, %v; want %+v", tt.body, got, err, tt.want)
			}
			if tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err) || !strings.HasPrefix(err.Error(), "step: ")) {
				t.Errorf("ParseStep(%s) error = %v, want one naming %q", tt.body, err, tt.err)
			}
		})
	}
	pauses := []struct {
		name, body string
		want       bool
		err        string
	}{
		{"pause", `{"paused": true}`, true, ""},
		{"resume", `{"paused": false}`, false, ""},
		{"missing", `{}`, false, "paused: bad control request: required"},
		{"null", `{"paused": null}`, false, "required"},
		{"string", `{"paused": "yes"}`, false, "cannot unmarshal string"},
		{"array", `[true]`, false, "cannot unmarshal array"},
	}
	for _, tt := range pauses {
		t.Run("pause "+tt.name, func(t *testing.T) {
			got, err := ParsePause(strings.NewReader(tt.body))
			if tt.err == "" && (err != nil || got != tt.want) {
				t.Errorf("ParsePause(%s) = %v, %v; want %v", tt.body, got, err, tt.want)
			}
			if tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Errorf("ParsePause(%s) error = %v, want one naming %q", tt.body, err, tt.err)
			}
		})
	}
}

func FuzzParseControls(f *testing.F) {
	for _, s := range []string{`{"backend":"g","delta":10}`, `{"paused":true}`, `{}`, `[]`, `null`, `{"delta":-100,"backend":"x"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		if s, err := ParseStep(strings.NewReader(body)); err == nil && (s.Backend == "" || s.Delta == 0 || s.Delta < -100 || s.Delta > 100) {
			t.Fatalf("ParseStep(%q) accepted %+v", body, s)
		}
		ParsePause(strings.NewReader(body))
	})
}

func TestFlipAndStep(t *testing.T) {
	tests := []struct {
		name    string
		do      func() (map[string]int, error)
		want    map[string]int
		wantErr string
	}{
		{"flip blue/green", func() (map[string]int, error) { return Flip(map[string]int{"blue": 100, "green": 0}) }, map[string]int{"blue": 0, "green": 100}, ""},
		{"flip a split", func() (map[string]int, error) { return Flip(map[string]int{"a": 70, "b": 30}) }, map[string]int{"a": 30, "b": 70}, ""},
		{"flip three", func() (map[string]int, error) { return Flip(map[string]int{"a": 1, "b": 1, "c": 1}) }, nil, "the route has 3 backends, want 2"},
		{"flip one", func() (map[string]int, error) { return Flip(map[string]int{"a": 1}) }, nil, "the route has 1 backends, want 2"},
		{"step keeps 100", func() (map[string]int, error) { return Step(map[string]int{"stable": 90, "canary": 10}, "canary", 10) }, map[string]int{"stable": 80, "canary": 20}, ""},
		{"step down to 0", func() (map[string]int, error) { return Step(map[string]int{"stable": 95, "canary": 5}, "canary", -10) }, map[string]int{"stable": 100, "canary": 0}, ""},
		{"step up to 100", func() (map[string]int, error) { return Step(map[string]int{"stable": 5, "canary": 95}, "canary", 10) }, map[string]int{"stable": 0, "canary": 100}, ""},
		{"relative weights: only the one", func() (map[string]int, error) { return Step(map[string]int{"a": 1, "b": 3}, "b", 10) }, map[string]int{"b": 13}, ""},
		{"three backends: only the one", func() (map[string]int, error) { return Step(map[string]int{"a": 50, "b": 25, "c": 25}, "c", 10) }, map[string]int{"c": 35}, ""},
		{"unknown backend", func() (map[string]int, error) { return Step(map[string]int{"a": 50, "b": 50}, "c", 10) }, nil, `the route has no backend "c" (it has a, b)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.do()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !cmp.Equal(got, tt.want) {
				t.Errorf("= %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

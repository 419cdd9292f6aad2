package load

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestReportsHidePassword(t *testing.T) {
	s := Summary{URL: "http://user:s3cret@127.0.0.1:8080/x"}
	var text bytes.Buffer
	s.writeText(&text, Config{})
	js, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]string{"text": text.String(), "json": string(js)} {
		if strings.Contains(out, "s3cret") || !strings.Contains(out, "user:xxxxx@127.0.0.1:8080") {
			t.Errorf("%s summary = %s, want the password redacted", name, out)
		}
	}
}

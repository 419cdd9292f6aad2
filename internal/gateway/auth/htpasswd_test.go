package auth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The vectors were made with `openssl passwd -apr1 -salt S PASSWORD` and
// `htpasswd -nbm USER PASSWORD` (apache2-utils 2.4).
func TestAPR1Vectors(t *testing.T) {
	tests := []struct {
		password, salt, want string
	}{
		{"secret", "xY7.z/Ab", "B8.UNOl0kosSfHEqNbGf00"},
		{"pässwörd", "xY7.z/Ab", "rienpUzah5QZ/o8FZugH0/"},
		{"a:b:c", "xY7.z/Ab", "8pIK64F1v4QHzaHV6wAEk/"},
		{"", "xY7.z/Ab", "1vdSyisTkvTufbSwRBTu10"},
		{"p", "z", "IuA4p7NhERX45UofKmRNs/"},
		{"longpasswordlongpasswordlongpasswordlongpassword", "abc", "GQ./IJ9YMI0w7nWz4cYA71"},
		{"secret", "FcY/Fw.W", "ZjI9IuakMQb6XfRL6.0i8."},
		{"sixteen-chars-xx", "eq3UsnJk", "L5CxHgdUtN1gB.lRS54qe0"},
		{"seventeen-chars-x", "x9ay.dyK", "YvVAnj4k5eG1IvKsMXSAS."},
		// Only the first 8 bytes of a salt count.
		{"secret", "xY7.z/AbLONGER", "B8.UNOl0kosSfHEqNbGf00"},
	}
	for _, tt := range tests {
		if got := string(basicAPR1Sum([]byte(tt.password), []byte(tt.salt))); got != tt.want {
			t.Errorf("basicAPR1Sum(%q, %q) = %q, want %q", tt.password, tt.salt, got, tt.want)
		}
	}
}

func TestHtpasswdErrors(t *testing.T) {
	const okLine = "carol:$2y$04$JiSVvxfOAf5rogpYCuLOpu8eQA921PXYkLC7FlO.7hCyPvFIa99iK\n"
	tests := []struct {
		name    string
		content string
		want    []string
	}{
		{name: "empty", content: "", want: []string{"users.htpasswd: no users"}},
		{name: "only comments", content: "# none\n\n", want: []string{"users.htpasswd: no users"}},
		{name: "no colon", content: okLine + "alice\n", want: []string{"users.htpasswd:2: want user:hash"}},
		{name: "empty user", content: ":$apr1$FcY/Fw.W$ZjI9IuakMQb6XfRL6.0i8.\n", want: []string{"users.htpasswd:1: empty user name"}},
		{name: "control character in user", content: "al\x01ice:$apr1$FcY/Fw.W$ZjI9IuakMQb6XfRL6.0i8.\n", want: []string{"users.htpasswd:1: user \"al\\x01ice\" holds control characters"}},
		{name: "empty hash", content: "alice:\n", want: []string{"users.htpasswd:1: user \"alice\": empty hash"}},
		{name: "plain text", content: okLine + "hal:secret\n", want: []string{"users.htpasswd:2: user \"hal\": unsupported hash form (plain text or DES crypt(3)); want bcrypt"}},
		{name: "DES crypt", content: "gus:7.OJOKhG50ank\n", want: []string{"users.htpasswd:1: user \"gus\": unsupported hash form (plain text or DES"}},
		{name: "MD5 crypt", content: "gus:$1$abc$0123456789012345678901\n", want: []string{"users.htpasswd:1: user \"gus\": unsupported hash form (crypt(3) $1$"}},
		{name: "SHA-512 crypt", content: "gus:$6$abc$xyz\n", want: []string{"users.htpasswd:1: user \"gus\": unsupported hash form (crypt(3)"}},
		{name: "truncated bcrypt", content: "carol:$2y$04$JiSVvxfOAf5rogpYCuLOpu8eQA921PXYkLC7FlO.7hCy\n", want: []string{"users.htpasswd:1: user \"carol\": malformed bcrypt hash"}},
		{name: "bcrypt bad cost", content: "carol:$2y$99$JiSVvxfOAf5rogpYCuLOpu8eQA921PXYkLC7FlO.7hCyPvFIa99iK\n", want: []string{"users.htpasswd:1: user \"carol\": malformed bcrypt hash"}},
		{name: "apr1 no digest", content: "alice:$apr1$FcY/Fw.W\n", want: []string{"users.htpasswd:1: user \"alice\": malformed apr1 hash"}},
		{name: "apr1 short digest", content: "alice:$apr1$FcY/Fw.W$ZjI9Iu\n", want: []string{"malformed apr1 hash"}},
		{name: "apr1 long salt", content: "alice:$apr1$FcY/Fw.WXX$ZjI9IuakMQb6XfRL6.0i8.\n", want: []string{"malformed apr1 hash"}},
		{name: "apr1 bad characters", content: "alice:$apr1$FcY/Fw.W$ZjI9IuakMQb6XfRL6.0i8!\n", want: []string{"malformed apr1 hash"}},
		{name: "SHA not base64", content: "bob:{SHA}not base64!\n", want: []string{"users.htpasswd:1: user \"bob\": malformed {SHA} hash"}},
		{name: "SHA wrong length", content: "bob:{SHA}c2VjcmV0\n", want: []string{"malformed {SHA} hash"}},
		{name: "duplicate user", content: okLine + "# x\n" + okLine, want: []string{"users.htpasswd:3: duplicate user \"carol\" (first at line 1)"}},
		{name: "every problem at once", content: "a\nb:secret\n:x\n",
			want: []string{"users.htpasswd:1: want user:hash", "users.htpasswd:2: user \"b\": unsupported", "users.htpasswd:3: empty user name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "users.htpasswd")
			if err := os.WriteFile(p, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, _, err := basicParseHtpasswd(p)
			if err == nil {
				t.Fatal("basicParseHtpasswd succeeded, want an error")
			}
			if !strings.Contains(err.Error(), p) {
				t.Errorf("error %q does not name the file by its path", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q, want it to contain %q", err, w)
				}
			}
			for _, secret := range []string{"secret", "7.OJOKhG50ank", "ZjI9Iu", "JiSVvx"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q quotes a password or hash", err)
				}
			}
		})
	}
}

// FuzzHtpasswd: any file content loads or fails with an error naming the
// file, never panics, and what loads has users with hashes of a known
// kind.
func FuzzHtpasswd(f *testing.F) {
	f.Add("carol:$2y$04$JiSVvxfOAf5rogpYCuLOpu8eQA921PXYkLC7FlO.7hCyPvFIa99iK\n")
	f.Add("alice:$apr1$FcY/Fw.W$ZjI9IuakMQb6XfRL6.0i8.\r\nbob:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n# c\n")
	f.Add("a:$apr1$$\n:\n\n$2y$:x")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, content string) {
		p := filepath.Join(dir, "users.htpasswd")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		users, _, err := basicParseHtpasswd(p)
		if err != nil {
			if !strings.Contains(err.Error(), "users.htpasswd") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		for u, h := range users {
			if u == "" || h == nil {
				t.Fatalf("loaded user %q with hash %v", u, h)
			}
			h.verify([]byte("x"))
		}
	})
}

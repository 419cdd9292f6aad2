// Command policies writes the credentials of bench/proxy/run.sh's policy
// rows into a directory: an API key file and the key to send (apikey),
// a JWKS file and a token its key signed (token, valid for a day).
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"flag"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

func main() {
	dir := flag.String("dir", ".", "directory to write keys.txt, apikey, jwks.json and token into")
	flag.Parse()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(*dir, name), []byte(content), 0o600); err != nil {
			log.Fatal(err)
		}
	}
	write("keys.txt", "bench:bench-key-0123456789abcdef\n")
	write("apikey", "bench-key-0123456789abcdef")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	set, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "bench", Algorithm: "ES256", Use: "sig"}}})
	if err != nil {
		log.Fatal(err)
	}
	write("jwks.json", string(set))
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "bench"))
	if err != nil {
		log.Fatal(err)
	}
	now := time.Now()
	tok, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: "https://idp.bench", Subject: "bench-user", Audience: jwt.Audience{"bench"},
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(24 * time.Hour))}).Serialize()
	if err != nil {
		log.Fatal(err)
	}
	write("token", tok)
}

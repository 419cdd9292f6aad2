package auth

import (
	"crypto/md5"  //nolint:gosec // apr1 is MD5-based by definition; kept for existing htpasswd files, with a warning.
	"crypto/sha1" //nolint:gosec // {SHA} is SHA-1 by definition; kept for existing htpasswd files, with a warning.
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// basicHashKind is the form of an htpasswd hash.
type basicHashKind int

const (
	basicBcrypt basicHashKind = iota // $2y$, $2a$, $2b$
	basicAPR1                        // $apr1$: Apache's MD5-crypt, 1000 MD5 rounds
	basicSHA                         // {SHA}: one unsalted SHA-1
)

func (k basicHashKind) String() string {
	switch k {
	case basicBcrypt:
		return "bcrypt"
	case basicAPR1:
		return "apr1"
	default:
		return "sha1"
	}
}

// basicHash is one user's parsed htpasswd hash.
type basicHash struct {
	kind basicHashKind
	full []byte // bcrypt: the whole hash, as bcrypt wants it
	salt []byte // apr1
	sum  []byte // apr1: the 22-character encoded digest; {SHA}: the 20-byte digest
}

// verify reports whether password matches h, in time independent of how
// much of the password is right.
func (h *basicHash) verify(password []byte) bool {
	switch h.kind {
	case basicBcrypt:
		return bcrypt.CompareHashAndPassword(h.full, password) == nil
	case basicAPR1:
		return subtle.ConstantTimeCompare(basicAPR1Sum(password, h.salt), h.sum) == 1
	default:
		s := sha1.Sum(password) //nolint:gosec // see import
		return subtle.ConstantTimeCompare(s[:], h.sum) == 1
	}
}

// basicParseHtpasswd parses an htpasswd file: "user:hash" lines, blank
// lines and "#" comments ignored. It returns the users, the users whose
// hashes are weak (apr1, SHA-1), and every problem, each naming file:line.
// Plain-text and crypt(3) (DES, $1$, $5$, $6$) hashes are refused: the
// first stores the password, the others Apache itself does not verify
// everywhere, and a gateway must not guess.
func basicParseHtpasswd(file string) (users map[string]*basicHash, weak []string, err error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, fmt.Errorf("htpasswd: %w", err)
	}
	users = map[string]*basicHash{}
	firstAt := map[string]int{}
	var errs []error
	for i, line := range strings.Split(string(data), "\n") {
		n := i + 1
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("%s:%d: want user:hash", file, n))
			continue
		case user == "":
			errs = append(errs, fmt.Errorf("%s:%d: empty user name", file, n))
			continue
		case strings.ContainsFunc(user, func(r rune) bool { return r < ' ' || r == 0x7f }):
			// Such a user could never log in (RFC 7617 forbids them).
			errs = append(errs, fmt.Errorf("%s:%d: user %q holds control characters", file, n, user))
			continue
		}
		if prev, dup := firstAt[user]; dup {
			errs = append(errs, fmt.Errorf("%s:%d: duplicate user %q (first at line %d)", file, n, user, prev))
			continue
		}
		h, err := basicParseHash(hash)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: user %q: %w", file, n, user, err))
			continue
		}
		firstAt[user] = n
		users[user] = h
		if h.kind != basicBcrypt {
			weak = append(weak, user)
		}
	}
	if len(errs) == 0 && len(users) == 0 {
		errs = append(errs, fmt.Errorf("%s: no users", file))
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	return users, weak, nil
}

// basicParseHash recognises one hash; its errors never quote the hash.
func basicParseHash(s string) (*basicHash, error) {
	switch {
	case strings.HasPrefix(s, "$2y$"), strings.HasPrefix(s, "$2a$"), strings.HasPrefix(s, "$2b$"):
		if _, err := bcrypt.Cost([]byte(s)); err != nil || len(s) != 60 {
			return nil, errors.New("malformed bcrypt hash (want 60 characters, $2y$NN$...)")
		}
		return &basicHash{kind: basicBcrypt, full: []byte(s)}, nil
	case strings.HasPrefix(s, "$apr1$"):
		salt, sum, ok := strings.Cut(strings.TrimPrefix(s, "$apr1$"), "$")
		if !ok || salt == "" || len(salt) > 8 || len(sum) != 22 || !basicIsCryptB64(salt) || !basicIsCryptB64(sum) {
			return nil, errors.New("malformed apr1 hash (want $apr1$<salt up to 8>$<22 characters>)")
		}
		return &basicHash{kind: basicAPR1, salt: []byte(salt), sum: []byte(sum)}, nil
	case strings.HasPrefix(s, "{SHA}"):
		b, err := base64.StdEncoding.Strict().DecodeString(strings.TrimPrefix(s, "{SHA}"))
		if err != nil || len(b) != sha1.Size {
			return nil, errors.New("malformed {SHA} hash (want {SHA} and base64 of 20 bytes)")
		}
		return &basicHash{kind: basicSHA, sum: b}, nil
	case s == "":
		return nil, errors.New("empty hash")
	case strings.HasPrefix(s, "$"):
		return nil, errors.New("unsupported hash form (crypt(3) $1$, $5$, $6$...); want bcrypt: htpasswd -B")
	default:
		return nil, errors.New("unsupported hash form (plain text or DES crypt(3)); want bcrypt: htpasswd -B")
	}
}

const basicCryptB64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

func basicIsCryptB64(s string) bool {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(basicCryptB64, s[i]) < 0 {
			return false
		}
	}
	return true
}

// basicAPR1Sum is Apache's MD5-crypt ("$apr1$"; Poul-Henning Kamp's
// FreeBSD MD5-crypt with another magic string): it returns the 22-character
// encoded digest of password with salt (at most 8 bytes are used).
func basicAPR1Sum(password, salt []byte) []byte {
	const magic = "$apr1$"
	if len(salt) > 8 {
		salt = salt[:8]
	}
	// The alternate sum: password, salt, password.
	alt := md5.New() //nolint:gosec // see import
	alt.Write(password)
	alt.Write(salt)
	alt.Write(password)
	altSum := alt.Sum(nil)

	d := md5.New() //nolint:gosec // see import
	d.Write(password)
	d.Write([]byte(magic))
	d.Write(salt)
	for n := len(password); n > 0; n -= 16 {
		d.Write(altSum[:min(n, 16)])
	}
	// The original's odd bit walk: a zero byte for each set bit of the
	// length, the password's first byte for each clear one.
	for n := len(password); n > 0; n >>= 1 {
		if n&1 != 0 {
			d.Write([]byte{0})
		} else {
			d.Write(password[:1])
		}
	}
	sum := d.Sum(nil)

	// 1000 rounds, meant to slow guessing down (in 1996).
	for i := range 1000 {
		r := md5.New() //nolint:gosec // see import
		if i&1 != 0 {
			r.Write(password)
		} else {
			r.Write(sum)
		}
		if i%3 != 0 {
			r.Write(salt)
		}
		if i%7 != 0 {
			r.Write(password)
		}
		if i&1 != 0 {
			r.Write(sum)
		} else {
			r.Write(password)
		}
		sum = r.Sum(sum[:0])
	}

	// crypt's own base64: little-endian groups of three bytes in a
	// shuffled order, then the last byte alone.
	out := make([]byte, 0, 22)
	enc := func(v uint32, n int) {
		for ; n > 0; n-- {
			out = append(out, basicCryptB64[v&0x3f])
			v >>= 6
		}
	}
	for _, g := range [][3]int{{0, 6, 12}, {1, 7, 13}, {2, 8, 14}, {3, 9, 15}, {4, 10, 5}} {
		enc(uint32(sum[g[0]])<<16|uint32(sum[g[1]])<<8|uint32(sum[g[2]]), 4)
	}
	enc(uint32(sum[11]), 2)
	return out
}

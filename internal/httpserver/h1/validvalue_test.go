package h1

import "testing"

// TestValidValue: the word-at-a-time check agrees with the byte loop for
// every byte at every position of a 16-byte value.
func TestValidValue(t *testing.T) {
	for pos := range 16 {
		for c := range 256 {
			v := []byte("abcdefgh\xe9ijklmno")
			v[pos] = byte(c)
			if got, want := validValue(v), validBytes(v); got != want {
				t.Fatalf("validValue(%q) = %v, want %v", v, got, want)
			}
		}
	}
}

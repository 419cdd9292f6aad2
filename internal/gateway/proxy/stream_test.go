package proxy

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// frame builds a WebSocket frame header and payload.
func frame(op byte, payload []byte, masked bool) []byte {
	b := []byte{0x80 | op}
	mask := byte(0)
	if masked {
		mask = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		b = append(b, mask|byte(n))
	case n < 1<<16:
		b = append(b, mask|126, byte(n>>8), byte(n))
	default:
		b = append(b, mask|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if masked {
		b = append(b, 1, 2, 3, 4)
	}
	return append(b, payload...)
}

func TestWSFrames(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 70000)
	tests := []struct {
		name      string
		stream    []byte
		boundary  bool
		closeSeen bool
	}{
		{"empty", nil, true, false},
		{"one text frame", frame(1, []byte("hello"), false), true, false},
		{"half a header", frame(1, []byte("hello"), false)[:1], false, false},
		{"header without payload", frame(1, []byte("hello"), false)[:2], false, false},
		{"payload cut", frame(1, []byte("hello"), false)[:5], false, false},
		{"16-bit length", frame(2, big[:300], false), true, false},
		{"16-bit length cut in the length", frame(2, big[:300], false)[:3], false, false},
		{"64-bit length", frame(2, big, false), true, false},
		{"64-bit length cut", frame(2, big, false)[:1000], false, false},
		{"masked", frame(1, []byte("hi"), true), true, false},
		{"masked cut in the key", frame(1, []byte("hi"), true)[:4], false, false},
		{"empty ping", frame(9, nil, false), true, false},
		{"close frame", append(frame(1, []byte("a"), false), frame(8, []byte{3, 232}, false)...), true, true},
		{"two frames", append(frame(1, []byte("a"), false), frame(1, big[:200], false)...), true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Fed whole and byte by byte: writes never align with frames.
			for _, step := range []int{len(tt.stream) + 1, 1, 7} {
				var f wsFrames
				for i := 0; i < len(tt.stream); i += step {
					f.feed(tt.stream[i:min(i+step, len(tt.stream))])
				}
				if f.atBoundary() != tt.boundary || f.closeSeen != tt.closeSeen {
					t.Errorf("step %d: atBoundary() = %v, closeSeen = %v; want %v, %v", step, f.atBoundary(), f.closeSeen, tt.boundary, tt.closeSeen)
				}
			}
		})
	}
}

func TestWSCloseFrame(t *testing.T) {
	got := wsCloseFrame(1001, "idle timeout")
	want := append([]byte{0x88, 14, 0x03, 0xe9}, "idle timeout"...)
	if !bytes.Equal(got, want) {
		t.Errorf("wsCloseFrame() = %x, want %x", got, want)
	}
	if long := wsCloseFrame(1001, string(bytes.Repeat([]byte("r"), 200))); len(long) != 127 || long[1] != 125 {
		t.Errorf("a long reason makes a %d-byte frame with length %d, want 127 and 125 (control frames carry at most 125)", len(long), long[1])
	}
}

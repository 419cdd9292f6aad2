package ingress

import (
	"bufio"
	"bytes"
	"slices"
)

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }

func sortStrings(s []string) { slices.Sort(s) }

// Command gotest runs `go test -json` with the arguments it is given,
// prints the output as `go test -v` would, and ends with a digest: each
// failed test, and the last lines of those that failed themselves (not
// through a subtest). The e2e suite's log is long (a failed test dumps its
// namespace's pods and logs), and CI shows only its tail: the digest is
// where a failure reads first.
//
//	go run ./hack/gotest -tags e2e -run TestSystem ./test/e2e/
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
)

// event is the part of test2json's TestEvent used here.
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

// tailLines of a failed test's own output are shown in the digest.
const tailLines = 30

func main() {
	cmd := exec.Command("go", append([]string{"test", "-json"}, os.Args[1:]...)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		fatal(err)
	}
	if err := cmd.Start(); err != nil {
		fatal(err)
	}
	var failed []string            // "package test", in the order they failed
	tails := map[string][]string{} // last output lines, by "package test"
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Action == "" {
			fmt.Println(sc.Text()) // not an event: pass it on
			continue
		}
		key := strings.TrimSpace(e.Package + " " + e.Test)
		switch e.Action {
		case "output", "build-output":
			fmt.Print(e.Output)
			if strings.HasPrefix(e.Output, "=== ") || strings.HasPrefix(e.Output, "--- ") {
				continue // frames: RUN, PAUSE, CONT, PASS…
			}
			if t := append(tails[key], e.Output); len(t) > tailLines {
				tails[key] = t[len(t)-tailLines:]
			} else {
				tails[key] = t
			}
		case "fail":
			failed = append(failed, key)
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "gotest: reading go test's output:", err)
	}
	err = cmd.Wait()
	if len(failed) > 0 {
		fmt.Printf("\n=== gotest: %d failed; the last %d lines of each that failed itself\n", len(failed), tailLines)
		for _, key := range failed {
			fmt.Printf("--- FAIL: %s\n", key)
			if !slices.ContainsFunc(failed, func(k string) bool { return within(k, key) }) {
				fmt.Print(strings.Join(tails[key], ""))
			}
		}
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		os.Exit(exit.ExitCode())
	} else if err != nil {
		fatal(err)
	}
}

// within reports whether test key k is a subtest of parent, or a test of
// package parent.
func within(k, parent string) bool {
	return strings.HasPrefix(k, parent+"/") || !strings.Contains(parent, " ") && strings.HasPrefix(k, parent+" ")
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "gotest:", err)
	os.Exit(2)
}

// Command flotilla runs the Flotilla services and tools; see `flotilla --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"

	"github.com/flotilla-dev/flotilla/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], cli.OSEnv(term.IsTerminal(int(os.Stdout.Fd()))))
	stop()
	os.Exit(code)
}

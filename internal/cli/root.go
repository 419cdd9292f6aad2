// Package cli holds the flotilla subcommands: it parses flags, wires
// components and maps outcomes to exit codes. It is the only place that
// imports several app packages.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/flotilla-dev/flotilla/internal/flagenv"
	"github.com/flotilla-dev/flotilla/internal/logging"
)

// Exit codes.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
)

// usageError marks a problem with flags, env or arguments: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usage(err error) error {
	if err == nil {
		return nil
	}
	return usageError{err}
}

// Env is what a command sees of its process; tests substitute their own.
type Env struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	LookupEnv      func(string) (string, bool)
	// IsTerminal reports whether Stdout is a terminal.
	IsTerminal bool
}

// OSEnv returns the real process environment.
func OSEnv(isTerminal bool) Env {
	return Env{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, LookupEnv: os.LookupEnv, IsTerminal: isTerminal}
}

type globals struct {
	logFormat, logLevel string
	env                 Env
}

func (g *globals) logger() *slog.Logger {
	l, err := logging.New(g.env.Stderr, g.logFormat, g.logLevel)
	if err != nil { // validated in PersistentPreRunE
		panic(err)
	}
	return l
}

// Run executes the command line args and returns the process exit code.
func Run(ctx context.Context, args []string, env Env) int {
	g := &globals{env: env}
	root := &cobra.Command{
		Use:           "flotilla",
		Short:         "Flotilla: the talk's micro-services system on Kubernetes, in Go",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := flagenv.Apply(cmd.Flags(), env.LookupEnv); err != nil {
				return usage(err)
			}
			var errs []error
			if _, err := logging.New(io.Discard, g.logFormat, g.logLevel); err != nil {
				errs = append(errs, flagenv.Errorf("log-format/--log-level", "%v", err))
			}
			return usage(errors.Join(errs...))
		},
	}
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	root.SetArgs(args)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usage(err) })
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "json", `log format: "json" or "text"`)
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	root.AddCommand(
		newVersionCmd(g),
		newCounterCmd(g),
		newDemoCmd(g),
		newUpCmd(g),
		newSmokeCmd(g),
		newGatewayCmd(g),
		newLoadCmd(g),
	)
	for _, c := range root.Commands() {
		flagenv.Document(c.Flags())
		if c.Args == nil {
			c.Args = func(cmd *cobra.Command, args []string) error { return usage(cobra.NoArgs(cmd, args)) }
		}
	}
	flagenv.Document(root.PersistentFlags())

	err := root.ExecuteContext(ctx)
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, new(usageError)) || isCobraUsage(err):
		fmt.Fprintf(env.Stderr, "flotilla: %v\nRun 'flotilla --help' for usage.\n", err)
		return ExitUsage
	default:
		fmt.Fprintf(env.Stderr, "flotilla: %v\n", err)
		return ExitError
	}
}

// isCobraUsage recognises cobra's unknown-command error, which it returns
// as a plain error.
func isCobraUsage(err error) bool {
	return strings.HasPrefix(err.Error(), "unknown command")
}

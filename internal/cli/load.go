package cli

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/flotilla-dev/flotilla/internal/load"
)

func newLoadCmd(g *globals) *cobra.Command {
	var cfg load.Config
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "load URL",
		Short: "Send bounded load to a URL and watch which versions answer",
		Long: `Send load to URL and show, live, which versions answer (from the
X-Flotilla-Version header), status codes, errors by kind and latency
percentiles; then a summary.

Open loop (--rate) starts requests on schedule whatever the latency and
measures latency from when each was due, so stalls show. Closed loop
(--concurrency) runs N workers back to back. --duration or --requests bounds
the run. Ctrl-C stops early and still prints the summary.

Exit status: 0 ok, 1 when the error rate is above --max-error-rate or a
version outside --expect-version answered, 2 for a usage error.`,
		Example: `  flotilla load http://localhost:8080/counter --rate 200 --duration 30s
  flotilla load http://localhost:8080/counter -c 32 -n 100000 --json
  flotilla load http://localhost:8080/counter -r 50 -d 2m --expect-version v2 --max-error-rate 0.001`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usage(fmt.Errorf("URL argument: want exactly one URL, got %d arguments", len(args)))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg.URL = args[0]
			if err := cfg.Validate(); err != nil {
				return usage(err)
			}
			// With --json, stdout carries only the JSON; the progress lines
			// go to stderr.
			opts := load.Options{Out: g.env.Stdout, TTY: g.env.IsTerminal}
			if asJSON {
				opts = load.Options{Out: g.env.Stderr}
			}
			s, err := load.Run(cmd.Context(), cfg, opts)
			if err != nil {
				return usage(err)
			}
			if asJSON {
				enc := json.NewEncoder(g.env.Stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(s); err != nil {
					return err
				}
			}
			if len(s.Failures) > 0 {
				return fmt.Errorf("load: %s", strings.Join(s.Failures, "; "))
			}
			return nil
		},
	}
	cfg.Flags(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the summary as JSON on stdout (progress lines go to stderr)")
	return cmd
}

package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"github.com/flotilla-dev/flotilla/internal/flagenv"
)

// newSmokeCmd is the check `helm test` runs: the counter answers through
// the given URL and its count grows with every request.
func newSmokeCmd(g *globals) *cobra.Command {
	var (
		host    string
		times   int
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "smoke URL",
		Short: "Check that the counter at URL answers and its count grows (used by helm test)",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usage(fmt.Errorf("smoke: want exactly one URL, got %d arguments", len(args)))
			}
			u, err := url.Parse(args[0])
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return usage(fmt.Errorf("smoke: want an http(s) URL, got %q", args[0]))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if times < 2 { // here, not in Args: env values are applied after Args runs
				return usage(flagenv.Errorf("times", "must be at least 2, got %d", times))
			}
			return smoke(cmd.Context(), g.env.Stdout, args[0], host, times, timeout)
		},
	}
	cmd.Flags().StringVar(&host, "host", "", "Host header to send (e.g. flaskapp.test)")
	cmd.Flags().IntVar(&times, "times", 2, "requests to send; each must see a larger count")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Second, "timeout of each request")
	return cmd
}

func smoke(ctx context.Context, out io.Writer, target, host string, times int, timeout time.Duration) error {
	client := &http.Client{Timeout: timeout}
	var last int64
	for i := range times {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Accept", "application/json")
		if host != "" {
			req.Host = host
		}
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("request %d: %w", i+1, err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("request %d: reading the answer: %w", i+1, err)
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("request %d: %s: %.200s", i+1, resp.Status, body)
		}
		var got struct {
			Instance string `json:"instance"`
			Version  string `json:"version"`
			Count    *int64 `json:"count"`
		}
		if err := json.Unmarshal(body, &got); err != nil || got.Count == nil {
			return fmt.Errorf("request %d: not a counter answer: %.200s", i+1, body)
		}
		fmt.Fprintf(out, "[%s] %s count=%d\n", got.Instance, got.Version, *got.Count)
		if i > 0 && *got.Count <= last {
			return errors.New("the count did not grow: is every counter replica using the same Redis?")
		}
		last = *got.Count
	}
	fmt.Fprintln(out, "ok: the count grew with every request")
	return nil
}

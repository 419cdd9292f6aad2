// Package flagenv gives every command-line flag an environment variable
// equivalent, FLOTILLA_<FLAG_NAME>, with the precedence flag > env > default,
// and formats configuration errors so they name both.
package flagenv

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"
)

// Prefix starts every environment variable name.
const Prefix = "FLOTILLA_"

// EnvName is the environment variable for a flag: "redis-addr" → FLOTILLA_REDIS_ADDR.
func EnvName(flag string) string {
	return Prefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// Errorf returns a configuration error naming flag and its env var:
// "--redis-db (FLOTILLA_REDIS_DB): must be 0..15, got 20".
func Errorf(flag, format string, args ...any) error {
	return fmt.Errorf("--%s (%s): %s", flag, EnvName(flag), fmt.Sprintf(format, args...))
}

// Document appends "[$FLOTILLA_…]" to every flag's usage so --help shows it.
func Document(fs *pflag.FlagSet) {
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Name == "help" {
			return
		}
		f.Usage += " [$" + EnvName(f.Name) + "]"
	})
}

// Apply sets every flag not given on the command line from its environment
// variable, if set. lookup is os.LookupEnv in production. It reports every
// malformed value at once.
func Apply(fs *pflag.FlagSet, lookup func(string) (string, bool)) error {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || f.Name == "help" {
			return
		}
		v, ok := lookup(EnvName(f.Name))
		if !ok {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, Errorf(f.Name, "invalid value %q from environment: %v", v, unwrapParse(err)))
		}
	})
	return errors.Join(errs...)
}

// unwrapParse trims pflag's own "invalid argument … for … flag" wrapper,
// which names the flag again.
func unwrapParse(err error) error {
	if u := errors.Unwrap(err); u != nil {
		return u
	}
	return err
}

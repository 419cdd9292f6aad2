#!/usr/bin/env bash
# Runs every native fuzz target in the module for $1 (default 20s) each;
# $2 limits it to the packages matching a go list pattern (default ./...).
# FUZZ_PARALLEL sets the fuzzing workers (default: GOMAXPROCS); on a
# shared machine, 1. Failing inputs land in the package's
# testdata/fuzz/<Target>/ and run as seeds from then on.
#
#   hack/fuzz.sh 5m ./internal/httpserver/...   # FuzzServe, FuzzChunked
set -euo pipefail
fuzztime=${1:-20s}
pattern=${2:-./...}
parallel=()
if [ -n "${FUZZ_PARALLEL:-}" ]; then parallel=(-parallel "$FUZZ_PARALLEL"); fi
for pkg in $(go list "$pattern"); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
    echo "== $pkg $f"
    go test -run '^$' -fuzz "^$f\$" -fuzztime "$fuzztime" "${parallel[@]}" "$pkg"
  done
done

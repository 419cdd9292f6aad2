#!/usr/bin/env bash
# h2spec, the HTTP/2 conformance suite (RFC 7540/9113 and HPACK, 145
# cases), against the gateway as `flotilla up` runs it: over TLS (ALPN h2)
# and over clear text with prior knowledge (h2c). Every case must pass.
set -euo pipefail
cd "$(dirname "$0")/.."
H2SPEC=github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible # what @latest resolves to
bin="${XDG_CACHE_HOME:-$HOME/.cache}/flotilla/bin"
if [[ ! -x "$bin/h2spec" ]]; then
	GOBIN="$bin" go install "$H2SPEC"
fi
tmp=$(mktemp -d)
pid=""
# Stopping flotilla up is not what this checks: its exit status (after
# h2spec's abandoned connections a drain can run out of time) is shown, not
# taken as this script's, which `set -e` would do inside the trap.
cleanup() {
	if [[ -n "$pid" ]] && kill "$pid" 2>/dev/null; then
		local rc=0
		wait "$pid" 2>/dev/null || rc=$?
		if ((rc != 0)); then
			echo "h2spec: note: flotilla up exited $rc on SIGTERM; its last lines:" >&2
			tail -5 "$tmp/up.log" >&2
		fi
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
go build -o "$tmp/flotilla" ./cmd/flotilla
"$tmp/flotilla" up --addr 127.0.0.1:0 --tls-addr 127.0.0.1:0 --tls-dir "$tmp/tls" --log-level warn >"$tmp/up.log" 2>&1 &
pid=$!
for _ in $(seq 100); do grep -q '^Press Ctrl-C' "$tmp/up.log" && break; sleep 0.1; done
clear=$(sed -n 's|^  index    http://127.0.0.1:\([0-9]*\)/$|\1|p' "$tmp/up.log")
secure=$(sed -n 's|^  https    https://127.0.0.1:\([0-9]*\)/ .*|\1|p' "$tmp/up.log")
if [[ -z "$clear" || -z "$secure" ]]; then
	echo "h2spec: flotilla up did not start:" >&2; cat "$tmp/up.log" >&2; exit 1
fi
status=0
for mode in h2c tls; do
	args=(-h 127.0.0.1 -p "$clear" --timeout 5)
	[[ $mode == tls ]] && args=(-t -k -h 127.0.0.1 -p "$secure" --timeout 5)
	if "$bin/h2spec" "${args[@]}" >"$tmp/h2spec-$mode.txt" 2>&1; then
		echo "h2spec $mode: $(tail -1 "$tmp/h2spec-$mode.txt")"
	else
		status=1
		echo "h2spec $mode FAILED:" >&2
		sed -n '/^Failures:/,$p' "$tmp/h2spec-$mode.txt" >&2
	fi
done
exit $status

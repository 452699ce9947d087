#!/usr/bin/env bash
# demo-runtime.sh [RUNTIME] — run berth-whoami in a FROM-scratch-style bundle with
# RUNTIME (default bin/berth-runtime), then clean up. Offline.
set -euo pipefail
cd "$(dirname "$0")/.."
runtime=${1:-bin/berth-runtime}
tmp=$(mktemp -d /tmp/berth-demo.XXXXXX)
id=berth-demo-$$
cleanup() {
	"$runtime" --root "$tmp/state" delete --force "$id" >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT
go run ./scripts/demobundle -dir "$tmp/bundle" -whoami bin/berth-whoami -runtime "$runtime" -cgroups-path "/$id"
echo "+ $runtime --root $tmp/state run --bundle $tmp/bundle $id"
"$runtime" --root "$tmp/state" run --bundle "$tmp/bundle" "$id" </dev/null

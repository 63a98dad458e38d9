#!/usr/bin/env bash
# One command on a fresh Debian 12 machine: installs what is missing, builds, starts
# `nimbus serve` on the embedded default store, deploys examples/hello to production and
# prints its URL. Extra arguments go to `nimbus serve` (e.g. --listen 0.0.0.0:3000).
# Stop with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh nimbus

data="${NIMBUS_DATA:-${XDG_DATA_HOME:-$HOME/.local/share}/nimbus}"
log="$(mktemp -t nimbus-serve.XXXXXX)"
build/nimbus serve --data "$data" "$@" > >(tee "$log") 2>&1 &
serve_pid=$!
trap 'kill "$serve_pid" 2>/dev/null || true; rm -f "$log"' EXIT INT TERM

ready=""
for _ in $(seq 1 100); do
  ready="$(grep -m1 '^nimbus ready ' "$log" || true)"
  [[ -n "$ready" ]] && break
  kill -0 "$serve_pid" 2>/dev/null || { echo "error: nimbus serve exited; see the lines above" >&2; exit 1; }
  sleep 0.1
done
[[ -n "$ready" ]] || { echo "error: nimbus serve did not become ready" >&2; exit 1; }
api="$(sed -E 's/.*"api":"([^"]+)".*/\1/' <<<"$ready")"

build/nimbus --api "http://$api" --data "$data" deploy examples/hello --project hello --prod
echo
echo "Open the example: the 'Production:' URL above (http://hello.localhost:<port>/)."
echo "Deploy your own: build/nimbus deploy <folder with .vercel/output> --prod"
echo "Press Ctrl-C to stop."
wait "$serve_pid"

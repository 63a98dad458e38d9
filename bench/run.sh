#!/usr/bin/env bash
# Runs every benchmark (bench/*/run.sh) in turn. Environment variables (NIMBUS_BIN,
# DURATION, CONNECTIONS, ...) are passed through. Exits 1 if any benchmark failed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# Install what the benchmarks need (nginx, wrk, build tools) and build, unless told to use a
# given binary.
if [[ -z "${NIMBUS_BIN:-}" ]]; then
  "$here/../scripts/install-deps.sh" --bench
  "$here/../scripts/build.sh"
  export NIMBUS_BIN="$here/../build/nimbus"
fi
failed=()
ran=0
for script in "$here"/*/run.sh; do
  [[ -f "$script" ]] || continue
  name="$(basename "$(dirname "$script")")"
  ran=$((ran + 1))
  echo "=== bench/$name ==="
  if bash "$script"; then
    echo "=== bench/$name: ok ==="
  else
    rc=$?
    echo "=== bench/$name: FAILED (exit $rc) ===" >&2
    failed+=("$name")
  fi
  echo
done

((ran > 0)) || { echo "no benchmarks found under $here/*/run.sh" >&2; exit 1; }
if ((${#failed[@]})); then
  echo "failed: ${failed[*]}" >&2
  exit 1
fi
echo "all $ran benchmark(s) passed"

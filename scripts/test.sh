#!/usr/bin/env bash
# One command on a fresh Debian 12 machine: installs what is missing, builds, and runs every
# test (unit tests and the end-to-end suite that starts the real binary).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
cd build
ctest --output-on-failure -j2 --timeout 900

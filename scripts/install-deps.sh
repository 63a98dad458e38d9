#!/usr/bin/env bash
# Installs the Debian 12 packages Nimbus builds, runs and tests with; installs only what is
# missing, so it is quick when everything is there. Needs root (or sudo).
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libssl-dev libsqlite3-dev libpq-dev libpcre2-dev libseccomp-dev
  libcli11-dev libspdlog-dev libfmt-dev libgtest-dev libgmock-dev
  zlib1g-dev libbrotli-dev
  python3 curl
)
# Node.js runs the function launchers (>= 20). A node already on PATH (e.g. from
# nodesource or nvm) is used as it is; otherwise Debian's nodejs and npm are installed.
if ! command -v node >/dev/null; then packages+=(nodejs); fi
if ! command -v npm >/dev/null; then packages+=(npm); fi
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(nginx-light wrk)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# npm packages the runtimes need (esbuild for edge bundling), from package-lock.json.
install_npm() {
  local dir=runtimes/edge
  cd "$(dirname "$0")/.."
  if [[ ! -d $dir/node_modules/esbuild || $dir/package-lock.json -nt $dir/node_modules/.package-lock.json ]]; then
    echo "npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --silent)
  fi
}
if ((${#missing[@]} == 0)); then
  install_npm
  exit 0
fi

echo "Installing: ${missing[*]}"
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "error: run as root or install sudo" >&2; exit 1; }
  sudo_cmd=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
install_npm

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
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then
  sudo_cmd=(sudo)
fi

# The launchers need Node.js >= 20; Debian 12's nodejs is 18, so an older node gets the
# npm package `node` (official builds, from the npm registry) on top.
ensure_node() {
  local major
  major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  if ((major < 20)); then
    echo "Node.js $(node --version 2>/dev/null || echo missing) is older than 20; npm install -g node@22"
    "${sudo_cmd[@]}" npm install -g --no-audit --no-fund node@22
    hash -r
  fi
}

# npm packages the runtimes need (esbuild for edge bundling), from package-lock.json.
install_npm() {
  local dir=runtimes/edge
  cd "$(dirname "$0")/.."
  if [[ ! -d $dir/node_modules/esbuild || $dir/package-lock.json -nt $dir/node_modules/.package-lock.json ]]; then
    echo "npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --silent)
  fi
}

if ((${#missing[@]} > 0)); then
  echo "Installing: ${missing[*]}"
  if ((${#sudo_cmd[@]} > 0)) && ! command -v sudo >/dev/null; then
    echo "error: run as root or install sudo" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
ensure_node
install_npm

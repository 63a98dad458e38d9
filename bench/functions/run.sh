#!/usr/bin/env bash
# bench/functions: Node.js functions through nimbus next to a peer measured in the same run,
# printed as ratios (README.md in this directory has the method):
#
#   cold   hello-world cold start at zero instances (one deployment with functions
#          f0..f<N-1>, each requested once on a keep-alive connection)  vs  spawning
#          `node server.js` until its first response
#   warm   wrk -> nimbus -> the function (warmed)  vs  wrk -> nginx -> node server.js
#   burst  100 requests at once on 100 connections to a function with no instance  vs
#          the same 100 requests to a `node server.js` spawned at that moment
#
# The server side (nimbus and its node processes, or nginx / node server.js) is pinned to
# SERVER_CPU, the clients (wrk, client.py) to CLIENT_CPU. The nimbus binary is copied to
# the temp dir first, so a rebuild during the run does not change what is measured.
#
# Environment (all optional):
#   NIMBUS_BIN     nimbus binary                    (default: <repo>/build/nimbus)
#   RUNTIMES       launchers dir (--runtimes)       (default: <repo>/runtimes)
#   NODE           node binary                      (default: node on PATH)
#   PARTS          which parts to run               (default: "cold warm burst")
#   SAMPLES        cold starts measured (functions) (default: 200)
#   PEER_SAMPLES   peer spawns wanted               (default: 200)
#   PEER_BUDGET_S  stop peer spawns after this long, once PEER_MIN were taken (default: 45)
#   PEER_MIN       fewest peer spawns               (default: 50)
#   PAUSE_MS       pause after each cold sample     (default: 30)
#   POOL_WAIT      1: after the pause, also wait until the stem-cell pool is full again;
#                  0: the fixed pause only (misses show how far the pool falls behind)
#                                                   (default: 1)
#   STEM_CELLS     --stem-cells for every nimbus    (default: 2, nimbus's default)
#   COLD_KEEP_ALIVE --keep-alive (s) in the cold part, so used instances leave (default: 2)
#   DURATION / WARMUP / CONNECTIONS  wrk in the warm part (default: 10s / 2s / 50)
#   BURST          requests per burst               (default: 100)
#   BURST_ROUNDS   bursts, each on a fresh function (default: 3)
#   NIMBUS_FLAGS   extra `nimbus serve` flags for the warm and burst parts, e.g.
#                  "--concurrency 100" (default: none = nimbus's defaults)
#   SERVER_CPU / CLIENT_CPU                         (default: 0 / 1)
#   RESULTS        where the raw numbers go (JSON)  (default: a new temp dir)
#   KEEP_TMP=1     keep the temp dir (logs, data dirs, raw client output)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

NIMBUS_BIN="${NIMBUS_BIN:-$repo/build/nimbus}"
RUNTIMES="${RUNTIMES:-$repo/runtimes}"
NODE="${NODE:-node}"
PARTS="${PARTS:-cold warm burst}"
SAMPLES="${SAMPLES:-200}"
PEER_SAMPLES="${PEER_SAMPLES:-200}"
PEER_BUDGET_S="${PEER_BUDGET_S:-45}"
PEER_MIN="${PEER_MIN:-50}"
PAUSE_MS="${PAUSE_MS:-30}"
POOL_WAIT="${POOL_WAIT:-1}"
STEM_CELLS="${STEM_CELLS:-2}"
COLD_KEEP_ALIVE="${COLD_KEEP_ALIVE:-2}"
DURATION="${DURATION:-10s}"
WARMUP="${WARMUP:-2s}"
CONNECTIONS="${CONNECTIONS:-50}"
BURST="${BURST:-100}"
BURST_ROUNDS="${BURST_ROUNDS:-3}"
NIMBUS_FLAGS="${NIMBUS_FLAGS:-}"
SERVER_CPU="${SERVER_CPU:-0}"
CLIENT_CPU="${CLIENT_CPU:-1}"
KEEP_TMP="${KEEP_TMP:-0}"

log() { printf '[bench/functions %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { printf '[bench/functions] FAIL: %s\n' "$*" >&2; exit 1; }
# shellcheck source=../lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
want() { [[ " $PARTS " == *" $1 "* ]]; }

# ---------------------------------------------------------------- prerequisites
missing=()
for tool in wrk nginx curl taskset python3 "$NODE"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
  echo "bench/functions: missing tools: ${missing[*]}" >&2
  echo "install them, e.g.:  scripts/install-deps.sh --bench   (apt-get install -y nginx-light wrk curl util-linux python3 nodejs)" >&2
  exit 1
fi
NODE="$(command -v "$NODE")"
for p in $PARTS; do
  [[ "$p" == cold || "$p" == warm || "$p" == burst ]] || die "PARTS may only contain cold, warm, burst (got '$p')"
done
[[ -x "$NIMBUS_BIN" ]] || die "nimbus binary not found or not executable: $NIMBUS_BIN (build it, or set NIMBUS_BIN)"
[[ -r "$RUNTIMES/node/launcher.mjs" ]] || die "no node launcher at $RUNTIMES/node/launcher.mjs (set RUNTIMES)"
ncpu="$(nproc)"
((SERVER_CPU < ncpu && CLIENT_CPU < ncpu)) ||
  die "need CPUs $SERVER_CPU and $CLIENT_CPU but only $ncpu available (set SERVER_CPU/CLIENT_CPU)"
[[ "$SERVER_CPU" != "$CLIENT_CPU" ]] || die "SERVER_CPU and CLIENT_CPU must differ"
for v in SAMPLES PEER_SAMPLES PEER_MIN CONNECTIONS BURST BURST_ROUNDS STEM_CELLS; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || die "$v must be a number (got '${!v}')"
done
((SAMPLES >= 1 && BURST >= 1 && BURST_ROUNDS >= 1)) || die "SAMPLES, BURST and BURST_ROUNDS must be at least 1"

to_seconds() {
  case "$1" in
    *s) echo "${1%s}" ;;
    *m) echo $(( ${1%m} * 60 )) ;;
    *)  echo "$1" ;;
  esac
}
dur_s="$(to_seconds "$DURATION")"; warm_s="$(to_seconds "$WARMUP")"
[[ "$dur_s" =~ ^[0-9]+$ && "$warm_s" =~ ^[0-9]+$ ]] ||
  die "DURATION/WARMUP must look like 10s, 1m or 10 (got '$DURATION', '$WARMUP')"
wrk_timeout=$((dur_s + 30))

# ---------------------------------------------------------------- temp dir + cleanup
tmp="$(mktemp -d "${TMPDIR:-/tmp}/nimbus-bench-functions.XXXXXX")"
chmod 755 "$tmp"
if [[ -z "${RESULTS:-}" ]]; then
  RESULTS="$(mktemp -d "${TMPDIR:-/tmp}/nimbus-bench-functions-results.XXXXXX")/results.json"
fi
raw="$tmp/raw"
mkdir -p "$raw"
# A private copy of the binary: build/nimbus may be rebuilt while this runs.
cp "$NIMBUS_BIN" "$tmp/nimbus"
nimbus="$tmp/nimbus"
# What was measured: the binary's hash and time, the repository's commit (the runtimes are
# used in place) and whether its tree had changes.
binary_sha="$(sha256sum "$nimbus" | cut -c1-16)"
binary_mtime="$(date -r "$NIMBUS_BIN" '+%F %T')"
git_head="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
git_changes="$(git -C "$repo" status --porcelain 2>/dev/null | grep -vc '^?? bench/' || true)"
nimbus_version="$("$nimbus" --version 2>/dev/null)" ||
  die "the copy of $NIMBUS_BIN does not run ('nimbus --version' failed); was it being rebuilt? Try again"

nimbus_pid=""
nginx_pid=""
peer_pid=""
wrk_pid=""


# nimbus stops its launchers on shutdown; any it left behind are killed by pid.
stop_nimbus() {
  [[ -n "$nimbus_pid" ]] || return 0
  local kids p
  kids="$(ps -o pid= --ppid "$nimbus_pid" 2>/dev/null || true)"
  stop_pid "$nimbus_pid" nimbus
  nimbus_pid=""
  for p in $kids; do
    if kill -0 "$p" 2>/dev/null; then
      log "nimbus left launcher pid $p running; killing it"
      kill -KILL "$p" 2>/dev/null || true
    fi
  done
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_pid "$wrk_pid" wrk
  stop_pid "$nginx_pid" nginx
  stop_pid "$peer_pid" "node server.js"
  stop_nimbus
  if [[ "$KEEP_TMP" == 1 || $rc -ne 0 ]]; then
    log "temp dir kept for inspection: $tmp"
  else
    rm -rf "$tmp"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

client() { taskset -c "$CLIENT_CPU" python3 "$here/client.py" "$@"; }

# ---------------------------------------------------------------- deployments
# Build Output API v3: config.json, one hello-world Node function per name, and a static
# file the scripts poll to learn that the deployment is live (without starting a function).
make_output() {  # make_output DIR NAME...
  local dir="$1"; shift
  python3 - "$dir" "$@" <<'PY'
import json, os, sys
out = sys.argv[1]
os.makedirs(os.path.join(out, "static"), exist_ok=True)
with open(os.path.join(out, "config.json"), "w") as f:
    json.dump({"version": 3}, f)
with open(os.path.join(out, "static", "ready.txt"), "w") as f:
    f.write("ready\n")
for name in sys.argv[2:]:
    d = os.path.join(out, "functions", name + ".func")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, ".vc-config.json"), "w") as f:
        json.dump({"runtime": "nodejs20.x", "handler": "index.js", "launcherType": "Nodejs"}, f)
    with open(os.path.join(d, "index.js"), "w") as f:
        f.write("module.exports = (req, res) => { res.end('hello') }\n")
PY
}

# ---------------------------------------------------------------- nimbus
# start_nimbus NAME [serve flags...]: sets nimbus_router, nimbus_api, nimbus_data.
start_nimbus() {
  local name="$1"; shift
  local i line="" json
  nimbus_data="$tmp/data-$name"
  taskset -c "$SERVER_CPU" "$nimbus" serve \
    --listen 127.0.0.1:0 --api-listen 127.0.0.1:0 --data "$nimbus_data" \
    --threads 1 --access-log off --runtimes "$RUNTIMES" --node "$NODE" \
    --stem-cells "$STEM_CELLS" "$@" \
    >"$tmp/nimbus-$name.stdout" 2>"$tmp/nimbus-$name.stderr" &
  nimbus_pid=$!
  for i in $(seq 200); do   # 20 s
    line="$(grep -m1 '^nimbus ready ' "$tmp/nimbus-$name.stdout" || true)"
    [[ -n "$line" ]] && break
    if ! kill -0 "$nimbus_pid" 2>/dev/null; then
      local rc=0; wait "$nimbus_pid" || rc=$?; nimbus_pid=""
      die "nimbus serve exited (status $rc) before printing 'nimbus ready'.
--- stderr ---
$(cat "$tmp/nimbus-$name.stderr")"
    fi
    sleep 0.1
  done
  [[ -n "$line" ]] || die "nimbus serve printed no 'nimbus ready' line within 20 s:
$(cat "$tmp/nimbus-$name.stderr")"
  json="${line#nimbus ready }"
  nimbus_router="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["router"])' "$json")"
  nimbus_api="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["api"])' "$json")"
  log "nimbus ($name) up: router $nimbus_router, api $nimbus_api (pid $nimbus_pid, cpu $SERVER_CPU) $*"
}

# deploy DIR PROJECT: deploys as production and waits until the router serves it;
# sets host_header.
deploy() {
  local dir="$1" project="$2" i code=""
  if ! "$nimbus" --api "http://$nimbus_api" --data "$nimbus_data" deploy "$dir" \
      --project "$project" --prod >"$tmp/deploy-$project.out" 2>&1; then
    die "nimbus deploy failed:
$(cat "$tmp/deploy-$project.out")"
  fi
  host_header="$project.localhost:${nimbus_router##*:}"
  for i in $(seq 100); do
    code="$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $host_header" \
      "http://$nimbus_router/ready.txt" || true)"
    [[ "$code" == 200 ]] && { log "deployed $project ($(grep -o 'Deployed [^ ]*' "$tmp/deploy-$project.out"))"; return 0; }
    sleep 0.1
  done
  die "the router answered $code (not 200) for $host_header/ready.txt 10 s after deploying"
}

wait_pool() {
  client wait-pool --api "$nimbus_api" --token-file "$nimbus_data/admin-token" \
    --want "$STEM_CELLS" --timeout-s 30 || die "the stem-cell pools did not fill up"
}
snapshot() { client snapshot --api "$nimbus_api" --token-file "$nimbus_data/admin-token" --out "$1"; }

check_nimbus_alive() {  # check_nimbus_alive WHAT
  kill -0 "$nimbus_pid" 2>/dev/null && return 0
  local rc=0; wait "$nimbus_pid" 2>/dev/null || rc=$?; nimbus_pid=""
  die "nimbus is gone (exit status $rc) during $1:
$(tail -n 20 "$tmp"/nimbus-*.stderr)"
}

# ---------------------------------------------------------------- CPU accounting
# ticks PID: user+system clock ticks of PID (all threads) plus its direct children
# (nginx's worker, nimbus's launchers), living ones only.
ticks() {
  local t=0 q s
  for q in "$1" $(ps -o pid= --ppid "$1" 2>/dev/null); do
    s="$(awk '{print $14 + $15}' "/proc/$q/stat" 2>/dev/null || echo 0)"
    t=$((t + s))
  done
  echo "$t"
}
own_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# ---------------------------------------------------------------- wrk
run_wrk() {  # run_wrk OUTFILE DURATION URL [wrk args...]
  local outf="$1" d="$2" url="$3"; shift 3
  local rc=0
  timeout "$wrk_timeout" taskset -c "$CLIENT_CPU" \
    wrk -t1 -c"$CONNECTIONS" -d"$d" --latency "$@" "$url" >"$outf" 2>&1 &
  wrk_pid=$!
  wait "$wrk_pid" || rc=$?
  wrk_pid=""
  ((rc == 0)) || die "wrk failed (status $rc) for $url:
$(cat "$outf")"
  if grep -q 'Non-2xx or 3xx responses' "$outf"; then
    die "wrk saw error responses from $url:
$(cat "$outf")"
  fi
}

# ---------------------------------------------------------------- cold
cold_nimbus() {
  local names=() i
  for ((i = 0; i < SAMPLES; i++)); do names+=("f$i"); done
  make_output "$tmp/out-cold" "${names[@]}"
  start_nimbus cold --keep-alive "$COLD_KEEP_ALIVE"
  deploy "$tmp/out-cold" cold
  wait_pool
  snapshot "$raw/cold-before.json"
  local pool_args=()
  if [[ "$POOL_WAIT" == 1 ]]; then
    pool_args=(--api "$nimbus_api" --token-file "$nimbus_data/admin-token" --pool-want "$STEM_CELLS")
  fi
  log "cold: $SAMPLES functions, one request each, pause ${PAUSE_MS} ms$([[ $POOL_WAIT == 1 ]] && echo ' + wait for a full pool')"
  client nimbus-cold --router "$nimbus_router" --host "$host_header" --count "$SAMPLES" \
    --pause-ms "$PAUSE_MS" "${pool_args[@]}" --out "$raw/cold-nimbus.json" ||
    die "the cold-start client failed"
  check_nimbus_alive "the cold-start run"
  snapshot "$raw/cold-after.json"
  sleep 0.5   # function logs are flushed every 200 ms
  stop_nimbus
  mkdir -p "$raw/cold-logs"
  cp "$nimbus_data"/logs/functions/*.jsonl "$raw/cold-logs/" 2>/dev/null || log "warning: no function logs found"
}

cold_peer() {
  mkdir -p "$tmp/peer-cold"
  log "cold peer: spawn node server.js -> first response, up to $PEER_SAMPLES times (budget ${PEER_BUDGET_S}s, at least $PEER_MIN)"
  client peer-cold --node "$NODE" --server "$here/server.js" --dir "$tmp/peer-cold" \
    --count "$PEER_SAMPLES" --pause-ms "$PAUSE_MS" --budget-s "$PEER_BUDGET_S" \
    --min "$PEER_MIN" --cpu "$SERVER_CPU" --out "$raw/cold-peer.json" ||
    die "the peer cold-start client failed"
}

# ---------------------------------------------------------------- warm
start_peer_server() {  # node server.js on a Unix socket, pinned
  local i
  peer_sock="$tmp/peer.sock"
  taskset -c "$SERVER_CPU" "$NODE" "$here/server.js" "$peer_sock" \
    >"$tmp/peer.stdout" 2>"$tmp/peer.stderr" &
  peer_pid=$!
  for i in $(seq 100); do
    [[ -S "$peer_sock" ]] && curl -s -o /dev/null --unix-socket "$peer_sock" http://peer/ && return 0
    kill -0 "$peer_pid" 2>/dev/null || die "node server.js exited: $(cat "$tmp/peer.stderr")"
    sleep 0.1
  done
  die "node server.js did not answer on $peer_sock within 10 s"
}

start_nginx() {
  local port i temp_paths
  port="$(free_port)"
  temp_paths="$(nginx_temp_paths)"
  cat >"$tmp/nginx.conf" <<EOF
daemon off;
worker_processes 1;
error_log $tmp/nginx-error.log warn;
pid $tmp/nginx.pid;
events {
    worker_connections 4096;
}
http {
    access_log off;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 100000;
    server_tokens off;
$temp_paths
    upstream peer {
        server unix:$peer_sock;
        keepalive 64;
        keepalive_requests 100000;
    }
    server {
        listen 127.0.0.1:$port;
        location / {
            proxy_pass http://peer;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
        }
    }
}
EOF
  launch_nginx
  for i in $(seq 100); do
    kill -0 "$nginx_pid" 2>/dev/null || die "nginx exited during startup: $(cat "$tmp/nginx.stderr" "$tmp/nginx-error.log" 2>/dev/null)"
    if [[ "$(curl -s "http://127.0.0.1:$port/" || true)" == hello ]]; then
      nginx_addr="127.0.0.1:$port"
      log "nginx up at $nginx_addr -> $peer_sock (pid $nginx_pid, cpu $SERVER_CPU)"
      return 0
    fi
    sleep 0.1
  done
  die "nginx did not proxy 'hello' from 127.0.0.1:$port within 10 s"
}

warm() {
  start_peer_server
  start_nginx
  log "warm nginx: warm-up $WARMUP, then $DURATION with $CONNECTIONS connections"
  run_wrk "$raw/wrk-nginx-warmup.txt" "$WARMUP" "http://$nginx_addr/hello"
  local a0 b0 a1 b1
  a0="$(ticks "$nginx_pid")"; b0="$(ticks "$peer_pid")"
  run_wrk "$raw/wrk-nginx.txt" "$DURATION" "http://$nginx_addr/hello"
  a1="$(ticks "$nginx_pid")"; b1="$(ticks "$peer_pid")"
  echo "{\"proxyTicks\": $((a1 - a0)), \"appTicks\": $((b1 - b0)), \"clkTck\": $(getconf CLK_TCK)}" \
    >"$raw/cpu-nginx.json"
  stop_pid "$nginx_pid" nginx; nginx_pid=""
  stop_pid "$peer_pid" "node server.js"; peer_pid=""

  make_output "$tmp/out-warm" hello
  # shellcheck disable=SC2086  # NIMBUS_FLAGS is a list of flags
  start_nimbus warm $NIMBUS_FLAGS
  deploy "$tmp/out-warm" warm
  local body
  body="$(curl -s -H "Host: $host_header" "http://$nimbus_router/hello")"
  [[ "$body" == hello ]] || die "nimbus answered '$body' for /hello (expected hello)"
  log "warm nimbus: warm-up $WARMUP, then $DURATION with $CONNECTIONS connections"
  run_wrk "$raw/wrk-nimbus-warmup.txt" "$WARMUP" "http://$nimbus_router/hello" -H "Host: $host_header"
  check_nimbus_alive "the warm-up"
  a0="$(own_ticks "$nimbus_pid")"; b0="$(ticks "$nimbus_pid")"
  run_wrk "$raw/wrk-nimbus.txt" "$DURATION" "http://$nimbus_router/hello" -H "Host: $host_header"
  a1="$(own_ticks "$nimbus_pid")"; b1="$(ticks "$nimbus_pid")"
  echo "{\"proxyTicks\": $((a1 - a0)), \"appTicks\": $((b1 - b0 - (a1 - a0))), \"clkTck\": $(getconf CLK_TCK)}" \
    >"$raw/cpu-nimbus.json"
  check_nimbus_alive "the warm run"
  snapshot "$raw/warm-after.json"
  stop_nimbus
}

# ---------------------------------------------------------------- burst
burst() {
  local names=() r
  for ((r = 0; r < BURST_ROUNDS; r++)); do names+=("b$r"); done
  make_output "$tmp/out-burst" "${names[@]}"
  # shellcheck disable=SC2086
  start_nimbus burst $NIMBUS_FLAGS
  deploy "$tmp/out-burst" burst
  for ((r = 0; r < BURST_ROUNDS; r++)); do
    wait_pool
    snapshot "$raw/burst-$r-before.json"
    log "burst $r: $BURST requests at once to /b$r (no instance yet)"
    client burst --router "$nimbus_router" --host "$host_header" --path "/b$r" --n "$BURST" \
      --out "$raw/burst-$r.json" || die "the burst client failed"
    check_nimbus_alive "burst $r"
    client settle --api "$nimbus_api" --token-file "$nimbus_data/admin-token" --timeout-s 60 ||
      die "instances of /b$r were still starting 60 s after the burst"
    snapshot "$raw/burst-$r-after.json" # once the cold starts it set off have finished
  done
  sleep 0.5   # function logs are flushed every 200 ms
  stop_nimbus
  mkdir -p "$tmp/peer-burst" "$raw/burst-logs"
  cp "$nimbus_data"/logs/functions/*.jsonl "$raw/burst-logs/" 2>/dev/null || true
  for ((r = 0; r < BURST_ROUNDS; r++)); do
    log "burst peer $r: spawn node server.js and send it $BURST requests at once"
    client peer-burst --node "$NODE" --server "$here/server.js" --dir "$tmp/peer-burst" \
      --n "$BURST" --cpu "$SERVER_CPU" --out "$raw/peer-burst-$r.json" ||
      die "the peer burst client failed"
    sleep 0.2
  done
}

# ---------------------------------------------------------------- main
started=$SECONDS
load_start="$(cut -d' ' -f1-3 /proc/loadavg)"
log "nimbus $nimbus_version (copy of $NIMBUS_BIN, built $binary_mtime, sha256 $binary_sha), repo $git_head ($git_changes changed paths), runtimes $RUNTIMES, node $("$NODE" --version); load: $(cut -d' ' -f1-3 /proc/loadavg)"
want cold && { cold_nimbus; cold_peer; }
want warm && warm
want burst && burst

python3 "$here/report.py" --raw "$raw" --out "$RESULTS" \
  --settings "$(python3 -c 'import json,sys; print(json.dumps(dict(zip(sys.argv[1::2], sys.argv[2::2]))))' \
    parts "$PARTS" samples "$SAMPLES" peerSamples "$PEER_SAMPLES" peerBudgetS "$PEER_BUDGET_S" \
    pauseMs "$PAUSE_MS" poolWait "$POOL_WAIT" stemCells "$STEM_CELLS" \
    coldKeepAliveS "$COLD_KEEP_ALIVE" duration "$DURATION" warmup "$WARMUP" \
    connections "$CONNECTIONS" burst "$BURST" burstRounds "$BURST_ROUNDS" \
    nimbusFlags "$NIMBUS_FLAGS" serverCpu "$SERVER_CPU" clientCpu "$CLIENT_CPU" \
    nimbusVersion "$nimbus_version" binarySha256 "$binary_sha" binaryMtime "$binary_mtime" \
    gitHead "$git_head" gitChangedPaths "$git_changes" node "$("$NODE" --version)" \
    loadavgStart "$load_start" loadavgEnd "$(cut -d' ' -f1-3 /proc/loadavg)" cpus "$ncpu")"
log "done in $((SECONDS - started)) s; raw numbers: $RESULTS"
